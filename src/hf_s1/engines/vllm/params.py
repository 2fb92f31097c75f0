"""Per-request budget settings for vLLM: what a request carries in `SamplingParams.extra_args`.

- `"thinking_budget"`: a mapping of `ThinkingBudget` fields, e.g. `{"max_thinking_tokens": 512, "num_waits": 2}`,
  or the same as a JSON string (`vllm_xargs` values must be flat over HTTP). `{}` means the default budget
  (thinking is opened and closed properly, no bounds). Requests without the key, or with `None` / JSON `null`,
  are left untouched, unless the server sets `HF_S1_DEFAULT_THINKING_BUDGET` (a JSON budget for them).
- `"think_format"`: a preset name (`hf_s1.formats.PRESETS`), a mapping of `ThinkFormat` fields, or its JSON string;
  only with a budget (alone it is refused: it turns nothing on). Without it, the engine's format applies: read once
  from the model (`hf_s1.formats.resolve_format`, with the engine's `--reasoning-parser` when it has one).
- `"resumes_overrun"`: `true` from a client that makes the second call the `s1` profile needs when a row's
  thinking rounds run past the cap (`generate_with_budget` does); without it such budgets are refused.
- `"budget_log"`: a string naming the request, unique among the engine's requests, for a client that collects
  the processor's injection log afterwards (`hf_s1.engines.vllm.telemetry`): the exact telemetry.

`max_thinking_tokens="auto"` is refused: it depends on the whole batch (the longest prompt), which one request
does not know; resolve it before sending (`ThinkingBudget.resolve`), as `generate_with_budget` does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ...budget import BudgetError, ThinkingBudget
from ...formats import END_OF_TURN_TEXTS, ThinkFormat, get_format
from ..request_budget import BUDGET_KEY, FORMAT_KEY, LOG_KEY, RESUME_KEY, parse_budget

__all__ = ["BUDGET_KEY", "FORMAT_KEY", "RESUME_KEY", "LOG_KEY", "DEFAULT_BUDGET_ENV", "budget_from_params", "log_tag"]

DEFAULT_BUDGET_ENV = "HF_S1_DEFAULT_THINKING_BUDGET"


def budget_from_params(params: Any) -> tuple[ThinkingBudget, ThinkFormat | None] | None:
    """The budget and think format a request asks for, or `None` when it asks for none.

    Reads `params.extra_args[BUDGET_KEY]` (a mapping of `ThinkingBudget` fields or its JSON string; `{}` for the
    defaults) and `params.extra_args[FORMAT_KEY]` (a preset name, a mapping of `ThinkFormat` fields or its JSON
    string; absent: `None`, the engine's own format). Without a budget key, the JSON budget in
    the `HF_S1_DEFAULT_THINKING_BUDGET` environment variable applies when it is set.

    Args:
        params: a `vllm.SamplingParams` (anything with an `extra_args` attribute).

    Raises:
        BudgetError: the budget or format is malformed; the message names the fix.

    Examples:

    ```python
    >>> from vllm import SamplingParams
    >>> from hf_s1.engines.vllm import budget_from_params
    >>> budget, fmt = budget_from_params(SamplingParams(extra_args={"thinking_budget": {"max_thinking_tokens": 64}}))
    >>> budget.max_thinking_tokens, fmt
    (64, None)
    >>> budget_from_params(SamplingParams(extra_args={"thinking_budget": '{"num_waits": 2}'}))[0].num_waits
    2
    >>> budget_from_params(SamplingParams()) is None
    True
    >>> budget_from_params(SamplingParams(extra_args={"thinking_budget": {"max_thinking_tokens": -1}}))
    Traceback (most recent call last):
    ...
    hf_s1.errors.BudgetError: extra_args['thinking_budget']: max_thinking_tokens must be >= 0, got -1.

    ```
    """
    extra = getattr(params, "extra_args", None) or {}
    if not isinstance(extra, Mapping):
        raise BudgetError(f"extra_args must be a mapping, got {type(extra).__name__}.")
    rules = dict(resumes=extra.get(RESUME_KEY) is True, driver="hf_s1.engines.vllm.generate_with_budget",
                 resume_flag=f"extra_args[{RESUME_KEY!r}]=true")
    where = f"extra_args[{BUDGET_KEY!r}]"
    budget = parse_budget(extra.get(BUDGET_KEY), where, **rules)
    if budget is None:  # absent, None or JSON null: this request asks for no budget
        default = os.environ.get(DEFAULT_BUDGET_ENV)
        if not default:
            if FORMAT_KEY in extra:
                raise BudgetError(f"extra_args has {FORMAT_KEY!r} but no {BUDGET_KEY!r}: a format alone does not "
                                  f"turn budget forcing on; add {BUDGET_KEY!r} ({{}} for the defaults) or drop the format.")
            return None
        where = f"${DEFAULT_BUDGET_ENV}"
        budget = parse_budget(default, where, **rules)
        if budget is None:
            return None
    fmt = None
    try:
        if extra.get(FORMAT_KEY) is not None:
            fmt = get_format(_json_or_value(extra[FORMAT_KEY]))
        # What can be checked without a tokenizer is checked here, so a server's front end (which has none) refuses it.
        budget.check_extrapolation_text(((fmt.think_end,) if fmt else ()) + END_OF_TURN_TEXTS)
        budget.check_chat_structure_text()
    except BudgetError as exc:
        raise BudgetError(f"{where} / extra_args[{FORMAT_KEY!r}]: {exc}") from None
    log_tag(params)
    if getattr(params, "thinking_token_budget", None) is not None:
        # vLLM's own budget runs after custom processors and would override ours: mixed, silent behaviour.
        raise BudgetError(
            f"this request sets both vLLM's thinking_token_budget and hf-s1's extra_args[{BUDGET_KEY!r}]: drop "
            f"thinking_token_budget and put the cap in the hf-s1 budget (max_thinking_tokens)."
        )
    return budget, fmt


def _json_or_value(value: Any) -> Any:
    """A format as a request carries it: a JSON object string is read (`vllm_xargs` values are flat over HTTP)."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        import json

        try:
            return json.loads(value)
        except ValueError as exc:
            raise BudgetError(f"the think format is not valid JSON ({exc}); send a preset name or a JSON object of "
                              f"ThinkFormat fields.") from None
    return value


def log_tag(params: Any) -> str | None:
    """The name under which a request's injection log is kept for its client (`extra_args[LOG_KEY]`), or `None`.

    Raises:
        BudgetError: the name is not a non-empty string.
    """
    tag = (getattr(params, "extra_args", None) or {}).get(LOG_KEY)
    if tag is not None and not (isinstance(tag, str) and tag):
        raise BudgetError(f"extra_args[{LOG_KEY!r}] must be a non-empty string naming the request, got {tag!r}.")
    return tag
