"""Experiments on the campaign engine (engine.py): name -> Experiment.

Adding an experiment is one module here (a class with name, about, defaults, default_trials,
instant, units, plan(), run(), describe(): the Experiment protocol in engine.py) and one entry
in ``_MODULES`` below.
"""
from __future__ import annotations

import importlib
from typing import Dict

from ..errors import UsageError
from .engine import Experiment

# name -> module under toolchain/experiments/ that defines EXPERIMENT (imported on first use:
# `invoke --help` stays fast)
_MODULES: Dict[str, str] = {
    "leak": "leak",
    "chained": "chained",
    "fuzz": "fuzz",
    "restart": "restart",
    "loadvm": "loadvm",
    "instant": "instant",
    "powercut": "powercut",
    "upgrade": "upgrade",
}


def names() -> list:
    return list(_MODULES)


def get(name: str) -> Experiment:
    """The experiment called ``name``; one clear line naming the choices if there is none."""
    if name not in _MODULES:
        raise UsageError(f"unknown experiment {name!r}: choose one of {', '.join(_MODULES)}")
    return importlib.import_module(f".{_MODULES[name]}", __name__).EXPERIMENT
