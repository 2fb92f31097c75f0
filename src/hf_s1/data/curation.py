"""s1's data curation as composable, seeded steps: quality -> (decontamination) -> difficulty -> diversity.

Each step takes a `datasets.Dataset` and returns the kept rows plus a `StageReport`; `curate` chains them and
returns a `CurationResult` (the data set and a `CurationReport` of counts per stage)."""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Union

from .decontamination import NgramIndex, decontaminate
from .loading import DataError, TraceSource, get_trace_source

__all__ = [
    "StageReport",
    "CurationReport",
    "CurationResult",
    "DEFAULT_ARTEFACTS",
    "quality_filter",
    "add_trace_lengths",
    "difficulty_filter",
    "grade_with_model",
    "diversity_sample",
    "curate",
]

# Formatting artefacts s1 drops: questions that refer to images, and Asymptote figures outside AIME (whose
# "nofigures" text is usable without them).
DEFAULT_ARTEFACTS: dict[str, str] = {
    "image": r"!\[[^\]]*\]\(|<img\b|\\includegraphics|\.(?:png|jpe?g|gif|svg)\b",
    "asy": r"\[asy\]",
}
# Trace text that is an API failure rather than reasoning.
_API_ERROR = re.compile(r"^\s*(?:error|api error|exception)\b|rate limit exceeded|internal server error", re.I)
_TRUE = {"true", "yes", "1", "correct", "y"}
_FALSE = {"false", "no", "0", "incorrect", "n", ""}


@dataclass
class StageReport:
    """Counts of one curation step: rows in and out, and rows dropped per reason."""

    stage: str
    rows_in: int
    rows_out: int
    dropped: dict[str, int] = field(default_factory=dict)


@dataclass
class CurationReport:
    """The steps of a curation run in order, with the seed that makes it reproducible."""

    seed: int | None = None
    stages: list[StageReport] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "stages": [asdict(s) for s in self.stages]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def __str__(self) -> str:
        lines = [f"{'stage':<16}{'in':>8}{'out':>8}  dropped"]
        for s in self.stages:
            why = ", ".join(f"{k}={v}" for k, v in sorted(s.dropped.items())) or "-"
            lines.append(f"{s.stage:<16}{s.rows_in:>8}{s.rows_out:>8}  {why}")
        return "\n".join(lines)


@dataclass
class CurationResult:
    """What `curate` returns: the selected rows and the report."""

    dataset: Any
    report: CurationReport


def _source_is(row: Mapping[str, Any], column: str, allowed: Sequence[str]) -> bool:
    value = str(row.get(column) or "").lower()
    return any(a.lower() in value for a in allowed)


