"""`hf-s1 eval` and `hf-s1 report`: subcommands for the `hf-s1` command (`add_eval_subcommands`), also
runnable on their own as `python -m hf_s1.eval`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

from ..cli_args import (BudgetArguments, IntListAction, ModelArguments, PositiveIntAction, _Converted, add_subcommand,
                   from_namespace, parse_int_list)
from ..errors import HfS1Error
from .benchmarks import BENCHMARKS
from .methods import METHODS, PASS_AT_1_METHODS

__all__ = ["EvalArguments", "add_eval_subcommands", "main"]


def _methods(text: str) -> list[str]:
    names = [m.strip() for m in str(text).split(",") if m.strip()]
    bad = [m for m in names if m not in METHODS]
    if bad or not names:
        raise ValueError(f"unknown method(s) {bad or text!r}; choose from {', '.join(METHODS)}")
    return names


class _MethodsAction(_Converted):
    convert = staticmethod(_methods)


@dataclass
class EvalArguments:
    """`hf-s1 eval`'s own options; the budget grid comes from `hf_s1.cli.BudgetArguments` (comma lists) and the
    model from `hf_s1.cli.ModelArguments`."""

    _argument_group_name = "evaluation"

    benchmark: str = field(metadata={"help": f"one of {', '.join(BENCHMARKS)} (or any name with --data)"})
    out: str = field(metadata={"help": "run folder; an existing one is resumed"})
    data: Optional[str] = field(default=None, metadata={
        "help": "local .jsonl file (or folder) instead of the Hub dataset (offline)"})
    split: Optional[str] = field(default=None, metadata={"help": "Hub split; None: the benchmark's"})
    limit: Optional[int] = field(default=None, metadata={"help": "first N questions only"})
    method: Union[list, str, None] = field(default_factory=lambda: ["budget-forcing"], metadata={
        "action": _MethodsAction, "help": f"comma-separated: {', '.join(METHODS)}"})
    samples: Union[list, str, None] = field(default_factory=lambda: [1, 2, 4, 8], metadata={
        "action": IntListAction, "help": "majority voting's k values, comma-separated"})
    max_tries: int = field(default=8, metadata={"help": "rejection sampling: draws per sample"})
    temperature: float = field(default=0.0, metadata={"help": "single-sample methods (0 = greedy, s1's setting)"})
    sampling_temperature: float = field(default=1.0, metadata={"help": "rejection sampling and majority voting"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling"})
    pass_at_1: Optional[int] = field(default=None, metadata={
        "action": PositiveIntAction, "metavar": "N",
        "help": f"also sample N generations per question for {', '.join(PASS_AT_1_METHODS)} and report "
                f"pass@1:N_samples (open-r1 / lighteval), besides the greedy runs"})
    pass_at_1_temperature: float = field(default=0.6, metadata={"help": "sampling for --pass_at_1 (open-r1: 0.6)"})
    pass_at_1_top_p: float = field(default=0.95, metadata={"help": "sampling for --pass_at_1 (open-r1: 0.95)"})
    thinking_ceiling: Optional[int] = field(default=None, metadata={
        "help": "safety cap for methods that do not cap thinking (must exceed every --max_thinking_tokens)"})
    save_text: bool = field(default=False, metadata={"help": "keep each sample's thinking text"})
    no_progress: bool = field(default=False, metadata={"help": "no progress bar"})
    no_report: bool = field(default=False, metadata={"help": "skip writing summary.md / scaling.png at the end"})

    def __post_init__(self):
        if isinstance(self.method, str):
            self.method = _methods(self.method)
        if isinstance(self.samples, str):
            self.samples = parse_int_list(self.samples)


def _eval(args: argparse.Namespace) -> int:
    from .benchmarks import load_benchmark
    from .engines import load_engine
    from .methods import expand_runs
    from .report import render_markdown, summarize, write_report
    from .sweep import run_sweep

    ev, budget, model = (from_namespace(EvalArguments, args), from_namespace(BudgetArguments, args),
                         from_namespace(ModelArguments, args))
    bench = load_benchmark(ev.benchmark, ev.data, split=ev.split, limit=ev.limit, seed=model.seed)
    runs = expand_runs(
        ev.method, max_thinking=budget.max_thinking_tokens, num_waits=budget.num_waits, samples=ev.samples,
        max_tries=ev.max_tries, temperature=ev.temperature, sampling_temperature=ev.sampling_temperature,
        top_p=ev.top_p, max_answer_tokens=budget.max_answer_tokens, thinking_ceiling=ev.thinking_ceiling,
        extrapolation=budget.extrapolation or "Wait", profile=budget.profile, max_new_tokens=budget.max_new_tokens,
        pass_at_1=ev.pass_at_1, pass_at_1_temperature=ev.pass_at_1_temperature, pass_at_1_top_p=ev.pass_at_1_top_p,
    )
    engine = load_engine(model.engine, model.model, batch_size=model.batch_size, think_format=model.format,
                         system_prompt=model.system_prompt, chat_template_kwargs=model.template_kwargs())
    path = run_sweep(engine, bench, runs, ev.out, batch_size=model.batch_size, seed=model.seed,
                     model=model.model, progress=not ev.no_progress, save_text=ev.save_text)
    print(f"samples: {path}")
    if not ev.no_report:
        paths = write_report(ev.out)
        print(render_markdown(summarize(ev.out)))
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

    Each sets `func(args) -> int`; errors are `hf_s1.HfS1Error` subclasses with a message naming the fix.

    Examples:

    ```python
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="hf-s1")
    >>> add_eval_subcommands(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["eval", "--benchmark", "math500", "--max_thinking_tokens", "512,1024", "--out", "runs/m"])
    >>> args.max_thinking_tokens, args.method, args.engine, args.profile
    ([512, 1024], ['budget-forcing'], 'transformers', 'hf-s1')
    >>> args = parser.parse_args(["eval", "--benchmark", "aime24", "--max-thinking", "auto", "--num-waits", "1,2,4,6",
    ...                           "--profile", "s1", "--max-new-tokens", "32768", "--out", "runs/a"])
    >>> from hf_s1.cli import BudgetArguments, from_namespace
    >>> from_namespace(BudgetArguments, args)
    BudgetArguments(max_thinking_tokens=['auto'], min_thinking_tokens=0, num_waits=[1, 2, 4, 6], extrapolation=None, \
answer_prefix='Final Answer:', max_answer_tokens=None, profile='s1', max_new_tokens=32768)
    >>> from_namespace(EvalArguments, args).temperature
    0.0

    ```
    """
    ev = add_subcommand(
        subparsers, "eval", EvalArguments, BudgetArguments, ModelArguments,
        help="test-time scaling sweep on a benchmark (resumable)",
        description="Run methods x budgets over a benchmark; write per-sample JSONL, a table and a scaling plot. "
                    "--max_thinking_tokens and --num_waits take comma lists: every combination is a run.",
    )
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
    except HfS1Error as exc:
        print(f"hf-s1: error: {exc}", file=sys.stderr)
        return 2
