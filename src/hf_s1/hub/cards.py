"""Model and dataset cards, and evaluation results in the Hub's two formats (the card's `model-index` and the
newer `.eval_results/*.yaml` files), each carrying the thinking budget it was measured with."""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Union

import yaml
from huggingface_hub import DatasetCard, DatasetCardData, EvalResult, EvalResultEntry, ModelCard, ModelCardData
from huggingface_hub import eval_result_entries_to_yaml

from ..budget import ThinkingBudget, describe_budget
from ..errors import HfS1Error
from .errors import HubInputError
from .policy import BudgetPolicy

__all__ = [
    "EvalRecord",
    "KNOWN_BENCHMARKS",
    "load_eval_results",
    "eval_results_files",
    "render_model_card",
    "render_dataset_card",
    "DEFAULT_TAGS",
]

DEFAULT_TAGS = ["hf-s1", "s1", "budget-forcing", "test-time-scaling", "reasoning"]


@dataclass(frozen=True)
class _Benchmark:
    dataset_id: str
    name: str
    split: str
    task_id: str = "default"


# The Hub datasets s1 evaluates on (arXiv 2501.19393, simplescaling/s1's evaluation configs).
KNOWN_BENCHMARKS: dict[str, _Benchmark] = {
    "math500": _Benchmark("HuggingFaceH4/MATH-500", "MATH-500", "test"),
    "aime24": _Benchmark("simplescaling/aime24_nofigures", "AIME 2024", "train"),
    "aime25": _Benchmark("TIGER-Lab/AIME25", "AIME 2025", "train"),
    "gpqa_diamond": _Benchmark("Idavidrein/gpqa", "GPQA Diamond", "train", "gpqa_diamond"),
}


