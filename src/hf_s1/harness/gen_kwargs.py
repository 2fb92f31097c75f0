"""An evaluation harness's generation settings (`gen_kwargs`) as a thinking budget and sampling settings.

Two spellings are read, never mixed in one request:

- **s1's**, as its lm-evaluation-harness fork reads them (`eval/commands.sh`): `max_tokens_thinking` (an int or
  `"auto"`), `thinking_n_ignore`, `thinking_n_ignore_str`, `thinking_start`, `thinking_end`, `until_thinking`,
  `until_thinking_2`. Any of them selects `ThinkingBudget(profile="s1")`, s1's evaluation rules;
- **hf-s1's**: the `ThinkingBudget` fields (`max_thinking_tokens`, `min_thinking_tokens`, `num_waits`,
  `extrapolation`, `answer_prefix`, `max_answer_tokens`, `profile`) and `think_format`.

Either way the harness's own keys keep their meaning: `max_gen_toks` (the allowance for thinking and answer, as
s1's `max_tokens`), `until` (the answer's stop strings), `do_sample`, `temperature`, `top_p`, `top_k`, `min_p`,
`seed`. With neither spelling the request gets `ThinkingBudget()`: thinking is opened and closed, unbounded.
"""

from __future__ import annotations

import dataclasses
import math

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..budget import ThinkingBudget
from ..errors import BudgetError
from ..prompts import check_sampling
from ..formats import FORMATS, ThinkFormat

__all__ = ["HarnessRequest", "S1_KEYS", "from_gen_kwargs"]

S1_KEYS = ("max_tokens_thinking", "thinking_n_ignore", "thinking_n_ignore_str", "thinking_start", "thinking_end",
           "until_thinking", "until_thinking_2")
BUDGET_KEYS = tuple(f.name for f in dataclasses.fields(ThinkingBudget))  # hf-s1's own names: the budget's fields
SAMPLING_KEYS = ("do_sample", "temperature", "top_p", "top_k", "min_p", "seed")
# Keys a harness adds that change nothing here: vLLM/HF detokenisation switches.
IGNORED_KEYS = ("skip_special_tokens", "spaces_between_special_tokens")


@dataclass(frozen=True)
class HarnessRequest:
    """What one harness request asks for: a budget, its think format, sampling settings and answer stops.

    `thinking_stops` are the extra strings s1's fork also stops thinking at (`until_thinking_2`): each must be
    one the engine already stops thinking at (the end marker's first token, end-of-turn, end-of-sequence);
    the model backend checks them against the tokenizer.
    """

    budget: ThinkingBudget
    think_format: ThinkFormat
    max_gen_toks: int | None
    until: tuple[str, ...] = ()
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float | None = None
    seed: int | None = None
    thinking_stops: tuple[str, ...] = field(default_factory=tuple)


def _int(name: str, value: Any, *, low: int | None = None, fix: str = "") -> int:
    try:
        if isinstance(value, bool) or float(value) != int(float(value)):
            raise ValueError
        number = int(float(value))
    except (TypeError, ValueError, OverflowError):
        raise BudgetError(f"gen_kwargs {name}={value!r}: give a whole number.") from None
    if low is not None and number < low:
        raise BudgetError(f"gen_kwargs {name}={value!r}: {fix}.")
    return number


def _float(name: str, value: Any) -> float:
    """A number from the command line (lm-eval hands "0.7" as a string); its range is `check_sampling`'s."""
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise BudgetError(f"gen_kwargs {name}={value!r}: give a number.") from None
    if not math.isfinite(number):  # NaN would otherwise fail every comparison: refused, never greedy
        raise BudgetError(f"gen_kwargs {name}={value!r}: give a finite number.")
    return number


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise BudgetError(f"gen_kwargs {name}={value!r}: give True or False.")


