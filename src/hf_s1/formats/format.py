"""A think format (`ThinkFormat`): the marker strings around a model's thinking, as data, and their token ids for a
tokenizer (`format_tokens`)."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Union

from ..budget import BudgetError, MarkerTokens

__all__ = ["ThinkFormat", "END_OF_TURN_TEXTS", "format_tokens"]


@dataclass(frozen=True)
class ThinkFormat:
    """Where thinking starts and ends in a model's output.

    The assistant turn reads `think_start + after_start + thinking + before_end + think_end + after_end + answer`.

    Args:
        name: a short name (`"s1"`, `"r1"`, or your own).
        think_start: marker that opens thinking (`"<|im_start|>think"` for s1, `"<think>"` for R1/Qwen3).
        think_end: marker that closes thinking (`"<|im_start|>answer"` for s1, `"</think>"` for R1/Qwen3). An
            attempt to end thinking is the model emitting this marker's first token (or end-of-sequence).
        after_start: text written after `think_start` in training data.
        before_end: text the budget cut writes before `think_end` unless the thinking already ends with it.
        after_end: text the cut writes after `think_end`, before the answer prefix.
        stop_texts: the family's own end-of-sequence tokens beyond the tokenizer's `eos_token` (gpt-oss:
            `<|return|>`, `<|call|>`). End-of-turn tokens that occur inside a marker (gpt-oss's `<|end|>`) are never
            end-of-sequence tokens: they still close a turn when the prompt is read.
        switch: the chat-template keyword that turns thinking on and off (`"enable_thinking"` for Qwen3,
            `"thinking"` for DeepSeek-V3.1), or None. A prompt rendered with thinking off ends with a closed block;
            budget forcing never re-opens it.
        budget_kwarg: the chat-template keyword that takes a thinking budget in tokens (Seed-OSS:
            `"thinking_budget"`), or None. hf-s1 passes the row's `max_thinking_tokens` there unless the caller set
            it, so the template never announces a budget other than the one enforced.

    Examples:

    ```python
    >>> from hf_s1.formats import get_format
    >>> s1 = get_format("s1")
    >>> s1.cut_text("Final Answer:")
    '\\n<|im_start|>answer\\nFinal Answer:'
    >>> s1.assistant_text("2+3=5", "5")
    '<|im_start|>think\\n2+3=5\\n<|im_start|>answer\\n5'

    ```
    """

    name: str
    think_start: str
    think_end: str
    after_start: str = "\n"
    before_end: str = "\n"
    after_end: str = "\n"
    stop_texts: tuple[str, ...] = ()
    switch: Union[str, None] = None
    budget_kwarg: Union[str, None] = None

    def __post_init__(self) -> None:
        for name in ("name", "think_start", "think_end", "after_start", "before_end", "after_end"):
            if not isinstance(getattr(self, name), str):
                raise BudgetError(f"ThinkFormat.{name} must be a string, got {getattr(self, name)!r}.")
        stops = self.stop_texts
        if isinstance(stops, str) or not isinstance(stops, (list, tuple)) or not all(isinstance(t, str) and t for t in stops):
            raise BudgetError(f"ThinkFormat.stop_texts must be a list of non-empty strings, got {stops!r}.")
        object.__setattr__(self, "stop_texts", tuple(stops))  # a JSON list back to a hashable tuple
        for name in ("switch", "budget_kwarg"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value.isidentifier()):
                raise BudgetError(f"ThinkFormat.{name} must be a chat-template keyword name or None, got {value!r}.")
        if not self.think_start or not self.think_end:
            raise BudgetError("ThinkFormat needs non-empty think_start and think_end markers.")
        if self.think_start == self.think_end:
            raise BudgetError("think_start and think_end must differ.")
        if self.think_end in self.think_start or self.think_start in self.think_end:
            # e.g. end "<think" inside start "<think>": the start marker would also read as an end, and the
            # budget would be silently ignored.
            raise BudgetError(f"one think marker contains the other ({self.think_start!r}, {self.think_end!r}): "
                              f"thinking could never be told open from closed; pick markers where neither holds "
                              f"the other.")

    def cut_text(self, answer_prefix: str) -> str:
        """What the upper bound appends to a thinking that does not end with `before_end`."""
        return f"{self.before_end}{self.think_end}{self.after_end}{answer_prefix}"

    def assistant_text(self, thinking: str, answer: str) -> str:
        """The assistant turn as a trained model writes it (used by data formatting)."""
        return f"{self.think_start}{self.after_start}{thinking}{self.before_end}{self.think_end}{self.after_end}{answer}"

    def tokens(self, tokenizer: Any) -> MarkerTokens:
        """Token ids of the markers for `tokenizer` (cached per tokenizer)."""
        return format_tokens(tokenizer, self)

    def to_dict(self) -> dict[str, Any]:
        """The format as a JSON-ready mapping (`ThinkFormat(**d)` builds it back)."""
        d = dataclasses.asdict(self)
        d["stop_texts"] = list(self.stop_texts)
        return d


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))


def _encode_marker(tokenizer: Any, text: str, what: str, fmt: ThinkFormat) -> tuple[int, ...]:
    if not text:
        return ()
    ids = _encode(tokenizer, text)
    back = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if not ids or back != text:
        raise BudgetError(
            f"the {fmt.name!r} format's {what} {text!r} cannot be represented by this tokenizer "
            f"(it round-trips to {back!r}); pick a format whose markers the tokenizer knows, e.g. "
            f"think_format='r1', or pass a custom ThinkFormat."
        )
    return tuple(ids)


# End-of-turn tokens of common chat templates, as text: where the vocabulary has them, they end a turn, and (unless a
# format's marker holds them) they count as "the model wants to stop".
END_OF_TURN_TEXTS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|return|>",
                     "<|end_of_text|>", "<｜end▁of▁sentence｜>", "</s>")


def _turn_ids(tokenizer: Any, fmt: ThinkFormat) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(stop ids, turn-end ids): the end-of-sequence ids (the tokenizer's eos first, then the format's own and the
    end-of-turn tokens the vocabulary has), and every token that closes a turn (the stop ids plus end-of-turn tokens
    a marker holds, e.g. gpt-oss's `<|end|>`)."""
    ids: list[int] = []
    eos = getattr(tokenizer, "eos_token_id", None)
    for i in eos if isinstance(eos, (list, tuple)) else [eos]:
        if i is not None and int(i) not in ids:
            ids.append(int(i))
    vocab = tokenizer.get_vocab()
    in_markers = {t for marker in (fmt.think_start, fmt.think_end) for t in _encode(tokenizer, marker)}
    turns = list(ids)
    for tok in (*fmt.stop_texts, *END_OF_TURN_TEXTS):
        if tok in vocab and vocab[tok] not in turns:
            turns.append(int(vocab[tok]))
            if vocab[tok] not in in_markers:
                ids.append(int(vocab[tok]))
    ids = [i for i in ids if i not in in_markers] or ids
    if not ids:
        raise BudgetError("the tokenizer has no eos_token: set tokenizer.eos_token before budget forcing.")
    return tuple(ids), tuple(turns)


def _is_control_token(tokenizer: Any, token_id: int) -> bool:
    """Whether `token_id` is a token the vocabulary added whole (special or not, as Qwen3's `<think>`): ordinary text
    never produces it, so a marker that starts with it cannot be confused with text."""
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    return int(token_id) in added or int(token_id) in set(getattr(tokenizer, "all_special_ids", ()) or ())


@functools.lru_cache(maxsize=32)
def _vocab_texts(tokenizer: Any) -> tuple[str, ...]:
    return tuple(tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=False))


