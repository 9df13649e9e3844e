"""A campaign's reports: report.md (Markdown tables), outcome.png (verdict by instant),
figures.png (the distribution of each measured figure), and for `invoke bench` a bench.md and
bench-ratios.png (each judged ratio against its target). `invoke report RESULT.json` (or a bench
JSON) draws them again from the JSON alone.

Every plot says what it shows without the JSON beside it: the experiment, N, the seed range and
the units are in its title and axes. matplotlib's Agg backend through Figure objects (no pyplot):
no display needed, and nothing global that a second campaign in the same process could inherit.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..errors import UsageError
from .engine import FAILING, VERDICTS, Campaign, TrialResult, load, read_json

MAX_ROWS = 100                          # report.md lists every trial up to this, then only failing ones
MAX_FIGURE_PLOTS = 6
COLOURS = {"ok": "tab:green", "late": "tab:gray", "wrong": "tab:red", "error": "tab:orange"}
NOT_PLOTTED = {"exit_status"}           # constant for any run worth plotting; its verdict says it


@dataclass
class Written:
    """The files a report wrote."""

    json: Optional[Path]
    markdown: Path
    plots: List[Path]

    def render(self) -> str:
        return "\n".join([f"  report: {self.markdown}"] + [f"  plot: {p}" for p in self.plots])


def _units(name: str) -> Dict[str, str]:
    from . import _MODULES, get
    return dict(getattr(get(name), "units", {})) if name in _MODULES else {}


def _instant(name: str) -> Optional[str]:
    from . import _MODULES, get
    return getattr(get(name), "instant", None) if name in _MODULES else None


def _figure(width: float = 8.0, height: float = 4.5):    # type: ignore[no-untyped-def]
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _label(name: str, units: Dict[str, str]) -> str:
    return f"{name} ({units[name]})" if name in units else name


def _what(camp: Campaign) -> str:
    shard = f", shard {camp.shard}" if camp.shard else ""
    opts = " ".join(f"{k}={v}" for k, v in camp.options.items())
    return f"N={len(camp.results)}{shard}, {camp.seed_range()}" + (f", {opts}" if opts else "")


# ------------------------------------------------------------------------ plots
def outcome_plot(camp: Campaign, path: Path) -> Path:
    """Each trial's verdict against its instant parameter (the trial index if it has none)."""
    instant = _instant(camp.experiment)
    units = _units(camp.experiment)
    fig = _figure()
    ax = fig.add_subplot()
    rows = {v: i for i, v in enumerate(VERDICTS)}
    for verdict in VERDICTS:
        trials = [r for r in camp.results if r.verdict == verdict]
        xs = [_x(r, instant) for r in trials]
        ax.scatter(xs, [rows[verdict]] * len(xs), s=28, alpha=0.7, color=COLOURS[verdict],
                   label=f"{verdict} ({len(trials)})")
    ax.set_yticks(range(len(VERDICTS)), VERDICTS)
    ax.set_ylim(-0.6, len(VERDICTS) - 0.4)
    ax.set_xlabel(_label(instant, units) if instant else "trial index")
    ax.set_ylabel("verdict")
    ax.set_title(f"{camp.experiment}: outcome by {instant or 'trial'}\n{_what(camp)}", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.savefig(path)
    return path


def _x(r: TrialResult, instant: Optional[str]) -> float:
    value = r.params.get(instant) if instant else None
    return float(value) if isinstance(value, (int, float)) else float(r.index)


def plotted_figures(camp: Campaign) -> List[str]:
    """The measured figures worth a histogram: those the experiment gives a unit first, then any
    other that varies; a constant says nothing in a histogram (its table row says it) unless the
    campaign has a single trial."""
    units = _units(camp.experiment)
    figs = camp.summary.get("figures", {})
    names = [n for n in figs if n not in NOT_PLOTTED and (len(camp.results) == 1 or figs[n]["min"] != figs[n]["max"])]
    return ([n for n in names if n in units] + [n for n in names if n not in units])[:MAX_FIGURE_PLOTS]


def figures_plot(camp: Campaign, path: Path) -> Path:
    """A histogram per measured figure (and the trials' wall time, which every campaign has)."""
    units = {**_units(camp.experiment), "seconds": "s, wall clock per trial"}
    names = plotted_figures(camp) + ["seconds"]
    cols = min(3, len(names))
    rows = (len(names) + cols - 1) // cols
    fig = _figure(4.0 * cols, 3.2 * rows + 0.6)
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        xs = [float(r.seconds) if name == "seconds" else float(r.figures[name])
              for r in camp.results if name == "seconds" or _number(r.figures.get(name))]
        ax.hist(xs, bins=_bins(xs), color="tab:blue", alpha=0.8, edgecolor="white")
        ax.set_xlabel(_label(name, units), fontsize=9)
        ax.set_ylabel("trials")
        ax.set_title(f"{name}: n={len(xs)}" + (f", median {sorted(xs)[len(xs) // 2]:.4g}" if xs else ""),
                     fontsize=9)
    fig.suptitle(f"{camp.experiment}: measured figures\n{_what(camp)}", fontsize=10)
    fig.savefig(path)
    return path


def _bins(xs: List[float]):              # type: ignore[no-untyped-def]
    """Counts (whole numbers over a short range) get a bar per value, centred on it; anything
    else up to 30 bins."""
    if xs and all(x == int(x) for x in xs) and max(xs) - min(xs) <= 30:
        return [v - 0.5 for v in range(int(min(xs)), int(max(xs)) + 2)]
    return min(30, max(1, len(set(xs))))


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ------------------------------------------------------------------------ markdown
def markdown(camp: Campaign) -> str:
    c = camp.summary.get("counts", {})
    lines = [f"# Campaign: {camp.experiment}", "",
             f"- build: `{camp.build.get('id', '?')}` ({camp.build.get('kernel', '')})",
             f"- campaign seed {camp.seed}, {camp.trials} trials"
             + (f", shard {camp.shard}" if camp.shard else "") + (f", only trial {camp.only}" if camp.only is not None else ""),
             f"- options: {', '.join(f'{k}={v}' for k, v in camp.options.items()) or 'none'}",
             f"- expected: `{camp.expected}`" if camp.expected else "- expected: (none)",
             f"- run: {camp.run.get('jobs', '?')} jobs, {camp.run.get('seconds', '?')} s",
             "", "| verdict | trials |", "| --- | ---: |"]
    lines += [f"| {v} | {c.get(v, 0)} |" for v in VERDICTS]
    figs = camp.summary.get("figures", {})
    if figs:
        lines += ["", "| figure | n | min | median | max |", "| --- | ---: | ---: | ---: | ---: |"]
        lines += [f"| {k} | {f['n']} | {f['min']:g} | {f['median']:g} | {f['max']:g} |" for k, f in figs.items()]
    shown = camp.results if len(camp.results) <= MAX_ROWS else [r for r in camp.results if r.verdict in FAILING]
    params = sorted({k for r in shown for k in r.params})
    lines += ["", f"## Trials ({'all' if shown is camp.results else 'failing only: too many to list'})", "",
              "| trial | seed | " + " | ".join(params) + " | verdict | s | message | artifacts |",
              "| ---: | ---: | " + " | ".join("---" for _ in params) + " | --- | ---: | --- | --- |"]
    for r in shown:
        lines.append(f"| {r.index} | {r.seed} | " + " | ".join(str(r.params.get(p, "")) for p in params)
                     + f" | {r.verdict} | {r.seconds:g} | {_cell(r.message)} | "
                     + _cell(", ".join(f"{k}: {v}" for k, v in r.artifacts.items())) + " |")
    lines += ["", "![outcome](outcome.png)", "", "![figures](figures.png)", ""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_reports(camp: Campaign) -> Written:
    out = Path(camp.dir)
    md = out / "report.md"
    md.write_text(markdown(camp))
    plots = [outcome_plot(camp, out / "outcome.png"), figures_plot(camp, out / "figures.png")] if camp.results else []
    return Written(camp.json_path, md, plots)


# ------------------------------------------------------------------------ text summary
def render(camp: Campaign) -> str:
    """The summary table a campaign prints at its end."""
    c = camp.summary.get("counts", {})
    head = (f"experiment {camp.experiment} seed={camp.seed} trials={camp.trials}"
            + (f" shard={camp.shard}" if camp.shard else "") + (f" trial={camp.only}" if camp.only is not None else "")
            + "".join(f" {k}={v}" for k, v in camp.options.items())
            + f": {'OK' if camp.ok else 'FAILED'} in {camp.run.get('seconds', 0):.1f} s"
            + (f" ({camp.run['trials_per_minute']:.0f} trials/min, {camp.run['jobs']} jobs)"
               if "trials_per_minute" in camp.run else ""))
    lines = [head, "  " + "  ".join(f"{v}: {c.get(v, 0)}" for v in VERDICTS)]
    figs = camp.summary.get("figures", {})
    if figs:
        width = max(len(k) for k in figs)
        lines.append(f"  {'figure':<{width}}  {'n':>5}  {'min':>12}  {'median':>12}  {'max':>12}")
        lines += [f"  {k:<{width}}  {f['n']:>5}  {f['min']:>12.6g}  {f['median']:>12.6g}  {f['max']:>12.6g}"
                  for k, f in figs.items()]
    for r in camp.results:
        if r.failing:
            kept = ", ".join(f"{k} {v}" for k, v in r.artifacts.items()) or "nothing kept"
            lines.append(f"  trial {r.index} (seed {r.seed}): {r.verdict}: {r.message}; {kept}")
    lines.append(f"  json: {camp.json_path}")
    return "\n".join(lines)


# ------------------------------------------------------------------------ bench
def bench_ratios(data: dict) -> List[tuple]:
    """(section.figure, value, target_max) of every judged ratio in a bench JSON."""
    out = []
    for section, figures in data.items():
        verdicts = figures.get("verdicts", {}) if isinstance(figures, dict) else {}
        for figure, v in verdicts.items():
            if isinstance(v, dict) and _number(v.get("value")) and _number(v.get("target_max")):
                out.append((f"{section}.{figure}", float(v["value"]), float(v["target_max"])))
    return out


def bench_plot(ratios: Sequence[tuple], path: Path, source: str) -> Path:
    fig = _figure(8.0, 1.2 + 0.45 * max(1, len(ratios)))
    ax = fig.add_subplot()
    names = [r[0] for r in ratios]
    ys = range(len(ratios))
    fractions = [value / target for _, value, target in ratios]
    ax.barh(list(ys), fractions, color=["tab:green" if f <= 1 else "tab:red" for f in fractions])
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1, label="target (ratio = its maximum)")
    for y, (_, value, target), f in zip(ys, ratios, fractions):
        ax.text(f, y, f"  {value:.3g} (max {target:g})", va="center", fontsize=8)
    ax.set_yticks(list(ys), names, fontsize=8)
    ax.set_xlabel("measured ratio / target maximum (<= 1 meets the target; unitless)")
    ax.set_title(f"invoke bench: ratios against their targets (N={len(ratios)} judged figures)\n{source}",
                 fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.savefig(path)
    return path


def bench_report(path: Path, out_dir: Optional[Path] = None) -> Written:
    path, data = read_json(path, "bench JSON")
    ratios = bench_ratios(data)
    out = Path(out_dir or Path(path).parent)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "bench.md"
    lines = [f"# Benchmarks: {path}", "", "| figure | value | target max | verdict |", "| --- | ---: | ---: | --- |"]
    lines += [f"| {n} | {v:.4g} | {t:g} | {'ok' if v <= t else 'MISSED'} |" for n, v, t in ratios]
    errors = [f"- {s}: {f['error']}" for s, f in data.items() if isinstance(f, dict) and f.get("error")]
    lines += ([""] + errors if errors else []) + ["", "![ratios](bench-ratios.png)", ""]
    md.write_text("\n".join(lines))
    plots = [bench_plot(ratios, out / "bench-ratios.png", str(path))] if ratios else []
    return Written(Path(path), md, plots)


def redraw(path: Path, out_dir: Optional[Path] = None) -> Written:
    """`invoke report PATH`: a campaign's result.json (or its directory) or a bench JSON."""
    target, data = read_json(path, "campaign result or bench JSON")
    if "experiment" in data and "format" in data:
        camp = load(target)
        if out_dir is not None:
            camp.dir = str(out_dir)
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        return write_reports(camp)
    if data and all(isinstance(v, dict) for v in data.values()):
        return bench_report(target, out_dir)       # section -> figures (toolchain/bench.py)
    raise UsageError(f"{path}: neither a campaign result.json nor a bench JSON")


__all__ = ["write_reports", "render", "markdown", "outcome_plot", "figures_plot", "bench_report", "redraw",
           "bench_ratios", "Written"]
