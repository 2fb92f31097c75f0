"""Evaluation benchmarks: AIME24, AIME25, MATH500, GPQA-Diamond (and AMC23 from a local file).

Each loads from its Hugging Face Hub dataset by default, or from a local JSON Lines file with `data=`
(offline). Rows may use the Hub's column names or the common variants (`problem` / `question`, `answer`,
`id` / `unique_id`). GPQA-Diamond is gated by its authors: it is read with your Hub token, its options are
shuffled with a fixed seed, and nothing of it is stored by this package.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EvalError

__all__ = ["BenchmarkSpec", "Question", "Benchmark", "BENCHMARKS", "load_benchmark", "questions_from_rows"]

MATH_TEMPLATE = "{problem}"
# The multiple-choice prompt asks for a final "Answer: X" line, which `extract_choice` reads.
CHOICE_TEMPLATE = (
    "Answer the following multiple-choice question. The last line of your answer must be 'Answer: X', where X "
    "is one of {letters}.\n\n{problem}\n\n{options}"
)


@dataclass(frozen=True)
class BenchmarkSpec:
    """Where a benchmark lives and how it is graded.

    Args:
        name: the short name used by `load_benchmark` and `hf-s1 eval --benchmark`.
        hub_id: the Hub dataset id (`None`: local files only).
        split: the Hub split.
        config: the Hub configuration name, if any.
        kind: `"math"` (graded with math-verify) or `"choice"` (multiple choice, graded by letter).
        gated: the Hub dataset needs an accepted license and a token.
        size: the number of questions of the full benchmark (what a complete run is measured against).
    """

    name: str
    hub_id: str | None
    split: str = "test"
    config: str | None = None
    kind: str = "math"
    gated: bool = False
    size: int | None = None


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "aime24": BenchmarkSpec("aime24", "simplescaling/aime24_nofigures", split="train", size=30),
    "aime25": BenchmarkSpec("aime25", "TIGER-Lab/AIME25", split="train", size=30),
    "math500": BenchmarkSpec("math500", "HuggingFaceH4/MATH-500", split="test", size=500),
    "gpqa_diamond": BenchmarkSpec("gpqa_diamond", "Idavidrein/gpqa", split="train", config="gpqa_diamond",
                                  kind="choice", gated=True, size=198),
    "amc23": BenchmarkSpec("amc23", None, size=40),
}


@dataclass(frozen=True)
class Question:
    """One benchmark question.

    Attributes:
        id: a stable identifier (the dataset's own id, else the row index).
        problem: the question text as the dataset gives it.
        answer: the gold answer (a string; for multiple choice, the letter of the correct option).
        kind: `"math"` or `"choice"`.
        choices: the shuffled options, for multiple choice.
        prompt: the text sent to the model (the problem in the benchmark's prompt template).
    """

    id: str
    problem: str
    answer: str
    kind: str = "math"
    choices: tuple[str, ...] = ()
    prompt: str = ""


@dataclass
class Benchmark:
    """A loaded benchmark: its questions, how they are graded, and where they came from.

    `size` is the number of questions of the full benchmark: the known size of a named benchmark (500 for
    MATH-500), else the number of rows loaded before `limit`. A run over fewer questions is a partial run.
    """

    name: str
    questions: list[Question]
    kind: str
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)
    size: int | None = None

    def __len__(self) -> int:
        return len(self.questions)

    @property
    def full_size(self) -> int:
        """`size`, or the number of questions held when it is unknown."""
        return self.size if self.size is not None else len(self.questions)


def _first(row: Mapping[str, Any], names: Sequence[str]) -> Any:
    for name in names:
        if name in row and row[name] is not None and str(row[name]).strip() != "":
            return row[name]
    return None


def _answer_text(value: Any) -> str:
    # JSON numbers (AIME25 ints, AMC23 floats like 27.0) become the integer text a model would write.
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def questions_from_rows(
    rows: Sequence[Mapping[str, Any]],
    kind: str = "math",
    *,
    seed: int = 0,
    template: str | None = None,
    source: str = "rows",
) -> list[Question]:
    """Turn dataset rows into `Question`s.

    Math rows need a question column (`problem`, `question` or `Question`) and an `answer`. Multiple-choice
    rows use GPQA's columns (`Question`, `Correct Answer`, `Incorrect Answer 1..3`); options are shuffled
    with a generator seeded by `seed` and the row id, so the order is the same on every machine.

    Args:
        rows: mappings of column name to value.
        kind: `"math"` or `"choice"`.
        seed: the option-shuffling seed (multiple choice).
        template: prompt template with `{problem}` (and `{options}`, `{letters}` for multiple choice).
        source: named in error messages.

    Examples:

    ```python
    >>> qs = questions_from_rows([{"problem": "What is 2+3?", "answer": 5.0}])
    >>> qs[0].id, qs[0].answer, qs[0].prompt
    ('0', '5', 'What is 2+3?')

    ```
    """
    if kind not in ("math", "choice"):
        raise EvalError(f"unknown benchmark kind {kind!r}: use 'math' or 'choice'.")
    template = template or (MATH_TEMPLATE if kind == "math" else CHOICE_TEMPLATE)
    out: list[Question] = []
    seen: set[str] = set()
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise EvalError(f"{source}: row {index} is not an object; each line must be a JSON object.")
        qid = _first(row, ("id", "unique_id", "Record ID", "idx"))
        qid = str(index) if qid is None else str(qid)
        if qid in seen:
            qid = f"{qid}#{index}"  # keep ids unique: results are keyed by them
        seen.add(qid)
        problem = _first(row, ("problem", "question", "Question"))
        if problem is None:
            raise EvalError(
                f"{source}: row {index} has no question; give each row a 'problem' (or 'question') field. "
                f"Columns found: {sorted(row)}."
            )
        problem = str(problem).strip()
        if kind == "math":
            answer = _first(row, ("answer", "Answer", "final_answer"))
            if answer is None:
                raise EvalError(f"{source}: row {index} ({qid}) has no 'answer' field; every question needs its gold answer.")
            out.append(Question(qid, problem, _answer_text(answer), "math", (), template.format(problem=problem)))
            continue
        correct = _first(row, ("Correct Answer", "correct_answer"))
        wrong = [_first(row, (f"Incorrect Answer {i}", f"incorrect_answer_{i}")) for i in (1, 2, 3)]
        if correct is None or any(w is None for w in wrong):
            raise EvalError(
                f"{source}: row {index} ({qid}) lacks GPQA's option columns ('Correct Answer', "
                f"'Incorrect Answer 1'..'Incorrect Answer 3')."
            )
        options = [str(correct).strip(), *(str(w).strip() for w in wrong)]
        order = list(range(4))
        random.Random(f"{seed}:{qid}").shuffle(order)
        choices = tuple(options[i] for i in order)
        letters = "ABCD"
        gold = letters[order.index(0)]
        listing = "\n".join(f"{letter}) {text}" for letter, text in zip(letters, choices))
        prompt = template.format(problem=problem, options=listing, letters=", ".join(letters))
        out.append(Question(qid, problem, gold, "choice", choices, prompt))
    if not out:
        raise EvalError(f"{source} holds no questions.")
    return out


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{path} is not valid JSON ({exc}); give a .jsonl file with one question per line.") from None
        if isinstance(data, list):
            return data
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise EvalError(f"{path}:{lineno} is not a JSON object ({exc.msg}); fix or remove that line.") from None
    return rows


def _resolve_data_file(data: str | os.PathLike) -> Path:
    path = Path(data).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".jsonl", ".json") and p.is_file())
        if len(files) == 1:
            return files[0]
        preferred = [p for p in files if p.name in ("test.jsonl", "train.jsonl")]
        if len(preferred) == 1:
            return preferred[0]
        if not files:
            raise EvalError(f"{path} holds no .jsonl file; pass the data file itself with --data.")
        raise EvalError(f"{path} holds several data files ({[p.name for p in files]}); pass one of them with --data.")
    raise EvalError(f"data path {path} does not exist; pass a .jsonl file (or a folder holding one) with --data.")


def _load_hub(spec: BenchmarkSpec, split: str, token: str | bool | None) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise EvalError("loading from the Hub needs `datasets` (pip install 'hf-s1[eval]'), or pass --data FILE.") from None
    try:
        ds = datasets.load_dataset(spec.hub_id, spec.config, split=split, token=token)
    except Exception as exc:  # network, gating, offline mode: all end the same way for the user
        hint = (" It is gated: accept its terms on the Hub and log in (`hf auth login`) or pass token=."
                if spec.gated else "")
        raise EvalError(
            f"could not load {spec.hub_id!r} from the Hub ({type(exc).__name__}: {exc}).{hint} "
            f"Offline, pass a local copy with --data FILE.jsonl (data=... in Python)."
        ) from exc
    return [dict(row) for row in ds]


def load_benchmark(
    name: str,
    data: str | os.PathLike | None = None,
    *,
    split: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    token: str | bool | None = None,
    template: str | None = None,
    kind: str | None = None,
) -> Benchmark:
    """Load a benchmark by name, from the Hub or from a local file.

    Args:
        name: `"aime24"`, `"aime25"`, `"math500"`, `"gpqa_diamond"`, `"amc23"`, or any name with `data=`.
        data: a local `.jsonl` / `.json` file, or a folder holding one. Without it, the Hub dataset is used.
        split: the Hub split (default: the benchmark's).
        limit: keep only the first `limit` questions (quick runs).
        seed: option-shuffling seed for multiple choice.
        token: Hub token for gated datasets (default: the logged-in one).
        template: prompt template overriding the benchmark's (`{problem}`; `{options}` for multiple choice).
        kind: `"math"` or `"choice"` for a benchmark not in `BENCHMARKS` (default `"math"`).

    Examples:

    ```python
    >>> import json, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "mini.jsonl")
    >>> with open(path, "w") as f:
    ...     _ = f.write(json.dumps({"id": 1, "problem": "What is 6*7?", "answer": "42"}) + "\\n")
    >>> bench = load_benchmark("math500", data=path)
    >>> len(bench), bench.questions[0].answer, bench.kind, bench.size   # 1 question of MATH-500's 500
    (1, '42', 'math', 500)

    ```
    """
    spec = BENCHMARKS.get(name)
    if spec is None:
        if data is None:
            raise EvalError(f"unknown benchmark {name!r}: choose one of {sorted(BENCHMARKS)}, or pass data=FILE for your own.")
        spec = BenchmarkSpec(name, None, kind=kind or "math")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise EvalError(f"limit must be a positive int, got {limit!r}.")
    if data is not None:
        path = _resolve_data_file(data)
        rows, source = _read_jsonl(path), str(path)
    elif spec.hub_id is None:
        raise EvalError(f"{name} has no Hub dataset here; pass its local file with --data FILE.jsonl.")
    else:
        rows = _load_hub(spec, split or spec.split, token)
        source = f"hf://datasets/{spec.hub_id}" + (f"/{spec.config}" if spec.config else "") + f"[{split or spec.split}]"
    questions = questions_from_rows(rows, kind or spec.kind, seed=seed, template=template, source=source)
    size = spec.size if spec.size is not None else len(questions)
    if limit is not None:
        questions = questions[:limit]
    return Benchmark(name, questions, kind or spec.kind, source, {"seed": seed, "template": template}, size=size)