def quality_filter(
    dataset: Any,
    *,
    trace: Union[str, TraceSource, None] = None,
    required_columns: Sequence[str] | None = None,
    artefacts: Mapping[str, str] | None = None,
    artefact_columns: Sequence[str] = ("question",),
    source_column: str = "source_type",
    asy_allowed_sources: Sequence[str] = ("aime",),
) -> tuple[Any, StageReport]:
    """Drop rows with missing fields, API errors in the trace, or formatting artefacts (images, `[asy]` outside AIME).

    Args:
        dataset: the pool.
        trace: which columns hold the trace and attempt (detected when None).
        required_columns: columns that must be present and non-empty (default: question, trace, attempt).
        artefacts: `{reason: regex}` searched in `artefact_columns` (default `DEFAULT_ARTEFACTS`).
        artefact_columns: text columns searched for artefacts.
        source_column: column naming the source, for the `[asy]` exception.
        asy_allowed_sources: sources (substring match, case-insensitive) where `[asy]` is kept.

    Returns:
        `(kept rows, StageReport)` with reasons `missing:<column>`, `api_error` and the artefact names.

    Examples:

    ```python
    >>> from datasets import Dataset
    >>> from hf_s1.data.curation import quality_filter
    >>> pool = Dataset.from_list([
    ...     {"question": "Area? [asy]draw(unitcircle);[/asy]", "source_type": "olympiad", "thinking_trajectories": ["t"], "attempt": "a"},
    ...     {"question": "Area? [asy]draw(unitcircle);[/asy]", "source_type": "AIME_1983_2024", "thinking_trajectories": ["t"], "attempt": "a"},
    ...     {"question": "Sum?", "source_type": "olympiad", "thinking_trajectories": ["t"], "attempt": ""},
    ... ])
    >>> kept, report = quality_filter(pool)
    >>> list(kept["source_type"]), report.dropped
    (['AIME_1983_2024'], {'asy': 1, 'missing:attempt': 1})

    ```
    """
    source = get_trace_source(trace, dataset.column_names)
    required = list(required_columns or ("question", source.trace_column, source.attempt_column))
    absent = [c for c in required if c not in dataset.column_names]
    if absent:
        raise DataError(f"required columns {absent} are not in the pool ({dataset.column_names}); "
                        f"set required_columns= or trace= to match it.")
    patterns = {k: re.compile(v, re.I) for k, v in (DEFAULT_ARTEFACTS if artefacts is None else artefacts).items()}
    has_source = source_column in dataset.column_names

    def reason(row: Mapping[str, Any]) -> str:
        for col in required:
            value = row[col]
            if isinstance(value, (list, tuple)):
                value = value[0] if value else None
            if value is None or (isinstance(value, str) and not value.strip()):
                return f"missing:{col}"
        trace_text = row[source.trace_column]
        trace_text = trace_text[0] if isinstance(trace_text, (list, tuple)) else trace_text
        if isinstance(trace_text, str) and _API_ERROR.search(trace_text[:200]):
            return "api_error"
        text = "\n".join(str(row.get(c) or "") for c in artefact_columns)
        for name, pattern in patterns.items():
            if pattern.search(text):
                if name == "asy" and has_source and _source_is(row, source_column, asy_allowed_sources):
                    continue
                return name
        return ""

    reasons = [reason(row) for row in dataset]
    dropped: dict[str, int] = defaultdict(int)
    for r in reasons:
        if r:
            dropped[r] += 1
    kept = dataset.select([i for i, r in enumerate(reasons) if not r])
    return kept, StageReport("quality", dataset.num_rows, kept.num_rows, dict(sorted(dropped.items())))


def add_trace_lengths(
    dataset: Any, tokenizer: Any, *, trace: Union[str, TraceSource, None] = None, column: str = "trace_tokens",
    batch_size: int = 64,
):
    """Add `column` with the trace length in `tokenizer` tokens (s1: longer traces = harder questions)."""
    source = get_trace_source(trace, dataset.column_names)

    def count(batch: Mapping[str, list]) -> dict[str, list[int]]:
        texts = [((t[0] if t else "") if isinstance(t, (list, tuple)) else t) or "" for t in batch[source.trace_column]]
        return {column: [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]}

    return dataset.map(count, batched=True, batch_size=batch_size, desc="counting trace tokens")


