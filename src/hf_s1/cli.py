"""The `hf-s1` command.

Every sub-command's options come from dataclasses, read by transformers' `HfArgumentParser`: a flag is the
field's name (`--max_thinking_tokens`, also `--max-thinking-tokens`), short names of hf-s1 0.1 stay as aliases
(`--max-thinking`, `--min-thinking`, `--max-answer`), and the budget flags are defined once (`BudgetArguments`,
shared by `generate`, `eval` and `push`). `python -m hf_s1.cli` is the same command.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from .cli_args import (BudgetArguments, ModelArguments, add_subcommand, dataclass_parents, from_namespace,  # noqa: F401
                       parse_caps, parse_int_list)
from .errors import HfS1Error

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



@dataclass
class GenerateArguments:
    """`hf-s1 generate`'s own options (the prompts are positional)."""

    _argument_group_name = "generation"

    temperature: float = field(default=0.0, metadata={"help": "0 decodes greedily (s1's setting)"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling (with a temperature above 0)"})
    json: bool = field(default=False, metadata={
        "help": "one JSON object per prompt: prompt, thinking, answer, thinking_tokens, answer_tokens, waits, capped, "
                "finish_reason"})




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
                         think_format=model_args.format, system_prompt=model_args.system_prompt,
                         chat_template_kwargs=model_args.template_kwargs())
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
