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
from .methods import AUTO, METHODS, PASS_AT_1_METHODS

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


def _cap_list(text: str) -> list[int | str | None]:
    """Thinking caps: integers, `none` (no cap) or `auto` (the engine derives the cap from the allowance)."""
    parts = [p.strip().lower() for p in text.split(",")]
    try:
        return [AUTO if p == AUTO else _int_list(p, allow_none=True)[0] for p in parts]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated thinking caps (integers, 'none' or 'auto'), got {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


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
        extrapolation=args.extrapolation or "Wait", profile=args.profile, max_new_tokens=args.max_new_tokens,
        pass_at_1=args.pass_at_1, pass_at_1_temperature=args.pass_at_1_temperature, pass_at_1_top_p=args.pass_at_1_top_p,
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
    >>> args.max_thinking, args.method, args.engine, args.profile
    ([512, 1024], ['budget-forcing'], 'transformers', 'hf-s1')
    >>> args = parser.parse_args(["eval", "--benchmark", "aime24", "--max-thinking", "auto", "--num-waits", "1,2,4,6",
    ...                           "--profile", "s1", "--max-new-tokens", "32768", "--out", "runs/a"])
    >>> args.max_thinking, args.num_waits, args.profile, args.max_new_tokens, args.temperature
    (['auto'], [1, 2, 4, 6], 's1', 32768, 0.0)

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
    ev.add_argument("--max-thinking", type=_cap_list, default=[None],
                    help="comma-separated thinking caps N ('none' = no cap; 'auto' = the generation allowance minus "
                         "the prompt and margins, s1's setting), e.g. 512,1024,2048 or auto or 64,auto")
    ev.add_argument("--num-waits", type=_int_list, default=[0], help="comma-separated Wait extensions, e.g. 0,1,2,4")
    ev.add_argument("--samples", type=_int_list, default=[1, 2, 4, 8], help="majority voting's k values")
    ev.add_argument("--max-tries", type=int, default=8, help="rejection sampling: draws per sample")
    ev.add_argument("--temperature", type=float, default=0.0, help="single-sample methods (0 = greedy, s1's setting)")
    ev.add_argument("--sampling-temperature", type=float, default=1.0, help="rejection sampling and majority voting")
    ev.add_argument("--top-p", type=float, default=1.0)
    ev.add_argument("--max-answer", type=int, default=None, help="cap on answer tokens after thinking")
    ev.add_argument("--max-new-tokens", type=_positive_int, default=None,
                    help="generation allowance per question (s1: 32768); 'auto' caps are derived from it "
                         "(default: left to the engine)")
    ev.add_argument("--profile", choices=["hf-s1", "s1"], default="hf-s1",
                    help="budget-forcing profile: hf-s1 (default) or s1 (the reference implementation's rules)")
    ev.add_argument("--pass-at-1", type=_positive_int, default=None, metavar="N",
                    help=f"also sample N generations per question for {', '.join(PASS_AT_1_METHODS)} and report "
                         f"pass@1:N_samples (open-r1 / lighteval), besides the greedy runs")
    ev.add_argument("--pass-at-1-temperature", type=float, default=0.6, help="sampling for --pass-at-1 (open-r1: 0.6)")
    ev.add_argument("--pass-at-1-top-p", type=float, default=0.95, help="sampling for --pass-at-1 (open-r1: 0.95)")
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

    rep = subparsers.add_parser(
        "report", help="Table 3 (Control, Scaling, Performance) + scaling plot of a sweep folder",
        description="Print the paper's Table 3 columns per method, with their definitions, and every run; write "
                    "summary.md, summary.json and scaling.png into the folder.",
    )
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
