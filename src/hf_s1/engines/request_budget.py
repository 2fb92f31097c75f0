"""What a request carries to ask for a budget, the same on every engine that takes per-request settings (vLLM's
`SamplingParams.extra_args`, transformers continuous batching's `logit_processor_kwargs`): the key names, and the
one reading of a request's budget.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..budget import BudgetError, ThinkingBudget

__all__ = ["BUDGET_KEY", "FORMAT_KEY", "RESUME_KEY", "LOG_KEY", "parse_budget"]

BUDGET_KEY = "thinking_budget"  # a ThinkingBudget, a mapping of its fields, or its JSON object
FORMAT_KEY = "think_format"  # a preset name or a mapping of ThinkFormat fields (absent: the engine's format)
RESUME_KEY = "resumes_overrun"  # the client makes the s1 profile's second call (BudgetTracker.resume)
LOG_KEY = "budget_log"  # a name under which the request's injection log is kept for its client


def parse_budget(raw: Any, where: str, *, resumes: bool, driver: str, resume_flag: str) -> ThinkingBudget | None:
    """A request's budget from what it carries: a `ThinkingBudget`, a mapping of its fields (`{}`: the defaults),
    or its JSON object; `None` (or JSON `null`) asks for no budget and gives `None`. What one request cannot do
    is refused here, with the fix: `"auto"` (it depends on the whole call) and the s1 profile without a client
    that makes its second call (`resumes`).

    Args:
        raw: what the request carries under `BUDGET_KEY`.
        where: how the error messages name it (e.g. `extra_args['thinking_budget']`).
        resumes: the request says its client makes the s1 profile's second call.
        driver: the function that runs whole calls on this engine (named by the errors).
        resume_flag: how the request says `resumes` (named by the errors).

    Raises:
        BudgetError: malformed or not servable as one request; the message names the fix.

    Examples:

    ```python
    >>> from hf_s1.engines.request_budget import parse_budget
    >>> rules = dict(resumes=False, driver="generate_with_budget", resume_flag="resumes_overrun=True")
    >>> parse_budget('{"num_waits": 2}', "thinking_budget", **rules).num_waits
    2
    >>> parse_budget("null", "thinking_budget", **rules) is None
    True
    >>> parse_budget({"max_thinking_tokens": "auto"}, "thinking_budget", **rules)
    Traceback (most recent call last):
    ...
    hf_s1.errors.BudgetError: thinking_budget: max_thinking_tokens="auto" depends on the whole batch (the allowance minus its longest prompt, the markers and 100); resolve it before sending (ThinkingBudget.resolve) or use generate_with_budget.

    ```
    """
    if isinstance(raw, str):  # over HTTP, settings are flat: the budget comes as a JSON object string
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BudgetError(f"{where} must be a JSON object of ThinkingBudget fields: {exc}.") from None
    if raw is None:
        return None
    if not isinstance(raw, (ThinkingBudget, Mapping)):
        raise BudgetError(f"{where} must be a ThinkingBudget, a mapping of its fields or its JSON object, got "
                          f"{type(raw).__name__}.")
    try:
        budget = ThinkingBudget.from_dict(raw)
    except (BudgetError, TypeError) as exc:  # TypeError: e.g. a field given a list where a scalar is expected
        raise BudgetError(f"{where}: {exc}") from None
    if budget.is_auto:
        raise BudgetError(f'{where}: max_thinking_tokens="auto" depends on the whole batch (the allowance minus its '
                          f"longest prompt, the markers and 100); resolve it before sending (ThinkingBudget.resolve) "
                          f"or use {driver}.")
    if budget.profile == "s1" and not resumes:
        raise BudgetError(f"{where}: the s1 profile lets thinking rounds run past the cap and then answers in a "
                          f"second call from the cut, which a single request cannot make: use {driver}, or set "
                          f"{resume_flag} if your client makes that call (BudgetTracker.resume).")
    return budget
