"""`hf-s1 push` and `hf-s1 pull`: subcommands for the `hf-s1` command (`add_hub_subcommands`), also runnable on
their own as `python -m hf_s1.hub`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ..budget import PROFILES, BudgetError, ThinkingBudget
from ..errors import HfS1Error
from .errors import HubError
from .policy import BudgetPolicy

__all__ = ["add_hub_subcommands", "main"]


def _budget_flags(p: argparse.ArgumentParser) -> None:
    # The flag names of `hf_s1.cli.BudgetArguments` (ThinkingBudget's field names, hf-s1 0.1's short names), each
    # None unless given: only the given ones override the folder's policy.
    g = p.add_argument_group("thinking-budget policy to publish (default: the folder's own thinking_budget.json)")
    g.add_argument("--budget", metavar="JSON_FILE", default=None, help="a thinking_budget.json / ThinkingBudget JSON")
    g.add_argument("--max_thinking_tokens", "--max-thinking-tokens", "--max-thinking",
                   dest="max_thinking", type=int, default=None, help="upper bound on thinking tokens")
    g.add_argument("--min_thinking_tokens", "--min-thinking-tokens", "--min-thinking",
                   dest="min_thinking", type=int, default=None, help="lower bound on thinking tokens")
    g.add_argument("--num_waits", "--num-waits", dest="num_waits", type=int, default=None,
                   help="suppress the first N ends of thinking")
    g.add_argument("--extrapolation", action="append", default=None, help='string appended on suppression ("Wait")')
    g.add_argument("--answer_prefix", "--answer-prefix", dest="answer_prefix", default=None,
                   help='written after the cut ("Final Answer:")')
    g.add_argument("--max_answer_tokens", "--max-answer-tokens", "--max-answer",
                   dest="max_answer", type=int, default=None, help="cap on answer tokens")
    g.add_argument("--profile", choices=list(PROFILES), default=None, help="budget rules: hf-s1 or s1")
    g.add_argument("--format", dest="think_format", default=None,
                   help="the model's think format: a preset name (docs/formats.md); default: read from the model")


def _policy_from(args: argparse.Namespace) -> BudgetPolicy | None:
    fields = {
        "max_thinking_tokens": args.max_thinking, "min_thinking_tokens": args.min_thinking,
        "num_waits": args.num_waits, "extrapolation": args.extrapolation, "answer_prefix": args.answer_prefix,
        "max_answer_tokens": args.max_answer, "profile": args.profile,
    }
    given = {k: v for k, v in fields.items() if v is not None}
    if args.budget is not None:
        with open(args.budget, encoding="utf-8") as f:
            base = BudgetPolicy.from_dict(json.load(f))
        budget = ThinkingBudget.from_dict({**base.budget.to_dict(), **given})
        return BudgetPolicy(budget, args.think_format or base.think_format)
    if given:
        return BudgetPolicy(ThinkingBudget(**given), args.think_format)
    if args.think_format is not None:
        raise BudgetError("--format needs a budget: add --max-thinking / --num-waits / ... or --budget FILE.")
    return None


def _push(args: argparse.Namespace) -> int:
    from .push import push_dataset, push_model

    common = dict(private=args.private or None, revision=args.revision, create_pr=args.create_pr,
                  commit_message=args.message, dry_run=args.dry_run, endpoint=args.endpoint,
                  license=args.license)
    if args.repo_type == "dataset":
        plan = push_dataset(args.source, args.target, pretty_name=args.name, tags=args.tag,
                            source_datasets=args.dataset, **common)
    else:
        plan = push_model(
            args.source, args.target, budget=_policy_from(args), eval_results=args.eval_results,
            base_model=args.base_model, datasets=args.dataset, tags=args.tag, model_name=args.name,
            custom_generate=not args.no_custom_generate, ignore_patterns=args.ignore or (), **common,
        )
    print(plan)
    return 0


def _pull(args: argparse.Namespace) -> int:
    from .pull import pull_snapshot

    folder = pull_snapshot(args.source, repo_type=args.repo_type, revision=args.revision, local_dir=args.local_dir,
                           local_files_only=args.offline, endpoint=args.endpoint, cache_dir=args.cache_dir)
    policy = BudgetPolicy.load(folder) if args.repo_type == "model" else None
    if args.json:
        print(json.dumps({"path": str(folder), "policy": policy.to_dict() if policy else None}))
    else:
        print(folder)
        if args.repo_type == "model":
            print(f"thinking budget: {policy.describe() if policy else 'none stored'}")
    return 0


def _guarded(func):
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (HubError, HfS1Error, OSError) as exc:  # messages name the fix; no token is ever in them
            print(f"hf-s1 {args.command}: error: {exc}", file=sys.stderr)
            return 2

    return run


def add_hub_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Add `push` and `pull` to an `argparse` subparsers object (the `hf-s1` command's).

    Examples:

    ```python
    >>> import argparse
    >>> from hf_s1.hub.cli import add_hub_subcommands
    >>> parser = argparse.ArgumentParser(prog="hf-s1")
    >>> add_hub_subcommands(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["push", "out/model", "me/model", "--max-thinking", "512", "--dry-run"])
    >>> args.command, args.max_thinking, args.dry_run
    ('push', 512, True)

    ```
    """
    push = subparsers.add_parser(
        "push", help="publish a model folder (or a data file) with its thinking budget, card and results, in one commit",
        description="Publish to a Hub repo (namespace/name) or a local folder (./path) in one commit. The token comes "
                    "from `hf auth login` or HF_TOKEN and is never printed.",
    )
    push.add_argument("source", help="model folder (save_pretrained), or a .jsonl/.parquet file with --repo-type dataset")
    push.add_argument("target", help="Hub repo id, or a local folder starting with ./ or /")
    push.add_argument("--repo-type", choices=["model", "dataset"], default="model")
    push.add_argument("--dry-run", action="store_true", help="print the plan; write nothing, no network")
    push.add_argument("--private", action="store_true", help="create the repo private (if it does not exist)")
    push.add_argument("--revision", default=None, help="branch to commit to (created if missing)")
    push.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    push.add_argument("--message", default=None, help="commit message")
    push.add_argument("--endpoint", default=None, help="another Hub endpoint")
    card = push.add_argument_group("card")
    card.add_argument("--name", default=None, help="model / data set name shown in the card")
    card.add_argument("--base-model", default=None)
    card.add_argument("--dataset", action="append", default=None, help="training (or source) data set id; repeatable")
    card.add_argument("--tag", action="append", default=None, help="extra tag; repeatable")
    card.add_argument("--license", default=None)
    card.add_argument("--eval-results", default=None, metavar="PATH", help="hf-s1 eval folder or results JSON/JSONL")
    push.add_argument("--no-custom-generate", action="store_true", help="leave out the custom_generate/ layout")
    push.add_argument("--ignore", action="append", default=None, help="extra glob to leave out; repeatable")
    _budget_flags(push)
    push.set_defaults(func=_guarded(_push))

    pull = subparsers.add_parser(
        "pull", help="fetch a model (or data set) into the Hugging Face cache and show its thinking budget",
        description="Download (or find in the cache, offline) a repo snapshot; print its folder and policy. Nothing "
                    "local is overwritten.",
    )
    pull.add_argument("source", help="Hub repo id or local folder")
    pull.add_argument("--repo-type", choices=["model", "dataset"], default="model")
    pull.add_argument("--revision", default=None, help="branch, tag or commit hash to pin")
    pull.add_argument("--local-dir", default=None, help="also copy the files into this new or empty folder")
    pull.add_argument("--offline", action="store_true", help="use the local cache only")
    pull.add_argument("--cache-dir", default=None, help="another Hugging Face cache folder")
    pull.add_argument("--endpoint", default=None, help="another Hub endpoint")
    pull.add_argument("--json", action="store_true", help="print {path, policy} as JSON")
    pull.set_defaults(func=_guarded(_pull))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m hf_s1.hub push|pull ...`."""
    parser = argparse.ArgumentParser(prog="hf-s1", description="Hub helpers of hf-s1")
    add_hub_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
