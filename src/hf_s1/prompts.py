"""Request preparation shared by the engines: prompts through the chat template plus the think-start
marker, one budget per prompt, and a token allowance that fits the model's context."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from .budget import (BudgetError, MarkerTokens, ThinkingBudget, as_budgets, generation_allowance, read_prompt,
                     token_allowance)
from .formats import ThinkFormat, get_format, marker_tokens

__all__ = ["Prompt", "Requests", "prepare_requests", "build_prompt", "check_prompt", "check_sampling",
           "check_template_kwargs"]

Prompt = Union[str, Sequence[Mapping[str, str]]]  # a question, or a chat (list of {"role", "content"})


def build_prompt(
    tokenizer: Any,
    prompt: Prompt,
    fmt: ThinkFormat,
    *,
    system_prompt: str | None = None,
    chat_template: bool = True,
    chat_template_kwargs: Mapping[str, Any] | None = None,
    markers: MarkerTokens | None = None,
) -> str:
    """The text a model continues: chat template with a generation prompt, then the think-start marker.

    With `chat_template=False` the prompt is used as plain text (a documented plain format for tokenizers
    without a template): `prompt + think_start`. On both paths one rule decides whether the marker is added, the
    rule `BudgetTracker.start` reads prompts with (`hf_s1.budget.read_prompt`): only the prompt's last turn counts;
    a turn that already opens thinking (a template of a thinking model) gets no second marker, and a turn whose
    thinking is closed (a template told to switch thinking off) is left closed. Markers in a user's own text never
    decide. `chat_template_kwargs` reach the template (`enable_thinking`, `reasoning_effort`, ...).
    """
    markers = markers if markers is not None else marker_tokens(tokenizer, fmt)
    text = _template_text(tokenizer, prompt, system_prompt, chat_template, chat_template_kwargs)
    return _open_thinking(tokenizer, text, fmt, markers)[0]


def _template_text(tokenizer: Any, prompt: Prompt, system_prompt: str | None, chat_template: bool,
                   chat_template_kwargs: Mapping[str, Any] | None) -> str:
    """The prompt through the chat template with a generation prompt (or as plain text)."""
    messages = check_prompt(prompt)
    if not chat_template:
        if not isinstance(prompt, str):
            raise BudgetError("chat_template=False takes plain string prompts, not chat messages.")
        return prompt
    if not getattr(tokenizer, "chat_template", None):
        raise BudgetError(
            "this tokenizer has no chat template: set tokenizer.chat_template, or pass chat_template=False to "
            "use prompts as plain text followed by the think-start marker."
        )
    if system_prompt is not None and messages[0].get("role") != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         **dict(chat_template_kwargs or {}))


def _open_thinking(tokenizer: Any, text: str, fmt: ThinkFormat, markers: MarkerTokens) -> tuple[str, list[int]]:
    """`text` with the start marker appended when its last turn has not begun thinking, and its token ids
    (tokenised once: the marker keeps its own tokens)."""
    ids = _encode_prompt(tokenizer, text, fmt, markers)
    if read_prompt(ids, markers) != "absent":
        return text, ids
    # Not begun: the text ends with no marker, so its ids are the plain tokenisation; the marker keeps its own.
    return f"{text}{fmt.think_start}", ids + list(markers.think_start)


def check_template_kwargs(kwargs: Any) -> dict[str, Any]:
    """`chat_template_kwargs` as a dict, or a `BudgetError`: a mapping of keyword names (what the chat template
    reads, e.g. `enable_thinking`) to values."""
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) and k.isidentifier() for k in kwargs):
        raise BudgetError(f"chat_template_kwargs must be a mapping of template keyword names to values (e.g. "
                          f"{{'enable_thinking': False}}), got {kwargs!r}.")
    reserved = sorted({"messages", "add_generation_prompt", "tokenize", "conversation"} & set(kwargs))
    if reserved:
        raise BudgetError(f"chat_template_kwargs may not set {reserved}: hf-s1 sets them itself.")
    return dict(kwargs)


def check_prompt(prompt: Any) -> list[dict[str, str]]:
    """A prompt as chat messages, or a `BudgetError` naming what is wrong: a prompt is a non-empty string or a
    non-empty list of messages, each a mapping with a string `role` and a non-empty string `content`."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise BudgetError("a prompt is empty; give every prompt some text.")
        check_text(prompt, "the prompt")
        return [{"role": "user", "content": prompt}]
    if not isinstance(prompt, Sequence) or not prompt or not all(isinstance(m, Mapping) for m in prompt):
        raise BudgetError(f"a prompt must be a non-empty string or a list of chat messages, got {prompt!r}.")
    messages = []
    for i, m in enumerate(prompt):
        role, content = m.get("role"), m.get("content")
        if not isinstance(role, str) or not role:
            raise BudgetError(f"chat message {i} has no role: give each message a 'role' (e.g. 'user'), got {dict(m)!r}.")
        if not isinstance(content, str):
            raise BudgetError(f"chat message {i} ({role}) has content {content!r}: content must be a string.")
        if not content.strip():
            raise BudgetError(f"chat message {i} ({role}) is empty; give it some text or leave the message out.")
        check_text(content, f"chat message {i} ({role})")
        messages.append(dict(m))
    return messages


