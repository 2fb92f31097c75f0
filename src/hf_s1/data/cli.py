"""`hf-s1 curate`: the s1 curation pipeline from the command line (wired into `hf_s1.cli` by `add_curate_subcommand`)."""

from __future__ import annotations

import argparse
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from .loading import DataError, load_s1k

__all__ = ["CurateArguments", "add_curate_subcommand", "run_curate"]


@dataclass
class CurateArguments:
    """`hf-s1 curate`'s options (flags are the field names; dashed forms work too)."""

    _argument_group_name = "curation"

    pool: str = field(metadata={"help": "Hub data set id or local .jsonl/.parquet file or folder"})
    out: str = field(metadata={"help": "output folder"})
    size: int = field(default=1000, metadata={"help": "rows to select (s1K: 1000)"})
    seed: int = field(default=0, metadata={"help": "random seed of the diversity sampling"})
    split: str = field(default="train", metadata={"help": "split of a Hub data set"})
    trace: Optional[str] = field(default=None, metadata={
        "help": "trace columns: s1k, gemini or deepseek; None: detected"})
    eval_set: Union[list, str, None] = field(default_factory=list, metadata={
        "action": "append", "metavar": "FILE[:COLUMN]",
        "help": "evaluation questions to decontaminate against (.jsonl/.parquet; column default 'problem', then "
                "'question'); repeat for several"})
    ngram: int = field(default=8, metadata={"help": "n-gram length for decontamination"})
    correct_column: Union[list, str, None] = field(default_factory=list, metadata={
        "action": "append", "help": "boolean column: a reference model solved the question (dropped); repeat per model"})
    min_trace_tokens: int = field(default=0, metadata={"help": "drop rows whose trace is shorter"})
    tokenizer: Optional[str] = field(default=None, metadata={
        "help": "tokenizer for trace lengths; None: the embedded SmolLM2's"})
    domain_column: str = field(default="domain", metadata={
        "help": "domain labels (e.g. domain, cot_type, source_type)"})
    classifier: Optional[str] = field(default=None, metadata={
        "metavar": "MODULE:FUNCTION",
        "help": "importable function question -> domain label, used instead of --domain_column's values"})


def add_curate_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register `curate` on an `argparse` subparsers object; the parsed namespace's `func` runs it.

    Examples:

    ```python
    >>> import argparse
    >>> from hf_s1.data.cli import add_curate_subcommand
    >>> parser = argparse.ArgumentParser(prog="hf-s1")
    >>> _ = add_curate_subcommand(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["curate", "--pool", "pool.jsonl", "--out", "s1k-mine", "--size", "10"])
    >>> args.size, args.seed, args.ngram, args.eval_set
    (10, 0, 8, [])

    ```
    """
    from ..cli_args import add_subcommand

    p = add_subcommand(subparsers, "curate", CurateArguments,
                       help="select an s1K-style set from a pool (quality, difficulty, diversity)",
                       description="s1's curation: quality -> 8-gram decontamination -> difficulty -> "
                                   "diversity sampling. Writes OUT/train.jsonl and OUT/curation_report.json.")
    p.set_defaults(func=run_curate)
    return p


def _eval_texts(spec: str) -> tuple[str, list[str]]:
    path, _, column = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
    ds = load_s1k(path)
    for c in ([column] if column else ["problem", "question", "Question"]):
        if c in ds.column_names:
            return Path(path).stem, [str(t) for t in ds[c]]
    raise DataError(f"no question column in {path} ({ds.column_names}); write it as {path}:COLUMN.")


def _classifier(spec: str | None):
    if spec is None:
        return None
    module, _, name = spec.partition(":")
    if not name:
        raise DataError(f"--classifier takes MODULE:FUNCTION, got {spec!r}.")
    return getattr(importlib.import_module(module), name)


def run_curate(args: argparse.Namespace) -> int:
    """Run `hf-s1 curate` from parsed arguments; returns the exit code."""
    from transformers import AutoTokenizer

    from .curation import curate

    pool = load_s1k(args.pool, split=args.split)
    eval_sets = dict(_eval_texts(s) for s in args.eval_set) or None
    tokenizer = None
    if "trace_tokens" not in pool.column_names:
        from ..models import default_model_path

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or default_model_path())
    result = curate(pool, size=args.size, seed=args.seed, trace=args.trace, eval_sets=eval_sets, ngram=args.ngram,
                    correct_columns=args.correct_column, tokenizer=tokenizer, min_trace_tokens=args.min_trace_tokens,
                    domain_column=args.domain_column, classifier=_classifier(args.classifier))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result.dataset.to_json(str(out / "train.jsonl"), force_ascii=False)
    (out / "curation_report.json").write_text(json.dumps(
        {**result.report.to_dict(), "pool": str(args.pool), "size": args.size, "eval_sets": sorted(eval_sets or {})},
        indent=2))
    print(result.report)
    print(f"wrote {result.dataset.num_rows} rows to {out / 'train.jsonl'}")
    return 0