@dataclass(frozen=True)
class EvalRecord:
    """One evaluation figure: a benchmark, a metric value and the thinking budget it was measured with.

    Args:
        benchmark: short name (`"math500"`, `"aime24"`, `"aime25"`, `"gpqa_diamond"` or your own).
        value: the metric value (accuracy in percent for the aggregated per-sample files).
        metric: metric id, `"accuracy"` by default.
        budget: the `ThinkingBudget` of the run (`None`: no budget forcing).
        method: how the budget was applied, e.g. `"budget-forcing"`.
        thinking_tokens: average thinking tokens of the run.
        num_samples: how many questions the value averages.
        benchmark_size: how many questions the full benchmark has (known benchmarks: filled in). A result over
            fewer (`num_samples < benchmark_size`, e.g. an `--limit 4` run) is `partial`, and says so in the
            card's table, the `model-index` names and the `.eval_results` notes.
        dataset_id, dataset_name, split, task_id: the benchmark's Hub dataset; filled in for known benchmarks,
            required for others.
        date: ISO-8601 date of the run.

    Examples:

    ```python
    >>> from hf_s1 import ThinkingBudget
    >>> from hf_s1.hub import EvalRecord
    >>> r = EvalRecord("math500", 93.0, budget=ThinkingBudget(max_thinking_tokens=4096, num_waits=2))
    >>> r.dataset_id, r.split
    ('HuggingFaceH4/MATH-500', 'test')
    >>> r.notes()
    'hf-s1 budget forcing: max 4096 thinking tokens, 2 Wait extensions'
    >>> EvalRecord("math500", 50.0, num_samples=4).notes()
    'hf-s1 no budget forcing; partial run: 4 of 500 questions'

    ```
    """

    benchmark: str
    value: float
    metric: str = "accuracy"
    budget: Union[ThinkingBudget, None] = None
    method: Union[str, None] = None
    thinking_tokens: Union[float, None] = None
    num_samples: Union[int, None] = None
    benchmark_size: Union[int, None] = None
    dataset_id: Union[str, None] = None
    dataset_name: Union[str, None] = None
    split: Union[str, None] = None
    task_id: Union[str, None] = None
    date: Union[str, None] = None

    def __post_init__(self) -> None:
        if not isinstance(self.benchmark, str) or not self.benchmark:
            raise HubInputError(f"an evaluation result needs a benchmark name, got {self.benchmark!r}.")
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)) or not math.isfinite(self.value):
            raise HubInputError(f"the {self.benchmark} result needs a finite numeric value, got {self.value!r}.")
        if self.budget is not None and not isinstance(self.budget, ThinkingBudget):
            object.__setattr__(self, "budget", _budget_of(self.budget, self.benchmark))
        known = KNOWN_BENCHMARKS.get(self.benchmark.lower())
        if self.dataset_id is None:
            if known is None:
                raise HubInputError(
                    f"unknown benchmark {self.benchmark!r}: give its Hub dataset id (dataset_id=...) or use one of "
                    f"{sorted(KNOWN_BENCHMARKS)}."
                )
            object.__setattr__(self, "dataset_id", known.dataset_id)
        for name, default in (("dataset_name", known.name if known else self.benchmark),
                              ("split", known.split if known else None),
                              ("task_id", known.task_id if known else "default")):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        if self.benchmark_size is None and known is not None:
            object.__setattr__(self, "benchmark_size", _benchmark_size(self.benchmark.lower()))

    @property
    def partial(self) -> bool:
        """Whether the value averages fewer questions than the benchmark has."""
        return self.num_samples is not None and self.benchmark_size is not None and self.num_samples < self.benchmark_size

    def coverage(self) -> str:
        """`"partial run: 4 of 500 questions"`, `"500 questions"`, or `""` when the count is unknown."""
        if self.num_samples is None:
            return ""
        if self.partial:
            return f"partial run: {self.num_samples} of {self.benchmark_size} questions"
        return f"{self.num_samples} questions"

    def display_name(self) -> str:
        """The benchmark's name, qualified for a partial run: `"MATH-500 (partial: 4 of 500 questions)"`."""
        if self.partial:
            return f"{self.dataset_name} (partial: {self.num_samples} of {self.benchmark_size} questions)"
        return str(self.dataset_name)

    def budget_text(self) -> str:
        """The budget in words (`"no budget forcing"` when none)."""
        return "no budget forcing" if self.budget is None else describe_budget(self.budget)

    def notes(self) -> str:
        """The setting, for the `notes` of an `.eval_results` entry."""
        method = self.method or ("budget forcing" if self.budget is not None else "no budget forcing")
        text = f"hf-s1 {method.replace('-', ' ')}" + (f": {describe_budget(self.budget)}" if self.budget else "")
        if self.metric != "accuracy":
            text += f"; {self.metric}"
        if self.thinking_tokens is not None:
            text += f"; {self.thinking_tokens:.0f} thinking tokens on average"
        if self.num_samples is not None:
            text += f"; {self.coverage()}"
        return text

    def to_eval_result(self) -> EvalResult:
        """The card `model-index` form; the budget is in the metric's name and config."""
        config = None
        if self.budget is not None:
            config = ",".join(f"{k}={v}" for k, v in _compact_budget(self.budget).items()) or "unbounded"
        return EvalResult(
            task_type="text-generation",
            task_name="Reasoning",
            dataset_type=self.dataset_id,
            dataset_name=self.display_name(),
            dataset_config=None if self.task_id == "default" else self.task_id,
            dataset_split=self.split,
            metric_type=self.metric,
            metric_value=self.value,
            metric_name=f"{self.metric} ({self.budget_text()}" + (f"; {self.coverage()})" if self.partial else ")"),
            metric_config=config,
        )

    def to_eval_result_entry(self) -> EvalResultEntry:
        """The `.eval_results/*.yaml` form; the budget is in the notes."""
        return EvalResultEntry(dataset_id=self.dataset_id, task_id=self.task_id, value=self.value, date=self.date,
                               notes=self.notes())


def _benchmark_size(name: str) -> int | None:
    # The evaluation module owns the benchmarks' sizes (the questions a complete run asks).
    from ..eval.benchmarks import BENCHMARKS

    spec = BENCHMARKS.get(name)
    return spec.size if spec is not None else None


def _compact_budget(budget: ThinkingBudget) -> dict[str, Any]:
    """The fields that differ from the defaults, for short labels."""
    default = ThinkingBudget().to_dict()
    return {k: v for k, v in budget.to_dict().items() if v != default[k]}


def _budget_of(value: Any, where: str) -> ThinkingBudget | None:
    if value is None or isinstance(value, ThinkingBudget):
        return value
    if isinstance(value, int) and not isinstance(value, bool):  # a bare cap, as in sweep tables
        return ThinkingBudget(max_thinking_tokens=value)
    try:
        return BudgetPolicy.from_dict(value).budget
    except HfS1Error as exc:
        raise HubInputError(f"invalid budget in the {where} results: {exc}") from None


# ---- reading evaluation outputs ------------------------------------------------------------------------

EvalSource = Union[str, os.PathLike, EvalRecord, Mapping[str, Any], Iterable[Union[EvalRecord, Mapping[str, Any]]]]
_RECORD_KEYS = {f for f in EvalRecord.__dataclass_fields__}