def check_text(text: str, what: str) -> None:
    """Refuse text no tokenizer can take (a lone surrogate such as "\\ud800", left by a bad decode or a JSON
    escape), naming where it is, instead of a `TypeError` from the tokenizers library."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BudgetError(f"{what} holds {text[exc.start:exc.end]!r} at character {exc.start}, which is not valid "
                          f"Unicode text (a lone surrogate); remove it or decode the text correctly.") from None


@dataclass
class Requests:
    """A batch of budget-forced requests, ready for an engine: `texts[i]` is what the model continues."""

    prompts: list[Prompt]
    texts: list[str]
    budgets: list[ThinkingBudget]
    think_format: ThinkFormat
    markers: MarkerTokens
    input_ids: list[list[int]]

    def token_limits(self, context: int | None, max_new_tokens: int | None = None) -> list[int]:
        """Resolve `"auto"` budgets for this call (s1's rule: from the allowance and the longest prompt of the
        call) and return each row's token allowance (`hf_s1.budget.token_allowance`)."""
        longest = max(len(ids) for ids in self.input_ids)
        allowance = generation_allowance(context, max_new_tokens)
        self.budgets = [b.resolve(self.markers, allowance=allowance, longest_prompt=longest) for b in self.budgets]
        return [token_allowance(b, self.markers, len(ids), context, max_new_tokens)
                for b, ids in zip(self.budgets, self.input_ids)]


