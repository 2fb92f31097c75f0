"""The sweep runner: every run over every question, one JSON line per sample, resumable.

Layout of a run folder:

- `sweep.json`: what was asked (benchmark, questions, model, runs); a resumed sweep must match it.
- `samples.jsonl`: one record per (run, question, sample), written a batch at a time, in a fixed order.

Batches are cut from a fixed job order and written whole, so a sweep killed at any point and started again
skips the finished batches and recomputes nothing that was written; the batches it still runs have the same
composition (and seeds) as in an uninterrupted sweep, so the results file comes out the same.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..results import BudgetedGeneration
from .benchmarks import Benchmark, Question
from .engines import GenerationEngine
from .errors import EvalError
from .grading import DEFAULT_TIMEOUT, grade
from .methods import RunSpec

__all__ = ["run_sweep", "read_samples", "read_manifest", "answer_key", "SAMPLES_FILE", "MANIFEST_FILE"]

SAMPLES_FILE = "samples.jsonl"
MANIFEST_FILE = "sweep.json"
_ANSWER_CHARS = 2000  # the answer text kept per record, for audits; thinking is kept only with save_text


def answer_key(extracted: str | None) -> str | None:
    """The form answers are compared in for majority voting: LaTeX spacing and sizing commands dropped.

    Examples:

    ```python
    >>> answer_key(r"\\dfrac{1}{2}") == answer_key(r"\\frac {1}{2}"), answer_key(None)
    (True, None)

    ```
    """
    if extracted is None:
        return None
    key = re.sub(r"\\(?:left|right|!|,|;|:|displaystyle)", "", extracted)
    key = re.sub(r"\\[dt]frac", r"\\frac", key)
    key = re.sub(r"\s+", "", key).strip("$").rstrip(".")
    return key or None


def _seed(base: int, *parts: Any) -> int:
    # Stable across processes and machines (unlike hash()): the same batch always gets the same seed.
    return (base * 1_000_003 + zlib.crc32("|".join(map(str, parts)).encode())) % (2**31 - 1)


def read_manifest(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The `sweep.json` of a run folder."""
    path = Path(run_dir) / MANIFEST_FILE
    if not path.exists():
        raise EvalError(f"{run_dir} is not a sweep folder (no {MANIFEST_FILE}); run `hf-s1 eval --out {run_dir}` first.")
    return json.loads(path.read_text())


