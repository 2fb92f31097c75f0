"""Summaries of a sweep folder: per-run points, per-method Control / Scaling / Performance (the paper's
Table 3), a markdown report with the metrics' definitions, and the scaling plot (`hf_s1.eval.plot`)."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .benchmarks import BENCHMARKS
from .errors import EvalError
from .methods import pass_at_1_name
from .metrics import control, majority_vote, pass_at_k, performance, scaling
from .plot import plot_scaling
from .sweep import read_manifest, read_samples

__all__ = ["RunPoint", "MethodSummary", "Summary", "summarize", "render_markdown", "plot_scaling", "write_report",
           "METRIC_DEFINITIONS"]


@dataclass
class RunPoint:
    """One point of a scaling curve.

    Attributes:
        method, run: which run (`run` carries the setting, plus `maj@k` for majority votes).
        k: samples voted over (1 for runs without a vote).
        questions: questions with results.
        accuracy: % correct, as `metric` says: `"accuracy"` (one generation per question; rejection sampling
            counts its accepted draw), `"pass@1:N_samples"` (mean over questions of the share of correct
            samples among N) or `"maj@k"` (the majority answer of k samples).
        pass_at_1: % correct over all samples (the mean over questions of each question's share).
        thinking: average thinking tokens per question and generation (for maj@k: summed over the k votes,
            the compute spent per question).
        thinking_per_sample: average thinking tokens of one sample (what the bounds apply to).
        control: % of samples within `[a_min, a_max]` (`None` when the run sets no bound).
        a_min, a_max: the run's bounds.
        waits: average "Wait"s per sample. capped: % of samples cut at the cap.
        accepted: rejection sampling: % of samples that met the bound within the tries. tries: average draws.
        metric: what `accuracy` measures (above).
        samples: generations per question.
        budget: the run's `ThinkingBudget` as a dict (`"auto"` caps as written).
        temperature: the sampling temperature (`None`: greedy).
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
    metric: str = "accuracy"
    samples: int = 1
    budget: dict[str, Any] | None = None
    temperature: float | None = None

    @property
    def series(self) -> str:
        """The metric family the method's summary groups by: `accuracy`, `pass@1:N_samples` or `maj@k`."""
        return "maj@k" if self.metric.startswith("maj@") else self.metric


@dataclass
class MethodSummary:
    """The paper's metrics (Table 3) for one method over its runs: Control and Performance in %, Scaling in
    accuracy points per 1,000 thinking tokens. `metric` is the accuracy they are computed on (`accuracy`,
    `pass@1:N_samples` or `maj@k`); one method sampled for pass@1 gets a second row."""

    method: str
    runs: int
    control: float | None
    scaling_per_1k: float | None
    performance: float
    metric: str = "accuracy"


@dataclass
class Summary:
    """Every run's point and every method's Table 3 row, with what was run: the benchmark, its size, the model.

    `questions` is how many questions the sweep asked; `benchmark_size` the full benchmark's (500 for
    MATH-500); a run over fewer is `partial` and its accuracy is not the benchmark's score.
    """

    benchmark: str
    model: str | None
    engine: str
    points: list[RunPoint]
    methods: list[MethodSummary] = field(default_factory=list)
    questions: int | None = None
    benchmark_size: int | None = None

    @property
    def partial(self) -> bool:
        return self.questions is not None and self.benchmark_size is not None and self.questions < self.benchmark_size

    @property
    def coverage(self) -> str:
        """`"4 of 500 questions (partial run)"`, `"500 questions"`, or `""` when unknown."""
        if self.questions is None:
            return ""
        if self.partial:
            return f"{self.questions} of {self.benchmark_size} questions (partial run)"
        return f"{self.questions} questions"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["partial"] = self.partial
        return d


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _vote_label(label: str, k: int) -> str:
    # "max=64,waits=0,k=8" -> "max=64,waits=0,maj@2"; "k=8" -> "maj@2"
    return ",".join(f"maj@{k}" if part.startswith("k=") else part for part in label.split(","))


def _points(spec: dict[str, Any], records: list[dict[str, Any]]) -> list[RunPoint]:
    by_q: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_q[r["id"]].append(r)
    for rows in by_q.values():
        rows.sort(key=lambda r: r["sample"])
    a_min, a_max = spec.get("a_min"), spec.get("a_max")
    bounded = a_min is not None or a_max is not None
    thinking = [r["thinking_tokens"] for r in records]
    # pass@1 from n samples per question (lighteval's PassAtK(k=1, n)): the mean over questions of c / n.
    share = [pass_at_k(len(rows), sum(bool(r["correct"]) for r in rows), 1) for rows in by_q.values()]
    samples = int(spec.get("samples", 1) or 1)
    common = dict(
        method=spec["method"], questions=len(by_q), pass_at_1=100 * _mean(share),
        thinking_per_sample=_mean(thinking), a_min=a_min, a_max=a_max,
        control=100 * control(thinking, a_min, a_max) if bounded else None,
        waits=_mean([r["waits"] for r in records]), capped=100 * _mean([r["capped"] for r in records]),
        samples=samples, budget=spec.get("budget"), temperature=spec.get("temperature") if spec.get("do_sample") else None,
    )
    if spec.get("accept_max") is not None:
        common.update(accepted=100 * _mean([r["accepted"] for r in records]), tries=_mean([r["tries"] for r in records]))
    ks = spec.get("vote_k") or []
    if not ks:
        metric = pass_at_1_name(samples) if samples > 1 else "accuracy"
        return [RunPoint(run=spec["label"], k=1, accuracy=common["pass_at_1"], thinking=common["thinking_per_sample"],
                         metric=metric, **common)]
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
            points.append(RunPoint(run=_vote_label(spec["label"], k), k=k, accuracy=100 * _mean(correct),
                                   thinking=_mean(spent), metric=f"maj@{k}", **common))
    return points


def _benchmark_size(manifest: dict[str, Any]) -> int | None:
    size = manifest.get("benchmark_size")
    if size is None:  # folders written before the size was recorded: the named benchmark's known size
        spec = BENCHMARKS.get(manifest.get("benchmark", ""))
        size = spec.size if spec is not None else None
    return size


def summarize(run_dir: str | os.PathLike) -> Summary:
    """Read a sweep folder and compute every run's point and every method's Control / Scaling / Performance.

    Control of a method is the share of its runs whose average thinking lies within the run's bounds (the
    paper's definition over runs); runs without bounds (class-conditional, plain majority voting, caps of
    `"auto"` or none) are left out of it, and a method with none has no Control. Sampled pass@1 runs and
    majority votes are summarized apart from the method's greedy runs (`MethodSummary.metric`).

    Examples:

    ```python
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> run = {"method": "budget-forcing", "label": "max=8,waits=0", "a_min": None, "a_max": 8, "vote_k": []}
    >>> manifest = {"benchmark": "math500", "model": None, "engine": "x", "question_ids": ["0", "1", "2", "3"],
    ...             "runs": [run]}
    >>> _ = (d / "sweep.json").write_text(json.dumps(manifest))
    >>> recs = [{"id": str(i), "method": "budget-forcing", "run": "max=8,waits=0", "sample": 0, "thinking_tokens": 8,
    ...          "correct": i == 0, "waits": 0, "capped": True} for i in range(4)]
    >>> _ = (d / "samples.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in recs))
    >>> s = summarize(d)
    >>> s.points[0].accuracy, s.points[0].control, s.methods[0].control, s.coverage
    (25.0, 100.0, 100.0, '4 of 500 questions (partial run)')

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
    by_series: dict[tuple[str, str], list[RunPoint]] = defaultdict(list)
    for p in points:
        by_series[p.method, p.series].append(p)
    for (method, series), pts in by_series.items():
        bounded = [p for p in pts if p.a_min is not None or p.a_max is not None]
        ctrl = None
        if bounded:
            ctrl = 100 * control([p.thinking_per_sample for p in bounded], [p.a_min for p in bounded],
                                 [p.a_max for p in bounded])
        slope = scaling([p.thinking for p in pts], [p.accuracy for p in pts])
        methods.append(MethodSummary(method, len(pts), ctrl, None if slope is None else 1000 * slope,
                                     performance([p.accuracy for p in pts]), series))
    ids = manifest.get("question_ids")
    questions = len(ids) if ids is not None else max(p.questions for p in points) if points else None
    return Summary(manifest["benchmark"], manifest.get("model"), manifest.get("engine", ""), points, methods,
                   questions, _benchmark_size(manifest))


def _fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{suffix}"


# Printed under the Table 3 columns; the definitions are the paper's (arXiv 2501.19393, section 3).
METRIC_DEFINITIONS = (
    "- **Control**: the share of a method's runs whose average thinking tokens a lie within the run's bounds, "
    "1/|A| · Σ 1[a_min ≤ a ≤ a_max], in %. A run's bound is its token budget N; runs without one (no cap, "
    "`auto` caps, class-conditional, plain majority voting) are left out; n/a when no run has one.",
    "- **Scaling**: the average slope of the accuracy curve over thinking tokens, "
    "1/C(|A|,2) · Σ_{a<b} (f(b) − f(a)) / (b − a), over every pair of runs, in accuracy points per 1,000 "
    "thinking tokens; pairs with equal thinking form no slope; n/a with fewer than two distinct lengths.",
    "- **Performance**: the best accuracy over the method's runs, max_a f(a), in %.",
    "- **Metric** (the accuracy f): `accuracy` = % correct with one generation per question (greedy at "
    "temperature 0); `pass@1:N_samples` = mean over questions of the share of correct answers among N sampled "
    "generations (lighteval / open-r1); `maj@k` = % correct of the majority answer of k samples (x = thinking "
    "summed over the k).",
)


def render_markdown(summary: Summary) -> str:
    """The report: Table 3's columns (Control, Scaling, Performance) per method with their definitions under
    the table, then every run's point."""
    model = summary.model or "SmolLM2-135M-Instruct (embedded default)"
    lines = [f"# {summary.benchmark}: test-time scaling", "",
             f"model: {model}; engine: {summary.engine}" + (f"; {summary.coverage}" if summary.coverage else ""), ""]
    if summary.partial:
        lines += [f"**Partial run**: {summary.questions} of the benchmark's {summary.benchmark_size} questions; "
                  f"these figures are not {summary.benchmark} scores.", ""]
    lines += ["## Control, Scaling, Performance (the paper's Table 3)", "",
              "| Method | Metric | Runs | Control | Scaling (acc. pts / 1k thinking tokens) | Performance |",
              "|---|---|---:|---:|---:|---:|"]
    for m in summary.methods:
        lines.append(f"| {m.method} | {m.metric} | {m.runs} | {_fmt(m.control, 0, ' %')} | {_fmt(m.scaling_per_1k, 2)} | "
                     f"{_fmt(m.performance)} |")
    lines += ["", *METRIC_DEFINITIONS, "", "## Runs", "",
              "| Method | Run | Metric | Questions | Accuracy % | pass@1 % | Avg thinking | Control % | Waits | "
              "Capped % | Accepted % |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in summary.points:
        lines.append(f"| {p.method} | {p.run} | {p.metric} | {p.questions} | {p.accuracy:.1f} | {p.pass_at_1:.1f} | "
                     f"{p.thinking:.1f} | {_fmt(p.control, 0)} | {p.waits:.2f} | {p.capped:.0f} | {_fmt(p.accepted, 0)} |")
    return "\n".join(lines) + "\n"


def write_report(run_dir: str | os.PathLike) -> dict[str, Path]:
    """Write `summary.md`, `summary.json` and `scaling.png` into the sweep folder; returns their paths.

    Examples:

    ```python
    >>> write_report("/nonexistent/run")
    Traceback (most recent call last):
    ...
    hf_s1.errors.EvalError: /nonexistent/run is not a sweep folder (no sweep.json); run `hf-s1 eval --out /nonexistent/run` first.

    ```
    """
    summary = summarize(run_dir)
    d = Path(run_dir)
    paths = {"markdown": d / "summary.md", "json": d / "summary.json", "plot": d / "scaling.png"}
    paths["markdown"].write_text(render_markdown(summary))
    paths["json"].write_text(json.dumps(summary.to_dict(), indent=1))
    plot_scaling(summary, paths["plot"])
    return paths
