"""The thinking-budget policy of a repository: a `ThinkingBudget` plus the think format it applies to, stored in
`thinking_budget.json` and under the `thinking_budget` key of `generation_config.json` (where `transformers`
users find it: `model.generation_config.thinking_budget`)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from ..budget import ThinkingBudget, describe_budget
from ..formats import FORMATS, ThinkFormat, get_format
from .errors import HubInputError

__all__ = ["BudgetPolicy", "POLICY_FILE", "GENERATION_CONFIG_KEY", "POLICY_VERSION", "describe_budget", "stored_policy",
           "warn_stored_policy"]

POLICY_FILE = "thinking_budget.json"
GENERATION_CONFIG_KEY = "thinking_budget"
POLICY_VERSION = 1

logger = logging.getLogger(__name__)
_WARNED: set[str] = set()


@dataclass(frozen=True)
class BudgetPolicy:
    """A thinking budget and the think format it applies to, as published with a model.

    Args:
        budget (`ThinkingBudget`): the budget to apply by default.
        think_format (`ThinkFormat`, *optional*): the model's think format; `None` lets the engines detect it
            from the chat template.

    Examples:

    ```python
    >>> from hf_s1 import ThinkingBudget
    >>> from hf_s1.hub import BudgetPolicy
    >>> policy = BudgetPolicy(ThinkingBudget(max_thinking_tokens=512, num_waits=1), "s1")
    >>> policy.to_dict()["think_format"]
    's1'
    >>> BudgetPolicy.from_dict(policy.to_dict()) == policy
    True
    >>> policy.describe()
    'max 512 thinking tokens, 1 Wait extension (format s1)'

    ```
    """

    budget: ThinkingBudget
    think_format: Union[ThinkFormat, None] = None

    def __init__(self, budget: Union[ThinkingBudget, Mapping[str, Any]],
                 think_format: Union[str, ThinkFormat, None] = None) -> None:
        object.__setattr__(self, "budget", ThinkingBudget.from_dict(budget))
        object.__setattr__(self, "think_format", None if think_format is None else get_format(think_format))

    # -- serialisation ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping: `{"version", "budget", "think_format"}`; preset formats by name."""
        fmt = self.think_format
        if fmt is not None and FORMATS.get(fmt.name) == fmt:
            fmt_value: Any = fmt.name
        else:
            fmt_value = None if fmt is None else dataclasses.asdict(fmt)
        return {"version": POLICY_VERSION, "budget": self.budget.to_dict(), "think_format": fmt_value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BudgetPolicy:
        """Inverse of `to_dict`; also accepts a bare `ThinkingBudget` mapping (or a `ThinkingBudget`). Errors name
        the bad field."""
        if isinstance(data, BudgetPolicy):
            return data
        if isinstance(data, ThinkingBudget):
            return cls(data)
        if not isinstance(data, Mapping):
            raise HubInputError(f"a thinking-budget policy must be a JSON object, got {type(data).__name__}.")
        if "budget" not in data:  # a bare ThinkingBudget.to_dict()
            return cls(ThinkingBudget.from_dict(data))
        version = data.get("version", POLICY_VERSION)
        if not isinstance(version, int) or version > POLICY_VERSION:
            raise HubInputError(f"thinking-budget policy version {version!r} is newer than this hf-s1 reads "
                                f"({POLICY_VERSION}): upgrade hf-s1.")
        unknown = sorted(set(data) - {"version", "budget", "think_format"})
        if unknown:
            raise HubInputError(f"unknown thinking-budget policy key(s) {unknown}; expected budget, think_format, version.")
        fmt = data.get("think_format")
        if isinstance(fmt, Mapping):
            try:
                fmt = ThinkFormat(**fmt)
            except TypeError as exc:
                raise HubInputError(f"invalid think_format in the policy: {exc}.") from None
        return cls(data["budget"], fmt)

    def describe(self) -> str:
        """One line for cards and evaluation notes."""
        return describe_budget(self.budget) + (f" (format {self.think_format.name})" if self.think_format else "")

    # -- files -----------------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def save(self, folder: Union[str, os.PathLike]) -> Path:
        """Write `thinking_budget.json` into `folder` and return its path (the generation config is untouched)."""
        path = Path(folder) / POLICY_FILE
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: Union[str, os.PathLike]) -> BudgetPolicy | None:
        """The policy stored in a model folder: `thinking_budget.json`, else the `thinking_budget` entry of
        `generation_config.json`, else `None`."""
        folder = Path(folder)
        for name, key in ((POLICY_FILE, None), ("generation_config.json", GENERATION_CONFIG_KEY)):
            path = folder / name
            if not path.is_file():
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise HubInputError(f"{path} is not valid JSON ({exc}): fix or delete it.") from None
            if key is not None:
                data = data.get(key) if isinstance(data, Mapping) else None
                if data is None:
                    continue
            return cls.from_dict(data)
        return None


def stored_policy(model: Any) -> BudgetPolicy | None:
    """The policy stored in `model.generation_config.thinking_budget` (written by `push_model`), or `None`.

    Plain `model.generate` and `pipeline` do not read it: apply it with
    `BudgetForcingLogitsProcessor.from_model(model, tokenizer)`, `generate_with_budget(..., budget=policy.budget,
    think_format=policy.think_format)` or the repository's `custom_generate`."""
    raw = getattr(getattr(model, "generation_config", None), GENERATION_CONFIG_KEY, None)
    return None if raw is None else BudgetPolicy.from_dict(raw)


def warn_stored_policy(model: Any) -> None:
    """Log a warning (once per model name) when `model` stores a thinking budget: `transformers` keeps the entry in
    `model.generation_config` but plain `generate` and `pipeline` do not apply it. Called by hf-s1's loaders
    (`hf_s1.load_model`, `hf_s1.hub.pull_model`)."""
    raw = getattr(getattr(model, "generation_config", None), GENERATION_CONFIG_KEY, None)
    name = str(getattr(model, "name_or_path", "") or "this model")
    if raw is None or name in _WARNED:
        return
    _WARNED.add(name)
    logger.warning(
        "%s stores a thinking budget (generation_config.%s) that plain model.generate() and pipeline() ignore. "
        "Apply it with model.generate(..., logits_processor=[BudgetForcingLogitsProcessor.from_model(model, "
        "tokenizer)]), with hf_s1.generate_with_budget(model, tokenizer, prompts, stored_policy(model).budget), or "
        "with the repository's custom_generate (custom_generate=..., trust_remote_code=True).",
        name, GENERATION_CONFIG_KEY)

