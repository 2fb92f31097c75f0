"""The scaling plot: accuracy against average thinking tokens (log2 x axis), as in the paper's figures.

One line per *setting*: a method's runs that differ in one parameter (the one the curve sweeps: the cap, else
the number of Waits, else k) are joined, and runs that differ in anything else get their own line, labelled
with what they hold fixed. Each point is marked with its swept value; the title names the benchmark, the
number of questions (and of the full benchmark, for partial runs) and the model.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .report import RunPoint, Summary

__all__ = ["scaling_figure", "plot_scaling", "setting_lines"]

# Which label field a curve sweeps, in order of preference (budget forcing's cap, the token-conditional N,
# majority voting's k, the number of Waits).
_SWEPT = ("max", "N", "maj", "waits")


def _fields(run: str) -> dict[str, str]:
    """`"max=512,waits=1,pass@1:4_samples"` -> `{"max": "512", "waits": "1", "pass@1:4_samples": ""}`."""
    out = {}
    for part in run.split(","):
        if part.startswith("maj@"):
            out["maj"] = part[4:]
        elif "=" in part:
            key, value = part.split("=", 1)
            out[key] = value
        else:
            out[part] = ""
    return out


def _text(key: str, value: str) -> str:
    if key == "maj":
        return f"maj@{value}"
    return f"{key}={value}" if value else key


def setting_lines(points: list[RunPoint]) -> list[tuple[str, list[tuple[RunPoint, str]]]]:
    """Group points into lines: `[(legend label, [(point, its swept value as text), ...]), ...]`.

    Examples:

    ```python
    >>> from hf_s1.eval.report import RunPoint
    >>> def pt(run, x):
    ...     return RunPoint("budget-forcing", run, 1, 4, 50.0, 50.0, x, x, None, None, None, 0.0, 0.0)
    >>> pts = [pt("max=auto,waits=1", 900), pt("max=auto,waits=2", 1100), pt("max=auto,waits=4", 1500)]
    >>> [(label, [v for _, v in members]) for label, members in setting_lines(pts)]
    [('budget-forcing, max=auto', ['waits=1', 'waits=2', 'waits=4'])]

    ```
    """
    series: dict[tuple[str, str], list[RunPoint]] = defaultdict(list)
    for p in points:
        series[p.method, p.series].append(p)
    lines = []
    for (method, metric), pts in series.items():
        fields = [_fields(p.run) for p in pts]
        keys = list(dict.fromkeys(k for f in fields for k in f))
        varying = [k for k in keys if len({f.get(k) for f in fields}) > 1]
        swept = next((k for k in _SWEPT if k in varying), varying[0] if varying else None)
        groups: dict[tuple, list[tuple[RunPoint, str]]] = defaultdict(list)
        fixed_text: dict[tuple, str] = {}
        for p, f in zip(pts, fields):
            held = tuple((k, f.get(k, "")) for k in keys if k != swept and not k.startswith("pass@1:"))
            groups[held].append((p, _text(swept, f.get(swept, "")) if swept else ""))
            fixed_text[held] = ", ".join(_text(k, v) for k, v in held if k != "maj")
        for held, members in groups.items():
            name = method if metric == "accuracy" else f"{method} {metric}"
            label = f"{name}, {fixed_text[held]}" if fixed_text[held] else name
            lines.append((label, sorted(members, key=lambda m: m[0].thinking)))
    return lines


def _ticks(xs: list[float]) -> list[float]:
    """Powers of two across the range when there are at least three, else the runs' own x values (thinned
    so that labels do not collide)."""
    lo, hi = min(xs), max(xs)
    powers = [2.0**e for e in range(0, 21) if lo <= 2.0**e <= hi]
    if len(powers) >= 3:
        return powers
    ticks: list[float] = []
    for x in sorted({round(x) if x >= 10 else round(x, 1) for x in xs}):
        if not ticks or x / ticks[-1] >= 1.12:
            ticks.append(x)
    return ticks


def _model_name(model: str | None) -> str:
    if not model:
        return "SmolLM2-135M-Instruct (embedded)"
    parts = [p for p in model.replace("\\", "/").split("/") if p]  # a Hub id whole, a local path's last two parts
    return "/".join(parts[-2:])


def scaling_figure(summary: Summary) -> Figure:
    """The scaling plot as a matplotlib `Figure` (see the module docstring); `plot_scaling` saves it."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.ticker
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.4, 4.8), dpi=150)
    ax = fig.add_subplot()
    top = max((p.accuracy for p in summary.points), default=0.0)
    y_top = min(108.0, max(10.0, top * 1.15 + 2))  # room above 100 % for the marks
    xs_all = []
    for index, (label, members) in enumerate(setting_lines(summary.points)):
        xs = [max(p.thinking, 1.0) for p, _ in members]  # log axis: a run that answered at once still shows
        ys = [p.accuracy for p, _ in members]
        sampled = members[0][0].metric != "accuracy"
        (line,) = ax.plot(xs, ys, marker="o", linewidth=1.8, linestyle="--" if sampled else "-", label=label,
                          clip_on=False)
        for x, y, (_, value) in zip(xs, ys, members):
            if value:
                # Alternate the marks of neighbouring lines: above, and below (or higher up near 0 %, where below
                # would run into the tick labels), so that lines meeting at a point keep readable marks.
                dy = 5 if index % 2 == 0 else -11 if y > 0.08 * y_top else 15
                ax.annotate(value, (x, y), textcoords="offset points", xytext=(4, dy),
                            fontsize=7, color=line.get_color())
        xs_all += xs
    ax.set_xscale("log", base=2)
    if xs_all:
        ax.set_xticks(_ticks(xs_all))
        pad = 1.15
        ax.set_xlim(min(xs_all) / pad, max(xs_all) * pad)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylim(0, y_top)
    ax.set_xlabel("Average thinking tokens per question (log scale)")
    ax.set_ylabel("Accuracy (%)")
    n = "" if summary.questions is None else f" (n={summary.questions}" + (
        f" of {summary.benchmark_size}, partial)" if summary.partial else " questions)")
    ax.set_title(f"{summary.benchmark}{n} · {_model_name(summary.model)}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig


def plot_scaling(summary: Summary, path: str | os.PathLike) -> Path:
    """Save `scaling_figure(summary)` as an image (PNG by the file name) and return its path."""
    out = Path(path)
    scaling_figure(summary).savefig(out)
    return out
