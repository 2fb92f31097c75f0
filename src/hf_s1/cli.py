"""The `hf-s1` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from .budget import AUTO, PROFILES, BudgetError, ThinkingBudget

__all__ = ["main"]


def _budget_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("thinking budget")
    g.add_argument("--max-thinking", type=_cap, default=None,
                   help='upper bound on thinking tokens (forced cut); "auto": what the allowance leaves (s1)')
    g.add_argument("--min-thinking", type=int, default=0, help="lower bound: suppress ends until reached")
    g.add_argument("--num-waits", type=int, default=0, help="suppress the first N ends of thinking")
    g.add_argument("--extrapolation", action="append", default=None,
                   help='string appended when an end is suppressed (default "Wait"; repeat to rotate)')
    g.add_argument("--answer-prefix", default="Final Answer:", help="written after the cut")
    g.add_argument("--max-answer", type=int, default=None, help="cap on answer tokens (default: the allowance)")
    g.add_argument("--profile", choices=PROFILES, default="hf-s1",
                   help="budget rules: hf-s1 (default) or s1 (s1's evaluation code, to reproduce its numbers)")
    g.add_argument("--max-new-tokens", type=int, default=None,
                   help="generation allowance (s1's max_gen_toks; default: the model's context, at most 32768)")


def _cap(text: str) -> int | str:
    if text == AUTO:
        return AUTO
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a number of tokens or "auto", got {text!r}') from None


def _budget_from(args: argparse.Namespace) -> ThinkingBudget:
    return ThinkingBudget(
        max_thinking_tokens=args.max_thinking,
        min_thinking_tokens=args.min_thinking,
        num_waits=args.num_waits,
        extrapolation=args.extrapolation or "Wait",
        answer_prefix=args.answer_prefix,
        max_answer_tokens=args.max_answer,
        profile=args.profile,
    )


def _generate(args: argparse.Namespace) -> int:
    budget = _budget_from(args)
    sampling = dict(do_sample=args.temperature > 0, temperature=args.temperature or 1.0, top_p=args.top_p)
    if args.engine == "vllm":
        # vLLM logs to stdout by default; keep stdout for results (--json must stay parseable).
        os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
        from .engines.vllm import generate_with_budget, load_llm

        llm = load_llm(args.model)
        results = generate_with_budget(llm, args.prompts, budget, think_format=args.format,
                                       system_prompt=args.system_prompt, seed=args.seed,
                                       max_new_tokens=args.max_new_tokens, **sampling)
    else:
        from transformers import set_seed

        from .engines.transformers import generate_with_budget
        from .models import load_model

        set_seed(args.seed)
        model, tokenizer = load_model(args.model)
        results = generate_with_budget(model, tokenizer, args.prompts, budget, think_format=args.format,
                                       system_prompt=args.system_prompt, batch_size=args.batch_size,
                                       max_new_tokens=args.max_new_tokens, **sampling)
    for r in results:
        if args.json:
            keys = ("prompt", "thinking", "answer", "thinking_tokens", "answer_tokens", "waits", "capped", "finish_reason")
            print(json.dumps({k: getattr(r, k) for k in keys}, ensure_ascii=False))
        else:
            print(r.render())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-s1", description="s1 budget forcing on the Hugging Face stack")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="budget-forced generation (default: the embedded SmolLM2-135M-Instruct)")
    gen.add_argument("prompts", nargs="+", help="one or more questions")
    gen.add_argument("--model", default=None, help="Hub id or local folder (default: the embedded model)")
    gen.add_argument("--engine", choices=["transformers", "vllm"], default="transformers")
    gen.add_argument("--format", choices=["s1", "r1"], default=None, help="think format (default: from the chat template)")
    gen.add_argument("--system-prompt", default=None)
    gen.add_argument("--temperature", type=float, default=0.0, help="0 decodes greedily (s1's setting)")
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--batch-size", type=int, default=8)
    gen.add_argument("--json", action="store_true", help="one JSON object per prompt")
    _budget_args(gen)
    gen.set_defaults(func=_generate)
    # Each capability registers its own sub-commands.
    from .data.cli import add_curate_subcommand
    from .eval.cli import add_eval_subcommands
    from .hub.cli import add_hub_subcommands

    add_curate_subcommand(sub)
    add_eval_subcommands(sub)
    add_hub_subcommands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BudgetError as exc:  # input errors: the message names the fix
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