def _strings(name: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise BudgetError(f"gen_kwargs {name}={value!r}: give a string or a list of strings.")


def _format_of(start: str, end: str) -> ThinkFormat:
    for fmt in FORMATS.values():
        if (fmt.think_start, fmt.think_end) == (start, end):
            return fmt
    known = "; ".join(f"{f.name}: thinking_start={f.think_start}, thinking_end={f.think_end}"
                      for f in dict.fromkeys(FORMATS.values()))
    raise BudgetError(f"gen_kwargs thinking_start={start!r}, thinking_end={end!r} is not a think format hf-s1 "
                      f"knows; use one of ({known}).")


def from_gen_kwargs(gen_kwargs: Mapping[str, Any], *, default_format: ThinkFormat) -> HarnessRequest:
    """Read a harness request's `gen_kwargs` (after the harness merged its task's and the command line's).

    Raises:
        BudgetError: an unknown key, both spellings at once, or a value the budget refuses; the message names
            the key and the fix.

    Examples:

    ```python
    >>> from hf_s1.formats import S1_FORMAT
    >>> r = from_gen_kwargs({"max_gen_toks": 32768, "max_tokens_thinking": "auto", "thinking_n_ignore": 2,
    ...                      "thinking_n_ignore_str": "Wait", "until": ["</s>"]}, default_format=S1_FORMAT)
    >>> r.budget.profile, r.budget.max_thinking_tokens, r.budget.num_waits, r.max_gen_toks, r.until
    ('s1', 'auto', 2, 32768, ('</s>',))
    >>> from_gen_kwargs({"max_thinking_tokens": 64, "thinking_n_ignore": 1}, default_format=S1_FORMAT)
    Traceback (most recent call last):
    ...
    hf_s1.errors.BudgetError: gen_kwargs mix s1's names (thinking_n_ignore) with hf-s1's (max_thinking_tokens): use one spelling.

    ```
    """
    kwargs = dict(gen_kwargs)
    unknown = sorted(set(kwargs) - {*S1_KEYS, *BUDGET_KEYS, *SAMPLING_KEYS, *IGNORED_KEYS, "think_format",
                                    "max_gen_toks", "until"})
    if unknown:
        raise BudgetError(f"gen_kwargs {', '.join(unknown)}: not a setting hf-s1 reads. s1's names: "
                          f"{', '.join(S1_KEYS)}; hf-s1's: {', '.join(BUDGET_KEYS)}, think_format; and "
                          f"max_gen_toks, until, {', '.join(SAMPLING_KEYS)}.")
    s1 = [k for k in S1_KEYS if k in kwargs]
    ours = [k for k in (*BUDGET_KEYS, "think_format") if k in kwargs]
    if s1 and ours:
        raise BudgetError(f"gen_kwargs mix s1's names ({', '.join(s1)}) with hf-s1's ({', '.join(ours)}): "
                          f"use one spelling.")
    fmt, stops = default_format, ()
    try:
        if s1:
            fmt = _format_of(kwargs.get("thinking_start", default_format.think_start),
                             kwargs.get("thinking_end", default_format.think_end))
            until_thinking = kwargs.get("until_thinking")
            if until_thinking is not None and not fmt.think_end.startswith(str(until_thinking)):
                raise BudgetError(f"gen_kwargs until_thinking={until_thinking!r}: thinking stops at the start of "
                                  f"the end marker {fmt.think_end!r}; leave until_thinking out or set it to a "
                                  f"prefix of it (s1's default {fmt.think_end[: fmt.think_end.find('>') + 1]!r}).")
            stops = tuple(str(kwargs[k]) for k in ("until_thinking_2",) if k in kwargs)
            n_ignore = _int("thinking_n_ignore", kwargs["thinking_n_ignore"]) if "thinking_n_ignore" in kwargs else 0
            if n_ignore and "thinking_n_ignore_str" not in kwargs:
                raise BudgetError("gen_kwargs thinking_n_ignore without thinking_n_ignore_str: s1's code then "
                                  "continues with no text, which hf-s1 does not do; add thinking_n_ignore_str=Wait.")
            cap = kwargs.get("max_tokens_thinking")
            if cap is not None and cap != "auto":
                cap = _int("max_tokens_thinking", cap)
            budget = ThinkingBudget(max_thinking_tokens=cap, num_waits=n_ignore,
                                    extrapolation=str(kwargs.get("thinking_n_ignore_str", "Wait")), profile="s1")
        else:
            if "think_format" in kwargs:
                name = kwargs["think_format"]
                if name not in FORMATS:
                    raise BudgetError(f"gen_kwargs think_format={name!r}: use one of {', '.join(FORMATS)}.")
                fmt = FORMATS[name]
            fields = {k: kwargs[k] for k in BUDGET_KEYS if k in kwargs}
            for name in ("max_thinking_tokens", "min_thinking_tokens", "num_waits", "max_answer_tokens"):
                if name in fields and not (name == "max_thinking_tokens" and fields[name] == "auto"):
                    fields[name] = _int(name, fields[name])
            budget = ThinkingBudget(**fields)
    except BudgetError as exc:
        message = str(exc)
        raise BudgetError(message if message.startswith("gen_kwargs") else f"gen_kwargs: {message}") from None
    until = _strings("until", kwargs.get("until"))
    max_gen = kwargs.get("max_gen_toks")
    if max_gen is not None:
        max_gen = _int("max_gen_toks", max_gen, low=1, fix="give at least 1 token")
    temperature = _float("temperature", kwargs.get("temperature", 0.0))
    do_sample = _bool("do_sample", kwargs["do_sample"]) if "do_sample" in kwargs else temperature > 0.0
    top_p = _float("top_p", kwargs.get("top_p", 1.0))
    top_k = _int("top_k", kwargs.get("top_k", 0))
    min_p = None if kwargs.get("min_p") is None else _float("min_p", kwargs["min_p"])
    try:
        check_sampling(do_sample, temperature, top_p, top_k, min_p)
    except BudgetError as exc:
        raise BudgetError(f"gen_kwargs {exc}") from None
    return HarnessRequest(
        budget=budget, think_format=fmt, max_gen_toks=max_gen, until=until, do_sample=do_sample,
        temperature=temperature if do_sample else 1.0, top_p=top_p, top_k=top_k, min_p=min_p,
        seed=None if kwargs.get("seed") is None else _int("seed", kwargs["seed"]), thinking_stops=stops)