def load_eval_results(source: EvalSource | None) -> list[EvalRecord]:
    """Evaluation results from records, mappings, or files written by an evaluation run.

    Args:
        source: an `EvalRecord`, a mapping, a list of either, or a path: a `.json` file (a list, or an object
            with a `"results"` list), a `.jsonl` file, or a folder whose `*.json` / `*.jsonl` files are read
            (recursively). Rows are either summaries (`benchmark`, `value`, optional `metric`, `budget`,
            `method`, `thinking_tokens`, `num_samples`, `dataset_id`, ...) or per-sample rows with a boolean
            `correct`, aggregated into accuracy in percent per (benchmark, method, run, budget). A folder written
            by `hf-s1 eval` (`sweep.json` + `samples.jsonl`) is read by `hf_s1.eval.summarize`: one record per
            run point, with the accuracy, metric (`accuracy`, `pass@1:N_samples`, `maj@k`), thinking tokens and
            question count `hf-s1 report` shows. A missing
            `benchmark` is taken from the folder name when it names a known benchmark (e.g. `runs/math500`).

    Examples:

    ```python
    >>> from hf_s1.hub import load_eval_results
    >>> rows = [{"benchmark": "aime24", "budget": {"max_thinking_tokens": 64}, "correct": c, "thinking_tokens": 64}
    ...         for c in (True, False, False, True)]
    >>> [(r.benchmark, r.value, r.num_samples) for r in load_eval_results(rows)]
    [('aime24', 50.0, 4)]

    ```
    """
    if source is None:
        return []
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        sweeps = _sweep_folders(path)
        rows = _read_rows(path, sweeps)
        records = [r for run in sweeps for r in _records_from_sweep(run)]
        if not rows and not records:
            raise HubInputError(f"no evaluation rows under {str(path)!r}: pass a sweep folder (sweep.json + "
                                f"samples.jsonl) or *.json / *.jsonl result files.")
        return records + _records_from_rows(rows, path)
    if isinstance(source, (EvalRecord, Mapping)):
        source = [source]
    items = list(source)
    records = [i for i in items if isinstance(i, EvalRecord)]
    rows = [i for i in items if not isinstance(i, EvalRecord)]
    bad = [i for i in rows if not isinstance(i, Mapping)]
    if bad:
        raise HubInputError(f"evaluation results must be EvalRecords, mappings or a path, got {type(bad[0]).__name__}.")
    return records + _records_from_rows([(None, r) for r in rows], None)


def _sweep_folders(path: Path) -> list[Path]:
    """The `hf-s1 eval` run folders under `path` (or `path` itself)."""
    from ..eval.sweep import MANIFEST_FILE

    if not path.is_dir():
        return []
    return sorted(m.parent for m in path.rglob(MANIFEST_FILE))


def _records_from_sweep(run: Path) -> list[EvalRecord]:
    """One record per point of `hf_s1.eval.summarize(run)`: the evaluation module reads its own folders and
    computes the figures; the card shows what `hf-s1 report` shows."""
    from ..eval import EvalError, summarize
    from ..eval.sweep import SAMPLES_FILE

    if not (run / SAMPLES_FILE).is_file():
        return []
    try:
        summary = summarize(run)
    except (EvalError, json.JSONDecodeError, KeyError) as exc:
        raise HubInputError(f"cannot read the evaluation sweep in {run}: {exc}") from None
    return [
        EvalRecord(
            benchmark=summary.benchmark,
            value=round(p.accuracy, 1),
            metric=p.metric,
            budget=_budget_of(p.budget, summary.benchmark),
            method=p.method,
            thinking_tokens=round(p.thinking, 1),
            num_samples=p.questions,
            benchmark_size=summary.benchmark_size,
        )
        for p in summary.points
    ]


def _read_json_rows(f: Path) -> list[Mapping[str, Any]]:
    text = f.read_text(encoding="utf-8")
    try:
        if f.suffix == ".jsonl":
            # A file killed mid-write may leave a torn last line; the finished rows stand.
            lines = [line for line in text.splitlines() if line.strip()]
            data = []
            for i, line in enumerate(lines):
                try:
                    data.append(json.loads(line))
                except json.JSONDecodeError:
                    if i != len(lines) - 1:
                        raise
        else:
            data = json.loads(text)
            data = data.get("results", [data]) if isinstance(data, Mapping) else data
    except json.JSONDecodeError as exc:
        raise HubInputError(f"{f} is not valid JSON ({exc}).") from None
    return [r for r in data if isinstance(r, Mapping)]


