"""`hf-s1 eval` and `hf-s1 report`: subcommands for the `hf-s1` command (`add_eval_subcommands`), also
runnable on their own as `python -m hf_s1.eval`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..budget import BudgetError
from .benchmarks import BENCHMARKS
from .engines import ENGINES
from .errors import EvalError
from .methods import METHODS

__all__ = ["add_eval_subcommands", "main"]


def _int_list(text: str, *, allow_none: bool = False) -> list[int | None]:
    out: list[int | None] = []
    for part in text.split(","):
        part = part.strip().lower()
        if allow_none and part in ("none", "inf", ""):
            out.append(None)
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    return out


def _methods(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in METHODS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown method(s) {bad or text!r}; choose from {', '.join(METHODS)}")
    return names


def _eval(args: argparse.Namespace) -> int:
    from .benchmarks import load_benchmark
    from .engines import load_engine
    from .methods import expand_runs
    from .report import render_markdown, summarize, write_report
    from .sweep import run_sweep

    bench = load_benchmark(args.benchmark, args.data, split=args.split, limit=args.limit, seed=args.seed)
    runs = expand_runs(
        args.method, max_thinking=args.max_thinking, num_waits=args.num_waits, samples=args.samples,
        max_tries=args.max_tries, temperature=args.temperature, sampling_temperature=args.sampling_temperature,
        top_p=args.top_p, max_answer_tokens=args.max_answer, thinking_ceiling=args.thinking_ceiling,
        extrapolation=args.extrapolation or "Wait",
    )
    engine = load_engine(args.engine, args.model, batch_size=args.batch_size, think_format=args.format,
                         system_prompt=args.system_prompt)
    path = run_sweep(engine, bench, runs, args.out, batch_size=args.batch_size, seed=args.seed,
                     model=None if args.model is None else str(args.model), progress=not args.no_progress,
                     save_text=args.save_text)
    print(f"samples: {path}")
    if not args.no_report:
        paths = write_report(args.out)
        print(render_markdown(summarize(args.out)))
        print(f"table: {paths['markdown']}\nplot: {paths['plot']}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import render_markdown, summarize, write_report

    paths = write_report(args.run_dir)
    print(render_markdown(summarize(args.run_dir)))
    print(f"table: {paths['markdown']}\nplot: {paths['plot']}")
    return 0


def add_eval_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Add `eval` and `report` to an `argparse` sub-command set (the `hf-s1` command's).

    Each sets `func(args) -> int`; errors are `hf_s1.BudgetError` subclasses with a message naming the fix.

    Examples:

    ```python
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="hf-s1")
    >>> add_eval_subcommands(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["eval", "--benchmark", "math500", "--max-thinking", "512,1024", "--out", "runs/m"])
    >>> args.max_thinking, args.method, args.engine
    ([512, 1024], ['budget-forcing'], 'transformers')

    ```
    """
    ev = subparsers.add_parser(
        "eval", help="test-time scaling sweep on a benchmark (resumable)",
        description="Run methods x budgets over a benchmark; write per-sample JSONL, a table and a scaling plot.",
    )
    ev.add_argument("--benchmark", required=True, help=f"one of {', '.join(BENCHMARKS)} (or any name with --data)")
    ev.add_argument("--data", default=None, help="local .jsonl file (or folder) instead of the Hub dataset (offline)")
    ev.add_argument("--split", default=None, help="Hub split (default: the benchmark's)")
    ev.add_argument("--limit", type=int, default=None, help="first N questions only")
    ev.add_argument("--model", default=None, help="Hub id or local folder (default: the embedded SmolLM2-135M-Instruct)")
    ev.add_argument("--engine", choices=ENGINES, default="transformers")
    ev.add_argument("--format", choices=["s1", "r1"], default=None, help="think format (default: from the chat template)")
    ev.add_argument("--system-prompt", default=None)
    ev.add_argument("--method", type=_methods, default=["budget-forcing"],
                    help=f"comma-separated: {', '.join(METHODS)}")
    ev.add_argument("--max-thinking", type=lambda s: _int_list(s, allow_none=True), default=[None],
                    help="comma-separated thinking caps N ('none' = no cap), e.g. 512,1024,2048")
    ev.add_argument("--num-waits", type=_int_list, default=[0], help="comma-separated Wait extensions, e.g. 0,1,2,4")
    ev.add_argument("--samples", type=_int_list, default=[1, 2, 4, 8], help="majority voting's k values")
    ev.add_argument("--max-tries", type=int, default=8, help="rejection sampling: draws per sample")
    ev.add_argument("--temperature", type=float, default=0.0, help="single-sample methods (0 = greedy, s1's setting)")
    ev.add_argument("--sampling-temperature", type=float, default=1.0, help="rejection sampling and majority voting")
    ev.add_argument("--top-p", type=float, default=1.0)
    ev.add_argument("--max-answer", type=int, default=None, help="cap on answer tokens after thinking")
    ev.add_argument("--thinking-ceiling", type=int, default=None,
                    help="safety cap for methods that do not cap thinking (must exceed every --max-thinking)")
    ev.add_argument("--extrapolation", action="append", default=None, help='string appended on extension (default "Wait")')
    ev.add_argument("--batch-size", type=int, default=8)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--out", required=True, help="run folder; an existing one is resumed")
    ev.add_argument("--save-text", action="store_true", help="keep each sample's thinking text")
    ev.add_argument("--no-progress", action="store_true")
    ev.add_argument("--no-report", action="store_true", help="skip writing summary.md / scaling.png at the end")
    ev.set_defaults(func=_eval)

    rep = subparsers.add_parser("report", help="table (markdown) + scaling plot (PNG) of a sweep folder")
    rep.add_argument("run_dir", help="folder written by `hf-s1 eval --out`")
    rep.set_defaults(func=_report)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m hf_s1.eval {eval,report} ...`: the same subcommands without the rest of `hf-s1`."""
    parser = argparse.ArgumentParser(prog="python -m hf_s1.eval", description="hf-s1 evaluation")
    add_eval_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (EvalError, BudgetError) as exc:
        print(f"hf-s1: error: {exc}", file=sys.stderr)
        return 2
