"""What every task shares: option values checked into one `error: ...` line, never a traceback.

- ``number``: an option's text as a number in a range, or ``UsageError`` naming the option.
- ``guard``: runs a task body; a ``RevenantError`` becomes ``error: <summary>`` and exit 1, an
  ``OSError`` (an unwritable build/, a full disk) ``error: cannot <write|read> PATH: <reason>``,
  anything else ``error: internal error ...`` with the traceback kept in a file, so nothing is lost.
- ``adapt_invoke``: four adjustments of invoke's parser (invoke >= 2.0): option placeholders with
  a meaning (``--timeout=SECONDS``, not a bare ``--timeout``), positional arguments a task may omit
  (``invoke snapshot list``), ``--help`` on a task with positionals (``invoke snapshot --help``
  printed "unknown action '--help'"), and a last positional that takes every further word
  (``invoke experiment merge A.json B.json C.json``; ``positional_list`` splits it again).  Both are guarded: on an invoke without these internals, help shows
  invoke's own placeholders and the positional is required, nothing breaks.
"""
from __future__ import annotations

import math
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from .errors import RevenantError, UsageError


def number(option: str, text: object, *, integer: bool = False, minimum: Optional[float] = None,
           maximum: Optional[float] = None, unit: str = "") -> float:
    """``text`` (an option's value as typed) as a number within [minimum, maximum]."""
    what = f"{option} takes {'a whole number' if integer else 'a number'}" + (f" of {unit}" if unit else "")
    raw = str(text).strip()
    try:
        value = int(raw, 10) if integer else float(raw)
    except ValueError:
        raise UsageError(f"{what}, not {raw!r}") from None
    if not integer and not math.isfinite(value):
        raise UsageError(f"{what}, not {raw!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        lo = "" if minimum is None else f"{minimum:g}"
        hi = "" if maximum is None else f"{maximum:g}"
        span = f"from {lo} to {hi}" if lo and hi else (f"of at least {lo}" if lo else f"of at most {hi}")
        raise UsageError(f"{what} {span}, not {raw}")
    return value


def describe_os_error(err: OSError) -> str:
    """``cannot write build/logs/x.log: Permission denied`` for any OSError a task meets."""
    name = err.filename or ""
    path = Path(name) if name else None
    if path is not None:
        try:
            from .paths import ROOT
            shown = str(path.resolve().relative_to(ROOT))
        except (ValueError, OSError):
            shown = str(path)
        extra = f" -> {err.filename2}" if err.filename2 else ""
        hint = ""
        if err.errno in (1, 13, 30):        # EPERM, EACCES, EROFS
            hint = " (is build/ writable? `invoke doctor` checks)" if "build" in Path(shown).parts[:1] else ""
        return f"cannot use {shown}{extra}: {err.strerror or err}{hint}"
    return f"{err.strerror or err}"


def _keep_traceback(exc: BaseException) -> Path:
    """Write the traceback of an unexpected exception where it can be read later."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    name = f"traceback-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    from .paths import LOGS
    for folder in (LOGS, Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(text)
            return path
        except OSError:
            continue
    return Path("(nowhere: build/logs and the temporary directory are not writable)")


def guard(body: Callable[[], object], exit_cls: Callable[..., BaseException]) -> object:
    """Run a task body; every failure becomes ``exit_cls("error: ...", code=1)``."""
    try:
        return body()
    except RevenantError as err:
        details = getattr(err, "output", "")
        if details:                     # full compiler output above the one-line verdict
            print(details.rstrip(), file=sys.stderr)
        raise exit_cls(f"error: {err}", code=1) from None
    except KeyboardInterrupt:
        raise exit_cls("interrupted", code=130) from None
    except OSError as err:
        raise exit_cls(f"error: {describe_os_error(err)}", code=1) from None
    except exit_cls:
        raise
    except Exception as exc:            # a bug: one line here, the traceback in a file
        kept = _keep_traceback(exc)
        raise exit_cls(f"error: internal error ({type(exc).__name__}: {exc}); traceback in {kept}",
                       code=1) from None


# ------------------------------------------------------------------ invoke's parser
METAVARS: Dict[str, Dict[str, str]] = {}       # task -> option -> placeholder
OPTIONAL_POSITIONALS: Dict[str, Sequence[str]] = {}   # task -> positionals it may omit
VARIADIC_POSITIONALS: Dict[str, str] = {}   # task -> its last positional, which takes every further word
_SEPARATOR = "\n"                    # between the words of a variadic positional's value


def positional_list(value: object) -> List[str]:
    """The words a variadic positional took (``adapt_invoke(variadic=...)``), in order."""
    return [w for w in str(value or "").split(_SEPARATOR) if w]


def _excepthook(kind, value, tb) -> None:                  # type: ignore[no-untyped-def]
    """Outside a task body (invoke's own parsing and help): still no traceback on the terminal."""
    import os
    if issubclass(kind, BrokenPipeError):       # `invoke --help | head`: the reader left, fine
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return
    if issubclass(kind, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return
    kept = _keep_traceback(value if value is not None else kind())
    print(f"error: internal error ({kind.__name__}: {value}); traceback in {kept}", file=sys.stderr)


def adapt_invoke(metavars: Dict[str, Dict[str, str]], optional: Dict[str, Sequence[str]],
                 variadic: Optional[Dict[str, str]] = None) -> None:
    METAVARS.update(metavars)
    OPTIONAL_POSITIONALS.update(optional)
    VARIADIC_POSITIONALS.update(variadic or {})
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _excepthook
    try:
        from invoke.parser.context import ParserContext
        from invoke.parser.parser import ParseMachine
    except ImportError:                 # pragma: no cover - another invoke layout
        return
    if getattr(ParserContext, "_revenant_adapted", False):
        return
    help_for = ParserContext.help_for
    complete_context = ParseMachine.complete_context
    handle = ParseMachine.handle

    def handle_help_first(self, token):            # type: ignore[no-untyped-def]
        # `invoke snapshot --help`: invoke would eat --help as the missing positional ACTION.
        ctx, initial = self.context, self.initial
        if (ctx is not None and initial is not None and ctx is not initial and token in ("--help", "-h")
                and token in initial.flags and ctx.missing_positional_args
                and not self.waiting_for_flag_value):
            initial.flags[token].value = ctx.name
            self._revenant_help = True
            return None
        if _more_for_variadic(self, token):
            return None
        return handle(self, token)

    def help_for_with_metavars(self, flag):        # type: ignore[no-untyped-def]
        names, text = help_for(self, flag)
        arg = self.flags.get(flag)
        placeholder = METAVARS.get(self.name or "", {}).get(arg.name if arg is not None else "")
        if placeholder:
            names = names.replace("=STRING", f"={placeholder}").replace(" STRING", f" {placeholder}")
            names = names.replace("=INT", f"={placeholder}").replace(" INT", f" {placeholder}")
        return names, text

    def complete_with_optional(self):              # type: ignore[no-untyped-def]
        ctx = self.context
        if ctx is not None:
            helping = getattr(self, "_revenant_help", False)
            for arg in ctx.positional_args:
                optional = arg.name in OPTIONAL_POSITIONALS.get(ctx.name or "", ())
                if (optional or helping) and arg.value is None:
                    arg.set_value("", cast=False)
        return complete_context(self)

    def _more_for_variadic(self, token):           # type: ignore[no-untyped-def]
        # A word after every positional is filled: invoke would take it for the next task name
        # ("No idea what 'B.json' is!"); a variadic last positional takes it instead.
        ctx = self.context
        name = VARIADIC_POSITIONALS.get(getattr(ctx, "name", None) or "")
        if (name is None or self.current_state == "unknown" or self.waiting_for_flag_value
                or ctx.missing_positional_args or token.startswith("-") or token in self.contexts):
            return False
        arg = ctx.args[name]
        arg.set_value(f"{arg.value}{_SEPARATOR}{token}" if arg.value else token, cast=False)
        return True

    ParserContext.help_for = help_for_with_metavars
    ParseMachine.complete_context = complete_with_optional
    ParseMachine.handle = handle_help_first
    ParserContext._revenant_adapted = True


__all__ = ["number", "guard", "describe_os_error", "adapt_invoke", "positional_list"]