def _as_bool(value: Any, column: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DataError(f"column {column!r} holds {value!r}; correctness columns need booleans or yes/no/true/false.")


def difficulty_filter(
    dataset: Any,
    *,
    correct_columns: Sequence[str] = (),
    tokenizer: Any = None,
    trace: Union[str, TraceSource, None] = None,
    length_column: str = "trace_tokens",
    min_trace_tokens: int = 0,
) -> tuple[Any, StageReport]:
    """Drop questions a reference model solves, and (optionally) those with short traces; record trace lengths.

    Args:
        dataset: the rows left by the quality step.
        correct_columns: boolean-like columns, one per reference model (s1: Qwen2.5-7B- and 32B-Instruct); a row
            any of them marks correct is dropped. Fill them from your own grading or with `grade_with_model`.
        tokenizer: counts trace tokens into `length_column` when the column is not there yet.
        trace: trace columns (detected when None).
        length_column: trace length column (used by `diversity_sample`).
        min_trace_tokens: also drop rows whose trace is shorter.

    Returns:
        `(kept rows with length_column, StageReport)` with reasons `solved:<column>` and `short_trace`.
    """
    absent = [c for c in correct_columns if c not in dataset.column_names]
    if absent:
        raise DataError(f"correctness columns {absent} are not in the pool; compute them with "
                        f"hf_s1.data.curation.grade_with_model or drop them from correct_columns.")
    if length_column not in dataset.column_names:
        if tokenizer is None:
            raise DataError(f"no {length_column!r} column: pass tokenizer= to count trace tokens.")
        dataset = add_trace_lengths(dataset, tokenizer, trace=trace, column=length_column)
    dropped: dict[str, int] = defaultdict(int)
    keep = []
    for i, row in enumerate(dataset):
        solved = [c for c in correct_columns if _as_bool(row[c], c)]
        if solved:
            dropped[f"solved:{solved[0]}"] += 1
        elif row[length_column] < min_trace_tokens:
            dropped["short_trace"] += 1
        else:
            keep.append(i)
    kept = dataset.select(keep)
    return kept, StageReport("difficulty", dataset.num_rows, kept.num_rows, dict(sorted(dropped.items())))


def grade_with_model(
    dataset: Any,
    model: Any,
    tokenizer: Any,
    budget: Any,
    *,
    column: str = "model_correct",
    question_column: str = "question",
    solution_column: str = "solution",
    batch_size: int = 8,
    **generate_kwargs: Any,
):
    """Answer every question with `model` under a thinking `budget` and grade it against `solution` with math-verify.

    Adds `column` (bool) and `<column>_answer` (the model's answer text), ready for `difficulty_filter`.

    Args:
        dataset: rows with question and reference solution columns.
        model, tokenizer: a transformers causal LM and its tokenizer (any model the transformers engine runs).
        budget: a `hf_s1.ThinkingBudget` (or a dict) for the reference model.
        column: name of the correctness column to add.
        question_column, solution_column: where the question and the reference answer are.
        batch_size: generation batch size.
        **generate_kwargs: passed to the engine (`hf_s1.engines.base.TransformersEngine.generate`: sampling
            settings, `seed`, `max_new_tokens`, and on to `generate_with_budget`).
    """
    from math_verify import parse, verify

    from ..engines.base import TransformersEngine

    for c in (question_column, solution_column):
        if c not in dataset.column_names:
            raise DataError(f"column {c!r} is not in the data set; set question_column= / solution_column=.")
    engine = TransformersEngine(model, tokenizer, batch_size=batch_size,
                                think_format=generate_kwargs.pop("think_format", None),
                                system_prompt=generate_kwargs.pop("system_prompt", None))
    results = engine.generate(list(dataset[question_column]), budget, **generate_kwargs)
    answers = [r.answer for r in results]
    correct = [bool(verify(parse(str(sol)), parse(ans))) for sol, ans in zip(dataset[solution_column], answers)]
    return dataset.add_column(column, correct).add_column(f"{column}_answer", answers)


def diversity_sample(
    dataset: Any,
    size: int,
    *,
    seed: int = 0,
    domain_column: str = "domain",
    classifier: Callable[[str], str] | None = None,
    question_column: str = "question",
    length_column: str = "trace_tokens",
) -> tuple[Any, StageReport]:
    """s1's diversity sampling: repeatedly pick a domain uniformly, then within it a question with weight
    2^-rank by trace length (longest first), without replacement, until `size` rows.

    Args:
        dataset: the rows left by the difficulty step (with `length_column`).
        size: rows to select (all rows when the data set is smaller).
        seed: the same seed gives the same selection.
        domain_column: column with domain labels (s1: Mathematics Subject Classification codes); filled by
            `classifier` when given.
        classifier: `question -> domain label`, e.g. a wrapper around an LLM or a zero-shot pipeline.
        question_column: text given to `classifier`.
        length_column: trace length per row.

    Returns:
        `(selected rows in selection order, StageReport)`.

    Examples:

    ```python
    >>> from datasets import Dataset
    >>> from hf_s1.data.curation import diversity_sample
    >>> pool = Dataset.from_list([{"question": f"q{i}", "domain": "ab"[i % 2], "trace_tokens": i} for i in range(10)])
    >>> picked, report = diversity_sample(pool, 4, seed=0)
    >>> sorted(picked["domain"]) == sorted(diversity_sample(pool, 4, seed=0)[0]["domain"]), report.rows_out
    (True, 4)

    ```
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DataError(f"size must be a positive int, got {size!r}.")
    if classifier is not None:
        labels = [str(classifier(q)) for q in dataset[question_column]]
        if domain_column in dataset.column_names:
            dataset = dataset.remove_columns(domain_column)
        dataset = dataset.add_column(domain_column, labels)
    for c in (domain_column, length_column):
        if c not in dataset.column_names:
            fix = ("pass classifier= or set domain_column= (e.g. 'cot_type' or 'source_type')" if c == domain_column
                   else "run difficulty_filter (or add_trace_lengths) first")
            raise DataError(f"column {c!r} is not in the data set: {fix}.")
    pools: dict[str, list[int]] = defaultdict(list)
    for i, (domain, length) in enumerate(zip(dataset[domain_column], dataset[length_column])):
        pools[str(domain)].append(i)
    lengths = list(dataset[length_column])
    for idx in pools.values():
        idx.sort(key=lambda i: (-lengths[i], i))  # rank 0 = longest trace; ties by row order for determinism
    rng = random.Random(seed)
    selected: list[int] = []
    while len(selected) < size and pools:
        domain = rng.choice(sorted(pools))
        idx = pools[domain]
        pick = rng.choices(range(len(idx)), weights=[2.0 ** -r for r in range(len(idx))])[0]
        selected.append(idx.pop(pick))
        if not idx:
            del pools[domain]
    kept = dataset.select(selected)
    dropped = {"not_sampled": dataset.num_rows - kept.num_rows} if dataset.num_rows > kept.num_rows else {}
    return kept, StageReport("diversity", dataset.num_rows, kept.num_rows, dropped)


def curate(
    pool: Any,
    *,
    size: int = 1000,
    seed: int = 0,
    trace: Union[str, TraceSource, None] = None,
    eval_sets: Union[Iterable[str], Mapping[str, Iterable[str]], NgramIndex, None] = None,
    ngram: int = 8,
    correct_columns: Sequence[str] = (),
    tokenizer: Any = None,
    min_trace_tokens: int = 0,
    domain_column: str = "domain",
    classifier: Callable[[str], str] | None = None,
    quality_kwargs: Mapping[str, Any] | None = None,
) -> CurationResult:
    """The whole s1 pipeline: quality -> decontamination (when `eval_sets`) -> difficulty -> diversity.

    Args:
        pool: the candidate rows (`datasets.Dataset`, e.g. from `load_s1k`).
        size: rows to select (s1K: 1,000).
        seed: makes the selection reproducible.
        trace: trace columns (detected when None).
        eval_sets: evaluation questions (`{name: texts}`) to decontaminate against with `ngram`-grams.
        ngram: n-gram length for decontamination (s1: 8).
        correct_columns, tokenizer, min_trace_tokens: see `difficulty_filter`.
        domain_column, classifier: see `diversity_sample`.
        quality_kwargs: extra arguments of `quality_filter`.

    Returns:
        `CurationResult(dataset, report)`.
    """
    report = CurationReport(seed=seed)
    data, stage = quality_filter(pool, trace=trace, **dict(quality_kwargs or {}))
    report.stages.append(stage)
    if eval_sets is not None:
        before = data.num_rows
        data, dropped = decontaminate(data, eval_sets, n=ngram)
        report.stages.append(StageReport("decontamination", before, data.num_rows, dropped))
    data, stage = difficulty_filter(data, correct_columns=correct_columns, tokenizer=tokenizer, trace=trace,
                                    min_trace_tokens=min_trace_tokens)
    report.stages.append(stage)
    data, stage = diversity_sample(data, size, seed=seed, domain_column=domain_column, classifier=classifier)
    report.stages.append(stage)
    return CurationResult(data, report)
