"""`hf-s1 curate`: the s1 curation pipeline from the command line (wired into `hf_s1.cli` by `add_curate_subcommand`)."""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Any

from .loading import DataError, load_s1k

__all__ = ["add_curate_subcommand", "run_curate"]


def add_curate_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register `curate` on an `argparse` subparsers object; the parsed namespace's `func` runs it.

    Examples:

    ```python
    >>> import argparse
    >>> from hf_s1.data.cli import add_curate_subcommand
    >>> parser = argparse.ArgumentParser(prog="hf-s1")
    >>> _ = add_curate_subcommand(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["curate", "--pool", "pool.jsonl", "--out", "s1k-mine", "--size", "10"])
    >>> args.size, args.seed, args.ngram
    (10, 0, 8)

    ```
    """
    p = subparsers.add_parser("curate", help="select an s1K-style set from a pool (quality, difficulty, diversity)",
                              description="s1's curation: quality -> 8-gram decontamination -> difficulty -> "
                                          "diversity sampling. Writes OUT/train.jsonl and OUT/curation_report.json.")
    p.add_argument("--pool", required=True, help="Hub data set id or local .jsonl/.parquet file or folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--size", type=int, default=1000, help="rows to select (s1K: 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="train")
    p.add_argument("--trace", default=None, help="trace columns: s1k, gemini or deepseek (default: detect)")
    p.add_argument("--eval-set", action="append", default=[], metavar="FILE[:COLUMN]",
                   help="evaluation questions to decontaminate against (.jsonl/.parquet; column default 'problem', "
                        "then 'question'); repeat for several")
    p.add_argument("--ngram", type=int, default=8, help="n-gram length for decontamination")
    p.add_argument("--correct-column", action="append", default=[],
                   help="boolean column: a reference model solved the question (dropped); repeat per model")
    p.add_argument("--min-trace-tokens", type=int, default=0)
    p.add_argument("--tokenizer", default=None, help="tokenizer for trace lengths (default: the embedded SmolLM2)")
    p.add_argument("--domain-column", default="domain", help="domain labels (e.g. domain, cot_type, source_type)")
    p.add_argument("--classifier", default=None, metavar="MODULE:FUNCTION",
                   help="importable function question -> domain label, used instead of --domain-column's values")
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