def read_samples(run_dir: str | os.PathLike, *, repair: bool = False) -> list[dict[str, Any]]:
    """The records of `samples.jsonl`. A torn last line (a sweep killed mid-write) is skipped, or with
    `repair=True` cut from the file."""
    path = Path(run_dir) / SAMPLES_FILE
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data) and repair:
        with open(path, "r+b") as f:
            f.truncate(end)
    records = []
    for lineno, line in enumerate(data[:end].decode("utf-8").splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise EvalError(f"{path}:{lineno} is not valid JSON; delete that line to resume the sweep.") from None
    return records


def _record_key(run_key: str, qid: str, sample: int) -> tuple[str, str, int]:
    return (run_key, qid, sample)


def _jobs(run: RunSpec, questions: Sequence[Question], batch_size: int) -> Iterator[tuple[int, list[tuple[Question, int]]]]:
    jobs = [(q, s) for q in questions for s in range(run.samples)]
    for index, start in enumerate(range(0, len(jobs), batch_size)):
        yield index, jobs[start : start + batch_size]


def _budget_record(run: RunSpec, g: BudgetedGeneration) -> dict[str, Any]:
    """The budget fields a sample keeps: the cap as asked, the cap the engine applied when it resolved `"auto"`,
    and a profile other than the default."""
    asked = run.budget.max_thinking_tokens
    out: dict[str, Any] = {"max_thinking_tokens": asked, "num_waits": run.budget.num_waits}
    applied = getattr(getattr(g, "budget", None), "max_thinking_tokens", None)
    if isinstance(asked, str) and isinstance(applied, int) and not isinstance(applied, bool):
        out["applied_max_thinking_tokens"] = applied
    profile = getattr(run.budget, "profile", "hf-s1")
    if profile != "hf-s1":
        out["profile"] = profile
    return out


def _record(run: RunSpec, q: Question, sample: int, g: BudgetedGeneration, tries: int, accepted: bool,
            seed: int | None, grading_timeout: float | None, save_text: bool) -> dict[str, Any]:
    result = grade(g.answer, q.answer, q.kind, timeout=grading_timeout)
    rec: dict[str, Any] = {
        "id": q.id,
        "method": run.method,
        "run": run.label,
        "sample": sample,
        "budget": _budget_record(run, g),
        "a_min": run.a_min,
        "a_max": run.a_max,
        "seed": seed,
        "thinking_tokens": g.thinking_tokens,
        "answer_tokens": g.answer_tokens,
        "waits": g.waits,
        "capped": g.capped,
        "finish_reason": g.finish_reason,
        "tries": tries,
        "accepted": accepted,
        "extracted": result.extracted,
        "vote_key": answer_key(result.extracted) if q.kind == "math" else result.extracted,
        "gold": q.answer,
        "correct": result.correct,
        "grade_error": result.error,
        "answer": g.answer[:_ANSWER_CHARS],
    }
    if save_text:
        rec["thinking"] = g.thinking
    return rec


def _generate_chunk(engine: GenerationEngine, run: RunSpec, chunk: list[tuple[Question, int]], seed: int,
                    chunk_index: int) -> list[tuple[BudgetedGeneration, int, bool, int | None]]:
    """Generate one batch; rejection sampling redraws the rows over their bound, up to `run.max_tries`."""
    prompts = [q.prompt + run.prompt_suffix for q, _ in chunk]
    out: list[Any] = [None] * len(chunk)
    pending = list(range(len(chunk)))
    for attempt in range(run.max_tries):
        draw_seed = _seed(seed, run.key, chunk_index, attempt) if run.do_sample else None
        # The allowance goes to the engine only when the run sets one: engines written before it keep working.
        allowance = {} if run.max_new_tokens is None else {"max_new_tokens": run.max_new_tokens}
        gens = engine.generate([prompts[i] for i in pending], [run.budget] * len(pending), do_sample=run.do_sample,
                               temperature=run.temperature, top_p=run.top_p, seed=draw_seed or 0, **allowance)
        if len(gens) != len(pending):
            raise EvalError(f"engine {engine.name!r} returned {len(gens)} generations for {len(pending)} prompts.")
        still = []
        for i, g in zip(pending, gens):
            accepted = run.accept_max is None or g.thinking_tokens <= run.accept_max
            out[i] = (g, attempt + 1, accepted, draw_seed)
            if not accepted:
                still.append(i)
        pending = still
        if not pending:
            break
    return out


def _manifest(benchmark: Benchmark, runs: Sequence[RunSpec], engine: GenerationEngine, model: str | None,
              seed: int, batch_size: int) -> dict[str, Any]:
    return {
        "benchmark": benchmark.name,
        "source": benchmark.source,
        "kind": benchmark.kind,
        "question_ids": [q.id for q in benchmark.questions],
        "benchmark_size": getattr(benchmark, "full_size", len(benchmark.questions)),
        "model": model,
        "engine": engine.name,
        "seed": seed,
        "batch_size": batch_size,
        "runs": [r.to_dict() for r in runs],
    }


def _merge_manifest(path: Path, new: dict[str, Any]) -> dict[str, Any]:
    if not path.exists():
        return new
    old = json.loads(path.read_text())
    for field in ("benchmark", "question_ids", "model", "seed", "batch_size"):
        if old.get(field) != new.get(field):
            raise EvalError(
                f"{path.parent} holds a sweep with a different {field} ({old.get(field)!r} there, {new.get(field)!r} "
                f"now): resume with the same settings, or pass another --out folder."
            )
    runs = {r["method"] + "/" + r["label"]: r for r in old["runs"]}
    for r in new["runs"]:
        key = r["method"] + "/" + r["label"]
        # Compared as RunSpecs: fields added since the folder was written take their defaults on both sides.
        if key in runs and RunSpec.from_dict(runs[key]) != RunSpec.from_dict(r):
            raise EvalError(f"{path.parent} already has run {key} with other settings; pass another --out folder.")
        runs.setdefault(key, r)
    merged = dict(new)
    merged["runs"] = list(runs.values())  # a resumed sweep may add runs; it never drops finished ones
    return merged


def run_sweep(
    engine: GenerationEngine,
    benchmark: Benchmark,
    runs: Sequence[RunSpec],
    out_dir: str | os.PathLike,
    *,
    batch_size: int = 8,
    seed: int = 0,
    model: str | None = None,
    progress: bool = True,
    save_text: bool = False,
    grading_timeout: float | None = DEFAULT_TIMEOUT,
) -> Path:
    """Run every `RunSpec` over every question of `benchmark` and append the graded samples to
    `out_dir/samples.jsonl`; resume where a previous call stopped.

    Args:
        engine: a `GenerationEngine` (`load_engine("transformers" | "vllm", model)`).
        benchmark: from `load_benchmark`.
        runs: from `expand_runs`.
        out_dir: the run folder (created when missing).
        batch_size: samples per engine call and per write; part of the sweep's identity (changing it would
            change batch composition and so, in low precision or with sampling, the results).
        seed: base seed for sampled runs; each batch and draw derives its own.
        model: the model's name, recorded (and checked on resume).
        progress: show a tqdm bar.
        save_text: also keep each sample's thinking text in the records.
        grading_timeout: seconds math-verify may spend on one answer.

    Returns:
        The path of `samples.jsonl`.

    Examples:

    ```python
    >>> import tempfile
    >>> from hf_s1 import load_default_model
    >>> from hf_s1.eval import TransformersEngine, expand_runs, questions_from_rows, Benchmark, read_samples
    >>> bench = Benchmark("mini", questions_from_rows([{"problem": "What is 2+3?", "answer": "5"}]), "math", "inline")
    >>> runs = expand_runs(["budget-forcing"], max_thinking=[4], max_answer_tokens=8)
    >>> out = tempfile.mkdtemp()
    >>> _ = run_sweep(TransformersEngine(*load_default_model()), bench, runs, out, progress=False)
    >>> [(r["run"], r["thinking_tokens"], r["capped"]) for r in read_samples(out)]
    [('max=4,waits=0', 4, True)]

    ```
    """
    if not runs:
        raise EvalError("no runs to sweep: pass at least one method (expand_runs).")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise EvalError(f"batch_size must be a positive int, got {batch_size!r}.")
    keys = [r.key for r in runs]
    if len(set(keys)) != len(keys):
        raise EvalError(f"duplicate runs in the sweep: {sorted(k for k in keys if keys.count(k) > 1)}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST_FILE
    manifest = _merge_manifest(manifest_path, _manifest(benchmark, runs, engine, model, seed, batch_size))
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, manifest_path)

    done = {_record_key(f"{r['method']}/{r['run']}", r["id"], r["sample"]) for r in read_samples(out, repair=True)}
    total = sum(len(benchmark.questions) * r.samples for r in runs)
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=f"{benchmark.name}", unit="sample", disable=not progress)
    samples_path = out / SAMPLES_FILE
    try:
        for run in runs:
            bar.set_postfix_str(run.key)
            for chunk_index, chunk in _jobs(run, benchmark.questions, batch_size):
                missing = [(q, s) for q, s in chunk if _record_key(run.key, q.id, s) not in done]
                bar.update(len(chunk) - len(missing))
                if not missing:
                    continue
                generated = _generate_chunk(engine, run, missing, seed, chunk_index)
                lines = [
                    json.dumps(_record(run, q, s, g, tries, ok, sd, grading_timeout, save_text), ensure_ascii=False)
                    for (q, s), (g, tries, ok, sd) in zip(missing, generated)
                ]
                # One write per batch: a kill leaves whole batches (at worst a torn last line, repaired on resume).
                with open(samples_path, "a", encoding="utf-8") as f:
                    f.write("\n".join(lines) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                done.update(_record_key(run.key, q.id, s) for q, s in missing)
                bar.update(len(missing))
    finally:
        bar.close()
    return samples_path
