"""Summaries of a sweep folder: per-run points, per-method Control / Scaling / Performance, a markdown table
and the paper-style plot (accuracy against average thinking tokens, log-scale x)."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import EvalError
from .metrics import control, majority_vote, performance, scaling
from .sweep import read_manifest, read_samples

__all__ = ["RunPoint", "MethodSummary", "Summary", "summarize", "render_markdown", "plot_scaling", "write_report"]


@dataclass
class RunPoint:
    """One point of a scaling curve.

    Attributes:
        method, run: which run (`run` carries the setting, plus `k` for majority votes).
        k: samples voted over (1 for single-sample runs).
        questions: questions with results.
        accuracy: % correct (maj@k for majority votes; rejection sampling counts its accepted draw).
        pass_at_1: % correct over all samples.
        thinking: average thinking tokens per question (summed over the k votes: the compute spent).
        thinking_per_sample: average thinking tokens of one sample (what the bounds apply to).
        control: % of samples within `[a_min, a_max]` (`None` when the run sets no bound).
        a_min, a_max: the run's bounds.
        waits: average "Wait"s per sample. capped: % of samples cut at the cap.
        accepted: rejection sampling: % of samples that met the bound within the tries. tries: average draws.
    """

    method: str
    run: str
    k: int
    questions: int
    accuracy: float
    pass_at_1: float
    thinking: float
    thinking_per_sample: float
    control: float | None
    a_min: int | None
    a_max: int | None
    waits: float
    capped: float
    accepted: float | None = None
    tries: float | None = None


@dataclass
class MethodSummary:
    """The paper's metrics for one method over its runs (Control and Performance in %, Scaling in accuracy
    points per 1,000 thinking tokens)."""

    method: str
    runs: int
    control: float | None
    scaling_per_1k: float | None
    performance: float


@dataclass
class Summary:
    benchmark: str
    model: str | None
    engine: str
    points: list[RunPoint]
    methods: list[MethodSummary] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _points(spec: dict[str, Any], records: list[dict[str, Any]]) -> list[RunPoint]:
    by_q: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_q[r["id"]].append(r)
    for rows in by_q.values():
        rows.sort(key=lambda r: r["sample"])
    a_min, a_max = spec.get("a_min"), spec.get("a_max")
    bounded = a_min is not None or a_max is not None
    thinking = [r["thinking_tokens"] for r in records]
    common = dict(
        method=spec["method"], questions=len(by_q), pass_at_1=100 * _mean([r["correct"] for r in records]),
        thinking_per_sample=_mean(thinking), a_min=a_min, a_max=a_max,
        control=100 * control(thinking, a_min, a_max) if bounded else None,
        waits=_mean([r["waits"] for r in records]), capped=100 * _mean([r["capped"] for r in records]),
    )
    if spec.get("accept_max") is not None:
        common.update(accepted=100 * _mean([r["accepted"] for r in records]), tries=_mean([r["tries"] for r in records]))
    ks = spec.get("vote_k") or []
    if not ks:
        return [RunPoint(run=spec["label"], k=1, accuracy=common["pass_at_1"],
                         thinking=_mean([sum(r["thinking_tokens"] for r in rows) for rows in by_q.values()]), **common)]
    points = []
    for k in ks:
        correct, spent = [], []
        for rows in by_q.values():
            votes = rows[:k]
            if len(votes) < k:
                continue  # an unfinished question (sweep still running) has no maj@k yet
            winner = majority_vote([r["vote_key"] for r in votes])
            correct.append(winner is not None and votes[winner]["correct"])
            spent.append(sum(r["thinking_tokens"] for r in votes))
        if correct:
            points.append(RunPoint(run=f"{spec['label'].rsplit(',k=', 1)[0]},maj@{k}" if "," in spec["label"]
                                   else f"maj@{k}", k=k, accuracy=100 * _mean(correct), thinking=_mean(spent), **common))
    return points


def summarize(run_dir: str | os.PathLike) -> Summary:
    """Read a sweep folder and compute every run's point and every method's Control / Scaling / Performance.

    Control of a method is the share of its runs whose average thinking lies within the run's bounds (the
    paper's definition over runs); methods without bounds (class-conditional, plain majority voting) have none.

    Examples:

    ```python
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> run = {"method": "budget-forcing", "label": "max=8,waits=0", "a_min": None, "a_max": 8, "vote_k": []}
    >>> _ = (d / "sweep.json").write_text(json.dumps({"benchmark": "toy", "model": None, "engine": "x", "runs": [run]}))
    >>> recs = [{"id": str(i), "method": "budget-forcing", "run": "max=8,waits=0", "sample": 0, "thinking_tokens": 8,
    ...          "correct": i == 0, "waits": 0, "capped": True} for i in range(4)]
    >>> _ = (d / "samples.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in recs))
    >>> s = summarize(d)
    >>> s.points[0].accuracy, s.points[0].control, s.methods[0].control
    (25.0, 100.0, 100.0)

    ```
    """
    manifest = read_manifest(run_dir)
    records = read_samples(run_dir)
    if not records:
        raise EvalError(f"{run_dir} has no samples yet; run (or resume) `hf-s1 eval --out {run_dir}`.")
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        grouped[f"{r['method']}/{r['run']}"].append(r)
    points: list[RunPoint] = []
    for spec in manifest["runs"]:
        recs = grouped.get(f"{spec['method']}/{spec['label']}")
        if recs:
            points.extend(_points(spec, recs))
    methods = []
    by_method: dict[str, list[RunPoint]] = defaultdict(list)
    for p in points:
        by_method[p.method].append(p)
    for method, pts in by_method.items():
        bounded = [p for p in pts if p.a_min is not None or p.a_max is not None]
        ctrl = None
        if bounded:
            ctrl = 100 * control([p.thinking_per_sample for p in bounded], [p.a_min for p in bounded],
                                 [p.a_max for p in bounded])
        slope = scaling([p.thinking for p in pts], [p.accuracy for p in pts])
        methods.append(MethodSummary(method, len(pts), ctrl, None if slope is None else 1000 * slope,
                                     performance([p.accuracy for p in pts])))
    return Summary(manifest["benchmark"], manifest.get("model"), manifest.get("engine", ""), points, methods)


def _fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{suffix}"


def render_markdown(summary: Summary) -> str:
    """Two markdown tables: the methods (Table 3's columns) and every run's point."""
    lines = [f"# {summary.benchmark}: test-time scaling", "",
             f"model: {summary.model or 'SmolLM2-135M-Instruct (embedded default)'}; engine: {summary.engine}", "",
             "| Method | Runs | Control | Scaling (acc. pts / 1k thinking tokens) | Performance |",
             "|---|---:|---:|---:|---:|"]
    for m in summary.methods:
        lines.append(f"| {m.method} | {m.runs} | {_fmt(m.control, 0, ' %')} | {_fmt(m.scaling_per_1k, 2)} | "
                     f"{_fmt(m.performance)} |")
    lines += ["", "| Method | Run | Questions | Accuracy % | pass@1 % | Avg thinking | Control % | Waits | Capped % | "
              "Accepted % |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in summary.points:
        lines.append(f"| {p.method} | {p.run} | {p.questions} | {p.accuracy:.1f} | {p.pass_at_1:.1f} | {p.thinking:.1f} | "
                     f"{_fmt(p.control, 0)} | {p.waits:.2f} | {p.capped:.0f} | {_fmt(p.accepted, 0)} |")
    return "\n".join(lines) + "\n"


def plot_scaling(summary: Summary, path: str | os.PathLike) -> Path:
    """Accuracy against average thinking tokens (log2 x axis), one line per method, as in the paper's figures."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=150)
    by_method: dict[str, list[RunPoint]] = defaultdict(list)
    for p in summary.points:
        by_method[p.method].append(p)
    for method, pts in by_method.items():
        pts = sorted(pts, key=lambda p: p.thinking)
        xs = [max(p.thinking, 1.0) for p in pts]  # log axis: a run that answered at once still shows
        ax.plot(xs, [p.accuracy for p in pts], marker="o", linewidth=1.8, label=method, clip_on=False)
    ax.set_xscale("log", base=2)
    # Plain token counts (512, 2048, ...) read better than powers of two.
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
    xs_all = [max(p.thinking, 1.0) for p in summary.points]
    if xs_all and max(xs_all) < 4 * min(xs_all):  # under two powers of two in range: label the runs instead
        ax.set_xticks(sorted({round(x, 1) for x in xs_all}))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    top = max((p.accuracy for p in summary.points), default=0.0)
    ax.set_ylim(0, min(100.0, max(10.0, top * 1.15 + 2)))
    ax.set_xlabel("Average thinking time (tokens)")
    ax.set_ylabel("Accuracy (%)")
    ax.set_title(f"{summary.benchmark}: accuracy vs. thinking")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def write_report(run_dir: str | os.PathLike) -> dict[str, Path]:
    """Write `summary.md`, `summary.json` and `scaling.png` into the sweep folder; returns their paths.

    Examples:

    ```python
    >>> write_report("/nonexistent/run")
    Traceback (most recent call last):
    ...
    hf_s1.eval.errors.EvalError: /nonexistent/run is not a sweep folder (no sweep.json); run `hf-s1 eval --out /nonexistent/run` first.

    ```
    """
    summary = summarize(run_dir)
    d = Path(run_dir)
    paths = {"markdown": d / "summary.md", "json": d / "summary.json", "plot": d / "scaling.png"}
    paths["markdown"].write_text(render_markdown(summary))
    paths["json"].write_text(json.dumps(summary.to_dict(), indent=1))
    plot_scaling(summary, paths["plot"])
    return paths
