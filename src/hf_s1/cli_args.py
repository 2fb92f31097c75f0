"""Command-line building blocks shared by `hf-s1` and its sub-commands (`hf_s1.data.cli`, `hf_s1.eval.cli`): values
given as text, the budget and model options (dataclasses read by transformers' `HfArgumentParser`), and the
dataclass <-> argparse glue. Sub-commands import from here, never from the top-level command (`hf_s1.cli`).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

from .budget import AUTO, ThinkingBudget
from .engines.base import ENGINES
from .errors import BudgetError

__all__ = ["BudgetArguments", "ModelArguments", "CapsAction", "IntListAction", "PositiveIntAction", "add_subcommand",
           "dataclass_parents", "from_namespace", "parse_caps", "parse_int_list"]

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

    def template_kwargs(self) -> dict[str, Any] | None:
        """`chat_template_kwargs` read from its JSON; a `BudgetError` naming the flag when it is not an object."""
        if self.chat_template_kwargs is None:
            return None
        import json

        try:
            value = json.loads(self.chat_template_kwargs)
        except ValueError as exc:
            raise BudgetError(f"--chat-template-kwargs {self.chat_template_kwargs!r} is not JSON ({exc}); give an "
                              'object, e.g. \'{"enable_thinking": false}\'.') from None
        from .prompts import check_template_kwargs

        return check_template_kwargs(value)

    _argument_group_name = "model"

    model: Optional[str] = field(default=None, metadata={
        "help": "Hub id or local folder; None: the embedded SmolLM2-135M-Instruct"})
    engine: str = field(default="transformers", metadata={"choices": ENGINES, "help": "engine"})
    format: Optional[str] = field(default=None, metadata={
        "help": "think format: a preset name (s1, r1, qwen3, gpt-oss, magistral, seed-oss, ...: docs/formats.md); "
                "None: read from the model"})
    chat_template_kwargs: Optional[str] = field(default=None, metadata={
        "help": 'keywords for the chat template, a JSON object, e.g. \'{"enable_thinking": false}\''})
    system_prompt: Optional[str] = field(default=None, metadata={"help": "system message; None: the chat template's"})
    batch_size: int = field(default=8, metadata={"help": "prompts per engine call"})
    seed: int = field(default=0, metadata={"help": "random seed"})


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