def _ends_with_table(tokenizer: Any, suffix: str) -> frozenset[int]:
    if not suffix:
        return frozenset()
    return frozenset(i for i, t in enumerate(_vocab_texts(tokenizer)) if t.endswith(suffix))


def _control_tokens(tokenizer: Any) -> dict[int, str]:
    """The chat-structure tokens: special tokens, and added tokens shaped as markup (`<think>`, `<tool_call>`,
    `[THINK]`). An added token of ordinary text (some vocabularies add whitespace runs or words) is not one."""
    tokens = {int(i): t for i, t in zip(getattr(tokenizer, "all_special_ids", ()) or (),
                                         getattr(tokenizer, "all_special_tokens", ()) or ())}
    for i, added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
        text = str(getattr(added, "content", added))
        markup = len(text) > 2 and text[0] + text[-1] in ("<>", "[]")
        if getattr(added, "special", False) or markup:
            tokens[int(i)] = text
    return tokens


def _space_ids(tokenizer: Any) -> frozenset[int]:
    return frozenset(i for i, t in enumerate(_vocab_texts(tokenizer)) if t and not t.strip())


@functools.lru_cache(maxsize=32)  # tokenizers hash by identity; the vocabulary scan runs once per pair
def format_tokens(tokenizer: Any, fmt: ThinkFormat) -> MarkerTokens:
    """Token ids of `fmt`'s markers for `tokenizer`; a `BudgetError` when the tokenizer cannot write them."""
    stops, turns = _turn_ids(tokenizer, fmt)
    end = _encode_marker(tokenizer, fmt.think_end, "think_end", fmt)
    return MarkerTokens(
        end_is_text=len(end) > 1 and not _is_control_token(tokenizer, end[0]),
        think_start=_encode_marker(tokenizer, fmt.think_start, "think_start", fmt),
        think_end=end,
        before_end=_encode_marker(tokenizer, fmt.before_end, "before_end", fmt),
        after_end=_encode_marker(tokenizer, fmt.after_end, "after_end", fmt),
        stop_ids=stops,
        turn_ends=turns,
        ends_with_before_end=_ends_with_table(tokenizer, fmt.before_end),
        space_ids=_space_ids(tokenizer),
        control_tokens=_control_tokens(tokenizer),
        encode=functools.partial(_encode, tokenizer),
    )