def prepare_requests(
    tokenizer: Any,
    prompts: Union[Prompt, Sequence[Prompt]],
    budget: Any,
    *,
    think_format: Union[str, ThinkFormat, None] = None,
    system_prompt: str | None = None,
    chat_template: bool = True,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> Requests:
    """Normalise one prompt or a list, check them, and pair each with its budget and prompt text.

    The think format is resolved once here (`hf_s1.formats.get_format`: explicit, else read from the model).
    A format whose template takes a token budget (`ThinkFormat.budget_kwarg`, Seed-OSS's `thinking_budget`) is
    given each row's `max_thinking_tokens` unless `chat_template_kwargs` sets it. A prompt whose template switched
    thinking off is answered without thinking; a budget that demands thinking there (a minimum, Waits) is refused.
    """
    if isinstance(prompts, Mapping):
        raise BudgetError("a single chat message was given: pass a chat as a list of messages, e.g. [message].")
    if not isinstance(prompts, (str, Sequence)):
        raise BudgetError(f"prompts must be a string, a chat (list of messages) or a list of either, got "
                          f"{type(prompts).__name__} {prompts!r}.")
    single = isinstance(prompts, str) or (
        isinstance(prompts, Sequence) and len(prompts) > 0 and isinstance(prompts[0], Mapping)
    )
    prompt_list = [prompts] if single else list(prompts)
    if not prompt_list:
        raise BudgetError("no prompts given: pass a prompt or a non-empty list of prompts.")
    fmt = get_format(think_format, tokenizer)
    markers = marker_tokens(tokenizer, fmt)
    budgets = as_budgets(budget, len(prompt_list))
    template_kwargs = check_template_kwargs(chat_template_kwargs)
    texts, input_ids = [], []
    if isinstance(system_prompt, str):
        check_text(system_prompt, "system_prompt")
    for i, (p, b) in enumerate(zip(prompt_list, budgets)):
        try:
            text = _template_text(tokenizer, p, system_prompt, chat_template, _with_budget(template_kwargs, fmt, b))
        except BudgetError as exc:
            if len(prompt_list) == 1:
                raise
            raise BudgetError(f"prompt {i}: {exc}") from None
        text, ids = _open_thinking(tokenizer, text, fmt, markers)
        texts.append(text)
        input_ids.append(ids)
    for i, (ids, b) in enumerate(zip(input_ids, budgets)):
        if (b.min_thinking_tokens or b.num_waits) and read_prompt(ids, markers) == "closed":
            raise BudgetError(
                f"prompt {i}: its chat template switched thinking off (the generation prompt closes the thinking "
                f"block), so a budget that demands thinking (min_thinking_tokens={b.min_thinking_tokens}, "
                f"num_waits={b.num_waits}) cannot be honoured; switch thinking on"
                + (f" (chat_template_kwargs={{'{fmt.switch}': True}})" if fmt.switch else "")
                + " or drop the minimum and the Waits.")
    return Requests(prompt_list, texts, budgets, fmt, markers, input_ids)


def _with_budget(kwargs: dict[str, Any], fmt: ThinkFormat, budget: ThinkingBudget) -> dict[str, Any]:
    """The template keywords for one row: the caller's, plus the row's cap where the template takes a budget."""
    if fmt.budget_kwarg is None or fmt.budget_kwarg in kwargs:
        return kwargs
    cap = budget.max_thinking_tokens
    if cap is None or budget.is_auto:
        return kwargs  # no cap to announce: the template's own default
    return {**kwargs, fmt.budget_kwarg: cap}


def _encode_prompt(tokenizer: Any, text: str, fmt: ThinkFormat, markers: MarkerTokens) -> list[int]:
    """Token ids of a prompt whose closing think marker keeps its own tokens: tokenising the joined text could
    merge a plain-text marker with the prompt's last characters (e.g. "?<" + "think"), hiding the marker."""
    stripped = text.rstrip()
    for marker, ids in ((fmt.think_start, markers.think_start), (fmt.think_end, markers.think_end)):
        if stripped.endswith(marker):
            head = stripped[: len(stripped) - len(marker)]
            tail = text[len(stripped):]
            out = list(tokenizer(head, add_special_tokens=False)["input_ids"]) + list(ids)
            return out + (list(tokenizer(tail, add_special_tokens=False)["input_ids"]) if tail else [])
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


# Sampler settings budget forcing cannot account for: it decides from temperature / top-k / top-p / min-p only,
# and these would be applied after its decision (or not at all).
_UNSUPPORTED_SAMPLING = ("typical_p", "epsilon_cutoff", "eta_cutoff", "top_h", "top_n_sigma", "mirostat_tau")


def check_sampling(do_sample: bool, temperature: Any, top_p: Any, top_k: Any, min_p: Any,
                   extra: Mapping[str, Any] | None = None) -> None:
    """Refuse sampler settings that would be clamped, ignored or applied after the budget decision.

    Greedy runs (`do_sample=False`) ignore the values, as `generate` does, but they must still be well-formed.
    """
    def number(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:  # NaN != NaN
            raise BudgetError(f"{name} must be a number, got {value!r}.")
        return float(value)

    t = number("temperature", temperature)
    if t < 0:
        raise BudgetError(f"temperature must be >= 0, got {temperature!r}; 0 (or do_sample=False) is greedy.")
    if do_sample and not t > 0:
        raise BudgetError(f"temperature must be > 0 when sampling, got {temperature!r}; use do_sample=False for greedy.")
    if not 0.0 < number("top_p", top_p) <= 1.0:
        raise BudgetError(f"top_p must be in (0, 1], got {top_p!r}.")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise BudgetError(f"top_k must be an int >= 0 (0: off, as vLLM's -1), got {top_k!r}.")
    if min_p is not None and not 0.0 <= number("min_p", min_p) <= 1.0:
        raise BudgetError(f"min_p must be in [0, 1], got {min_p!r}.")
    bad = sorted(k for k in (extra or {}) if k in _UNSUPPORTED_SAMPLING)
    if bad:
        raise BudgetError(f"budget forcing computes end probabilities with temperature / top_k / top_p / min_p only; "
                          f"remove {bad} or sample without budget forcing.")
