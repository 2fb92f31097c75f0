"""The `hf-s1` command.

Every sub-command's options come from dataclasses, read by transformers' `HfArgumentParser`: a flag is the
field's name (`--max_thinking_tokens`, also `--max-thinking-tokens`), short names of hf-s1 0.1 stay as aliases
(`--max-thinking`, `--min-thinking`, `--max-answer`), and the budget flags are defined once (`BudgetArguments`,
shared by `generate`, `eval` and `push`). `python -m hf_s1.cli` is the same command.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

from .budget import AUTO, ThinkingBudget
from .engines.base import ENGINES
from .errors import BudgetError, HfS1Error

__all__ = [
    "BudgetArguments",
    "GenerateArguments",
    "ModelArguments",
    "VERBOSITY_ENV",
    "build_parser",
    "dataclass_parents",
    "from_namespace",
    "main",
    "parse_caps",
    "parse_int_list",
    "set_verbosity",
]

logger = logging.getLogger("hf_s1")

VERBOSITY_ENV = "HF_S1_VERBOSITY"
VERBOSITY_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
                    "error": logging.ERROR, "critical": logging.CRITICAL}


# ---- values the command line takes as text ------------------------------------------------------------------


def parse_caps(text: str) -> list[int | str | None]:
    """Thinking caps from the command line: a number of tokens, `auto` (what the generation allowance leaves, s1's
    setting) or `none` (no cap); comma-separated for a sweep.

    >>> parse_caps("512"), parse_caps("64,AUTO"), parse_caps("none")
    ([512], [64, 'auto'], [None])
    """
    out: list[int | str | None] = []
    for part in str(text).split(","):
        part = part.strip().lower()
        if part == AUTO:
            out.append(AUTO)
        elif part in ("none", "inf"):
            out.append(None)
        else:
            try:
                out.append(int(part))
            except ValueError:
                raise ValueError(f'expected a number of tokens or "auto" (or "none"; comma-separated to sweep in '
                                 f"`hf-s1 eval`), got {text!r}") from None
    return out


def parse_int_list(text: str) -> list[int]:
    """Comma-separated integers, e.g. `0,1,2,4`.

    >>> parse_int_list("0, 1,2,4")
    [0, 1, 2, 4]
    """
    try:
        return [int(part) for part in str(text).split(",")]
    except ValueError:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return value


class _Converted(argparse.Action):
    """Stores `convert(text)`; a `ValueError` becomes the usual argparse usage error (exit status 2)."""

    legacy_dest: str | None = None  # also stored under hf-s1 0.1's attribute name

    @staticmethod
    def convert(text: str) -> Any:
        return text

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            value = self.convert(values)
        except ValueError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None
        setattr(namespace, self.dest, value)
        if self.legacy_dest:
            setattr(namespace, self.legacy_dest, value)


class CapsAction(_Converted):
    convert = staticmethod(parse_caps)
    legacy_dest = "max_thinking"


class IntListAction(_Converted):
    convert = staticmethod(parse_int_list)


class PositiveIntAction(_Converted):
    convert = staticmethod(_positive_int)


# ---- the dataclasses ----------------------------------------------------------------------------------------


@dataclass
class BudgetArguments:
    """The thinking budget, as `ThinkingBudget`'s fields (flags `--max_thinking_tokens` ...). `max_thinking_tokens`
    and `num_waits` hold lists: `hf-s1 eval` sweeps comma lists (`64,auto`), the other commands take one value."""

    _argument_group_name = "thinking budget"

    # Annotations with `str` second: HfArgumentParser then reads the text, and the action parses it.
    max_thinking_tokens: Union[int, str, list, None] = field(default=None, metadata={
        "aliases": ["--max-thinking"], "action": CapsAction, "metavar": "N|auto|none",
        "help": 'upper bound on thinking tokens (forced cut); "auto": what the generation allowance leaves (s1\'s '
                'setting); none: no cap. `hf-s1 eval` takes a comma list to sweep, e.g. 512,1024,auto'})
    min_thinking_tokens: int = field(default=0, metadata={
        "aliases": ["--min-thinking"], "help": "lower bound: ends of thinking are suppressed until it is reached"})
    num_waits: Union[int, str, list, None] = field(default=0, metadata={
        "action": IntListAction, "metavar": "N",
        "help": "suppress the first N ends of thinking (each becomes the extrapolation); a comma list in `hf-s1 eval`"})
    extrapolation: Union[list, str, None] = field(default=None, metadata={
        "action": "append", "help": 'string appended when an end is suppressed; None: "Wait". Repeat to rotate'})
    answer_prefix: str = field(default="Final Answer:", metadata={"help": "written after the cut"})
    max_answer_tokens: Optional[int] = field(default=None, metadata={
        "aliases": ["--max-answer"], "help": "cap on answer tokens; None: the generation allowance"})
    profile: Literal["hf-s1", "s1"] = field(default="hf-s1", metadata={
        "help": "budget rules: hf-s1, or s1 (the rules of s1's evaluation code, to reproduce its numbers)"})
    max_new_tokens: Optional[int] = field(default=None, metadata={
        "action": PositiveIntAction,
        "help": "generation allowance (s1's max_gen_toks; 'auto' caps derive from it); None: the model's "
                "context, at most 32768"})

    def __post_init__(self):
        if not isinstance(self.max_thinking_tokens, list):
            self.max_thinking_tokens = (parse_caps(self.max_thinking_tokens) if isinstance(self.max_thinking_tokens, str)
                                        else [self.max_thinking_tokens])
        if not isinstance(self.num_waits, list):
            self.num_waits = (parse_int_list(self.num_waits) if isinstance(self.num_waits, str) else [self.num_waits])
        if isinstance(self.max_new_tokens, str):
            self.max_new_tokens = _positive_int(self.max_new_tokens)

    def budget(self) -> ThinkingBudget:
        """The one `ThinkingBudget` these arguments name (a comma list is a sweep: `hf-s1 eval`)."""
        if len(self.max_thinking_tokens) != 1 or len(self.num_waits) != 1:
            raise BudgetError("one budget per call: --max_thinking_tokens and --num_waits take one value here "
                              "(comma lists sweep budgets in `hf-s1 eval`).")
        return ThinkingBudget(
            max_thinking_tokens=self.max_thinking_tokens[0],
            min_thinking_tokens=self.min_thinking_tokens,
            num_waits=self.num_waits[0],
            extrapolation=self.extrapolation or "Wait",
            answer_prefix=self.answer_prefix,
            max_answer_tokens=self.max_answer_tokens,
            profile=self.profile,
        )


@dataclass
class ModelArguments:
    """Which model runs, on which engine, with which prompt format (`generate` and `eval`)."""

    _argument_group_name = "model"

    model: Optional[str] = field(default=None, metadata={
        "help": "Hub id or local folder; None: the embedded SmolLM2-135M-Instruct"})
    engine: str = field(default="transformers", metadata={"choices": ENGINES, "help": "engine"})
    format: Optional[Literal["s1", "r1"]] = field(default=None, metadata={
        "help": "think format; None: detected from the chat template"})
    system_prompt: Optional[str] = field(default=None, metadata={"help": "system message; None: the chat template's"})
    batch_size: int = field(default=8, metadata={"help": "prompts per engine call"})
    seed: int = field(default=0, metadata={"help": "random seed"})


@dataclass
class GenerateArguments:
    """`hf-s1 generate`'s own options (the prompts are positional)."""

    _argument_group_name = "generation"

    temperature: float = field(default=0.0, metadata={"help": "0 decodes greedily (s1's setting)"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling (with a temperature above 0)"})
    json: bool = field(default=False, metadata={
        "help": "one JSON object per prompt: prompt, thinking, answer, thinking_tokens, answer_tokens, waits, capped, "
                "finish_reason"})


# ---- dataclasses <-> argparse -------------------------------------------------------------------------------


def dataclass_parents(*dtypes: type) -> list[argparse.ArgumentParser]:
    """`[HfArgumentParser(dtypes, add_help=False)]`: pass it as `parents=` to `add_parser` so a sub-command's
    options are the dataclasses' fields (flags = field names, dashed forms and `aliases` too, help from
    `metadata["help"]`)."""
    from transformers import HfArgumentParser

    return [HfArgumentParser(list(dtypes), add_help=False)]


def from_namespace(dtype: type, args: argparse.Namespace) -> Any:
    """The dataclass `dtype` filled from parsed arguments (its fields only)."""
    return dtype(**{f.name: getattr(args, f.name) for f in dataclasses.fields(dtype)
                    if f.init and hasattr(args, f.name)})


def add_subcommand(subparsers: argparse._SubParsersAction, name: str, *dtypes: type, **kwargs: Any):
    """A sub-command whose options come from `dtypes`, with defaults shown in `--help`."""
    kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
    return subparsers.add_parser(name, parents=dataclass_parents(*dtypes), **kwargs)


def set_verbosity(level: str | int | None = None) -> int:
    """Set the `hf_s1` logger's level: a name (`debug`, `info`, `warning`, `error`, `critical`), a `logging`
    level, or None for `$HF_S1_VERBOSITY` (default `warning`). Messages go to stderr, stdout stays for results."""
    if level is None:
        level = os.environ.get(VERBOSITY_ENV, "warning")
    if isinstance(level, str):
        if level.lower() not in VERBOSITY_LEVELS:
            logger.warning("ignoring %s=%r: choose one of %s", VERBOSITY_ENV, level, ", ".join(VERBOSITY_LEVELS))
            level = "warning"
        level = VERBOSITY_LEVELS[level.lower()]
    if not any(getattr(h, "_hf_s1_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("hf-s1: %(levelname)s: %(message)s"))
        handler._hf_s1_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)
    return level


# ---- generate -----------------------------------------------------------------------------------------------


def _generate(args: argparse.Namespace) -> int:
    budget_args = from_namespace(BudgetArguments, args)
    model_args = from_namespace(ModelArguments, args)
    gen = from_namespace(GenerateArguments, args)
    budget = budget_args.budget()
    logger.info("budget: %s", budget)
    sampling = dict(do_sample=gen.temperature > 0, temperature=gen.temperature or 1.0, top_p=gen.top_p)
    if model_args.engine == "vllm":
        # vLLM logs to stdout by default; keep stdout for results (--json must stay parseable).
        os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    from .engines.base import load_engine

    engine = load_engine(model_args.engine, model_args.model, batch_size=model_args.batch_size,
                         think_format=model_args.format, system_prompt=model_args.system_prompt)
    results = engine.generate(args.prompts, budget, seed=model_args.seed, max_new_tokens=budget_args.max_new_tokens,
                              **sampling)
    for r in results:
        if gen.json:
            keys = ("prompt", "thinking", "answer", "thinking_tokens", "answer_tokens", "waits", "capped", "finish_reason")
            print(json.dumps({k: getattr(r, k) for k in keys}, ensure_ascii=False))
        else:
            print(r.render())
    return 0


def _env(args: argparse.Namespace) -> int:
    from .environment import main as env_main

    return env_main(["--json"] if args.json else [])


# ---- the command --------------------------------------------------------------------------------------------


def _version() -> str:
    from . import __version__

    return f"hf-s1 {__version__}"


def _add_common_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--debug and the verbosity flags, before or after the sub-command (a sub-command's copy leaves the top
    level's value alone unless given)."""
    default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    g = parser.add_argument_group("output") if not top else parser
    g.add_argument("--debug", action="store_true", default=default(False),
                   help="show the full traceback of an error (and debug messages)")
    g.add_argument("--verbosity", choices=list(VERBOSITY_LEVELS), default=default(None),
                   help=f"messages of the hf_s1 logger on stderr; None: ${VERBOSITY_ENV}, else warning")
    g.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const="info", default=default(None),
                   help="same as --verbosity info")
    g.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const="error", default=default(None),
                   help="same as --verbosity error")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-s1", description="s1 budget forcing on the Hugging Face stack. "
                                     "`hf-s1 COMMAND --help` lists a command's options with their defaults.")
    parser.add_argument("--version", action="version", version=_version())
    _add_common_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gen = add_subcommand(sub, "generate", ModelArguments, BudgetArguments, GenerateArguments,
                         help="budget-forced generation (default: the embedded SmolLM2-135M-Instruct)",
                         description="Budget-forced generation: thinking bounded by the budget, then the answer.")
    gen.add_argument("prompts", nargs="+", help="one or more questions")
    gen.set_defaults(func=_generate)
    env = sub.add_parser("env", help="versions of the stack and known installation problems, with their fixes",
                         description="Report Python, torch, transformers, vLLM, TRL, accelerate, Gradio, hf-s1 and "
                                     "the embedded model; exit status 1 when a known problem is found.")
    env.add_argument("--json", action="store_true", help="print the report as JSON")
    env.set_defaults(func=_env)
    # Each capability registers its own sub-commands.
    from .data.cli import add_curate_subcommand
    from .eval.cli import add_eval_subcommands
    from .hub.cli import add_hub_subcommands

    add_curate_subcommand(sub)
    add_eval_subcommands(sub)
    add_hub_subcommands(sub)
    for sub_parser in sub.choices.values():
        _add_common_options(sub_parser, top=False)
    return parser


def _wants_env(argv: Sequence[str]) -> bool:
    """`hf-s1 [options] env ...`: answered without building the other sub-commands (no transformers import), so
    the check runs fast and on an install too broken for the rest."""
    i = 0
    while i < len(argv) and argv[i] in ("--debug", "-v", "--verbose", "-q", "--quiet", "--verbosity"):
        i += 2 if argv[i] == "--verbosity" else 1
    return i < len(argv) and argv[i] == "env" and not any(a in ("-h", "--help") for a in argv)


_BOOL_WORDS = {"true", "false", "yes", "no", "t", "f", "y", "n", "1", "0"}


def _bare_switches(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """HfArgumentParser's bool flags take an optional value (`--json false`), so `--json "What is 2+3?"` would read
    the prompt as that value: a bool flag followed by anything but a bool word is a bare switch (`--json=true`)."""
    switches = set()
    stack = [parser]
    while stack:
        p = stack.pop()
        for action in p._actions:
            if action.nargs == "?" and action.const is True:
                switches.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
    out = list(argv)
    for i, arg in enumerate(out):
        if arg in switches and (i + 1 == len(out) or out[i + 1].lower() not in _BOOL_WORDS):
            out[i] = f"{arg}=true"
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if _wants_env(argv):
        from .environment import main as env_main

        return env_main(argv[argv.index("env") + 1:])
    parser = build_parser()
    args = parser.parse_args(_bare_switches(parser, argv))
    set_verbosity("debug" if args.debug and args.verbosity is None else args.verbosity)
    try:
        return args.func(args)
    except HfS1Error as exc:  # input errors: the message names the fix
        if args.debug:
            raise
        print(f"hf-s1: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # anything else: one line, the traceback on request
        if args.debug:
            raise
        print(f"hf-s1: error: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''} "
              f"(run `hf-s1 --debug ...` for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
