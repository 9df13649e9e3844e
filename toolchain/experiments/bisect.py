"""The search behind `invoke experiment bisect`: the first failing instant after a passing one.

Given an instant ``lo`` whose run passes and ``hi`` whose run fails, find adjacent instants
``(n, n + 1)``, ``n`` passing and ``n + 1`` failing, by running instants in between. Every pair
reported was really run, both ends: the bounds only ever move to instants that were run.

Plain bisection needs log2(hi - lo) runs (20 for a millisecond of guest time). Two things cut
that down:

- The kernel says more than pass/fail: a restart requested at NS is taken at the first safe
  point at or after NS (``taken``), and the safe point before it (``not_due``) was too early, so
  every NS in (not_due, taken] restarts at the same point. A failing run thus *suggests* the
  boundary is at ``not_due + 1``, a passing one at ``taken + 1``. A suggestion is only a guess
  (the instant is on the kernel command line, and another number there shifts the run by some
  instructions before the restart: 40 to 130 ns for a passing run's ``taken``, measured;
  a failing run's ``not_due`` was exact), so the search runs the pair (guess - 1, guess): if
  it is the boundary, done; if not, the two runs still narrowed the bounds, and the next
  guess comes from them. A guess is tried once.
- Runs go two at a time (``jobs``): without a suggestion the interval is cut in three.

If the outcome changes more than once between lo and hi, the pair found is one of the changes
(bisection's limit); the earliest when there is a single window, as in tally_buggy.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Optional, Set


@dataclass
class Probe:
    """One run at one instant."""

    ns: int
    failing: bool
    taken: Optional[int] = None         # the safe point the restart was taken at
    not_due: Optional[int] = None       # the safe point before it
    verdict: str = ""
    seconds: float = 0.0


@dataclass
class Search:
    passing: int                        # the boundary pair: runs at `passing` pass ...
    failing: int                        # ... and at `failing` = passing + 1 fail
    probes: List[Probe]

    @property
    def steps(self) -> int:
        return len(self.probes)

    def to_json(self) -> dict:
        return {"passing": self.passing, "failing": self.failing, "steps": self.steps,
                "probes": [asdict(p) for p in self.probes]}


class Contradiction(Exception):
    """The endpoints did not behave as claimed (lo failed or hi passed)."""

    def __init__(self, probe: Probe, expected_failing: bool) -> None:
        self.probe, self.expected_failing = probe, expected_failing
        super().__init__(f"instant {probe.ns} {'passed' if not probe.failing else 'failed'}")


def search(lo: int, hi: int, run: Callable[[int], Probe], jobs: int = 2, max_steps: int = 200) -> Search:
    """The boundary pair between ``lo`` (must pass) and ``hi`` (must fail): both are run first;
    ``Contradiction`` if either does not do what it must."""
    if not lo < hi:
        raise ValueError(f"bisect needs lo < hi, not {lo} >= {hi}")
    seen: Dict[int, Probe] = {}
    probes: List[Probe] = []
    tried: Set[int] = set()             # suggestions already bracketed

    def batch(points: List[int]) -> None:
        points = [p for p in dict.fromkeys(points) if p not in seen]
        if len(probes) + len(points) > max_steps:
            raise RuntimeError(f"bisect: no boundary after {max_steps} runs")
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for p in pool.map(run, points):
                seen[p.ns] = p
                probes.append(p)

    batch([hi, lo])
    for ns, must_fail in ((hi, True), (lo, False)):
        if seen[ns].failing != must_fail:
            raise Contradiction(seen[ns], must_fail)
    hinted = False
    while hi - lo > 1:
        # Guesses alternate with cuts, so that a run of wrong guesses (a workload with a safe
        # point every few instructions walks them one by one) costs at most half the rounds.
        guess = None if hinted else _suggestion(seen[lo], seen[hi], lo, hi, tried)
        hinted = guess is not None
        if guess is not None:
            tried.add(guess)
            points = [p for p in (guess - 1, guess) if lo < p < hi]
        elif jobs > 1 and hi - lo > 3:
            points = [lo + (hi - lo) // 3, lo + 2 * (hi - lo) // 3]
        else:
            points = [(lo + hi) // 2]
        batch(points)
        lo, hi = _bounds(seen, lo, hi)
    return Search(lo, hi, probes)


def _suggestion(low: Probe, high: Probe, lo: int, hi: int, tried: Set[int]) -> Optional[int]:
    """Where the runs at the bounds say the boundary is, if inside (lo, hi) and not tried."""
    for guess in (None if high.not_due is None else high.not_due + 1,
                  None if low.taken is None else low.taken + 1):
        if guess is not None and lo < guess <= hi and guess not in tried:
            return guess
    return None


def _bounds(seen: Dict[int, Probe], lo: int, hi: int) -> tuple:
    """The tightest (passing, failing) pair among the runs: the lowest failing run above lo,
    then the highest passing run below it."""
    hi = min([ns for ns, p in seen.items() if p.failing and lo < ns < hi] + [hi])
    lo = max([ns for ns, p in seen.items() if not p.failing and lo < ns < hi] + [lo])
    return lo, hi


__all__ = ["Probe", "Search", "Contradiction", "search"]