def _read_rows(path: Path, sweeps: Sequence[Path]) -> list[tuple[Path, Mapping[str, Any]]]:
    """Rows of the result files under `path` that are not part of an `hf-s1 eval` sweep folder."""
    if not path.exists():
        raise HubInputError(f"evaluation results path {str(path)!r} does not exist: pass the run's output folder or file.")
    if path.is_file():
        return [(path, r) for r in _read_json_rows(path)]
    others = sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl")
                    and not any(run == p.parent or run in p.parents for run in sweeps))
    return [(f, r) for f in others for r in _read_json_rows(f)]


def _benchmark_of(row: Mapping[str, Any], file: Path | None, root: Path | None) -> str | None:
    name = row.get("benchmark") or row.get("task")
    if name:
        return str(name)
    for folder in ([file.parent] if file else []) + ([root] if root else []):
        for part in reversed(folder.parts):
            if part.lower() in KNOWN_BENCHMARKS:
                return part.lower()
    return None


def _records_from_rows(rows: Sequence[tuple[Path | None, Mapping[str, Any]]], root: Path | None) -> list[EvalRecord]:
    records: list[EvalRecord] = []
    groups: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for file, row in rows:
        where = str(file) if file else "given"
        bench = _benchmark_of(row, file, root)
        if bench is None:
            raise HubInputError(f"a row of the {where} evaluation results names no benchmark: add a 'benchmark' field.")
        if "correct" in row:  # per-sample row
            key = (bench, row.get("method"), row.get("run"), json.dumps(row.get("budget"), sort_keys=True),
                   row.get("dataset_id"))
            groups[key].append(row)
            continue
        fields = {k: v for k, v in row.items() if k in _RECORD_KEYS}
        if "value" not in fields and "accuracy" in row:
            fields["value"] = row["accuracy"]
        if "value" not in fields:
            raise HubInputError(f"a {bench} row of the {where} evaluation results has neither 'value' nor 'correct'.")
        fields["benchmark"] = bench
        fields["budget"] = _budget_of(row.get("budget"), bench)
        records.append(EvalRecord(**fields))
    for (bench, method, _run, budget_json, dataset_id), group in groups.items():
        correct = [bool(r["correct"]) for r in group]
        tokens = [r["thinking_tokens"] for r in group if isinstance(r.get("thinking_tokens"), (int, float))]
        records.append(EvalRecord(
            benchmark=bench,
            value=round(100.0 * sum(correct) / len(correct), 1),
            budget=_budget_of(json.loads(budget_json), bench),
            method=method,
            thinking_tokens=round(sum(tokens) / len(tokens), 1) if tokens else None,
            num_samples=len(group),
            dataset_id=dataset_id,
        ))
    return records


def eval_results_files(records: Sequence[EvalRecord]) -> dict[str, bytes]:
    """`.eval_results/<benchmark>.yaml` files (path -> content), one per benchmark, in the Hub's format."""
    by_bench: dict[str, list[EvalResultEntry]] = defaultdict(list)
    for r in records:
        by_bench[r.benchmark].append(r.to_eval_result_entry())
    return {
        f".eval_results/{_safe_name(b)}.yaml": yaml.safe_dump(eval_result_entries_to_yaml(entries), sort_keys=False,
                                                               allow_unicode=True).encode()
        for b, entries in by_bench.items()
    }


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# ---- cards ---------------------------------------------------------------------------------------------


def _template(name: str) -> str:
    return resources.files(__package__).joinpath("templates").joinpath(name).read_text(encoding="utf-8")


def _as_list(value: Union[str, Sequence[str], None]) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def render_model_card(
    repo_id: str,
    *,
    policy: BudgetPolicy | None = None,
    eval_results: Sequence[EvalRecord] = (),
    base_model: str | None = None,
    datasets: Union[str, Sequence[str], None] = None,
    tags: Union[str, Sequence[str], None] = None,
    license: str | None = None,
    language: Union[str, Sequence[str], None] = "en",
    model_name: str | None = None,
    description: str | None = None,
    custom_generate: bool = False,
    template_path: Union[str, os.PathLike, None] = None,
) -> ModelCard:
    """Render the model card (`model_card.md` template) with `huggingface_hub`'s `ModelCard`/`ModelCardData`.

    Args:
        repo_id: the repository the card is for (used in usage snippets).
        policy: the default thinking-budget policy shown in the card.
        eval_results: results for the `model-index` metadata and the results table.
        base_model, datasets, tags, license, language: card metadata (`hf-s1` tags are always added).
        model_name: the card title and `model-index` name (default: the repo name).
        description: the opening paragraph.
        custom_generate: whether the repo carries `custom_generate/` (adds the `transformers` snippet).
        template_path: another Jinja template (default: the one shipped with hf-s1, `model_card.md`).

    Examples:

    ```python
    >>> from hf_s1 import ThinkingBudget
    >>> from hf_s1.hub import BudgetPolicy, render_model_card
    >>> card = render_model_card("me/s1-smollm2", policy=BudgetPolicy(ThinkingBudget(max_thinking_tokens=512)),
    ...                          base_model="HuggingFaceTB/SmolLM2-135M-Instruct", license="apache-2.0")
    >>> card.data.base_model, card.data.pipeline_tag
    ('HuggingFaceTB/SmolLM2-135M-Instruct', 'text-generation')
    >>> "max 512 thinking tokens" in card.text
    True

    ```
    """
    records = list(eval_results)
    name = model_name or repo_id.rstrip("/").split("/")[-1]
    data = ModelCardData(
        base_model=base_model,
        datasets=_as_list(datasets) or None,
        tags=DEFAULT_TAGS + [t for t in _as_list(tags) if t not in DEFAULT_TAGS],
        license=license,
        language=language,
        library_name="transformers",
        pipeline_tag="text-generation",
        model_name=name if records else None,  # only used by (and only written with) the model-index
        eval_results=[r.to_eval_result() for r in records] or None,
    )
    from .. import __version__

    rows = [
        {"benchmark": r.display_name(), "metric": r.metric, "value": f"{r.value:g}", "budget": r.budget_text(),
         "thinking_tokens": "" if r.thinking_tokens is None else f"{r.thinking_tokens:g}",
         "questions": "" if r.num_samples is None else (f"{r.num_samples} of {r.benchmark_size}" if r.partial
                                                        else str(r.num_samples))}
        for r in records
    ]
    partial = sorted({f"{r.dataset_name}: {r.num_samples} of {r.benchmark_size}" for r in records if r.partial})
    cap = policy.budget.max_thinking_tokens if policy is not None else None
    kwargs = dict(
        repo_id=repo_id,
        model_name=name,
        description=description,
        base_model=base_model,
        datasets=_as_list(datasets),
        policy=policy is not None,
        policy_description=policy.describe() if policy is not None else "",
        policy_json=json.dumps(policy.to_dict(), indent=2) if policy is not None else "",
        usage_max_thinking=2 * cap if cap else 1024,
        custom_generate=custom_generate,
        eval_rows=rows,
        partial_results=partial,
        hf_s1_version=__version__,
    )
    if template_path is not None:
        return ModelCard.from_template(data, template_path=str(template_path), **kwargs)
    return ModelCard.from_template(data, template_str=_template("model_card.md"), **kwargs)


def render_dataset_card(
    repo_id: str,
    *,
    splits: Mapping[str, int],
    columns: Sequence[str],
    trace_column: str | None = None,
    pretty_name: str | None = None,
    description: str | None = None,
    license: str | None = None,
    language: Union[str, Sequence[str], None] = "en",
    source_datasets: Union[str, Sequence[str], None] = None,
    tags: Union[str, Sequence[str], None] = None,
) -> DatasetCard:
    """Render the dataset card of an s1K-style set with `DatasetCard`/`DatasetCardData`.

    Args:
        repo_id: the dataset repository.
        splits: split name -> number of rows (one parquet file per split under `data/`).
        columns: the column names.
        trace_column: the column holding reasoning traces, if any.
        pretty_name, description, license, language, tags: card metadata.
        source_datasets: Hub ids the set was curated from (e.g. `simplescaling/s1K`).
    """
    from .. import __version__

    total = sum(splits.values())
    size = "n<1K" if total < 1_000 else "1K<n<10K" if total < 10_000 else "10K<n<100K" if total < 100_000 else "n>100K"
    data = DatasetCardData(
        license=license,
        language=language,
        pretty_name=pretty_name,
        task_categories=["text-generation"],
        tags=DEFAULT_TAGS[:2] + ["reasoning"] + [t for t in _as_list(tags) if t not in DEFAULT_TAGS],
        size_categories=[size],
        configs=[{"config_name": "default",
                  "data_files": [{"split": s, "path": f"data/{s}-*.parquet"} for s in splits]}],
    )
    return DatasetCard.from_template(
        data, template_str=_template("dataset_card.md"), repo_id=repo_id, pretty_name=pretty_name,
        description=description, splits=[{"name": s, "num_rows": n} for s, n in splits.items()],
        columns=list(columns), trace_column=trace_column, source_datasets=_as_list(source_datasets),
        hf_s1_version=__version__,
    )
