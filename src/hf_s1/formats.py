"""Think formats: the marker strings around a model's thinking, and their token ids for a tokenizer."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Union

from .budget import BudgetError, MarkerTokens

__all__ = ["ThinkFormat", "S1_FORMAT", "R1_FORMAT", "FORMATS", "get_format", "detect_format", "marker_tokens"]


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

    def __post_init__(self) -> None:
        for name in ("think_start", "think_end", "after_start", "before_end", "after_end"):
            if not isinstance(getattr(self, name), str):
                raise BudgetError(f"ThinkFormat.{name} must be a string, got {getattr(self, name)!r}.")
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
        return marker_tokens(tokenizer, self)


S1_FORMAT = ThinkFormat("s1", "<|im_start|>think", "<|im_start|>answer", "\n", "\n", "\n")
R1_FORMAT = ThinkFormat("r1", "<think>", "</think>", "\n", "\n", "\n\n")
FORMATS = {"s1": S1_FORMAT, "r1": R1_FORMAT, "qwen3": R1_FORMAT}


def get_format(fmt: Union[str, ThinkFormat, None], tokenizer: Any = None) -> ThinkFormat:
    """A preset by name, a `ThinkFormat` as is, or (None) the format detected from `tokenizer`."""
    if isinstance(fmt, ThinkFormat):
        return fmt
    if fmt is None:
        if tokenizer is None:
            return S1_FORMAT
        return detect_format(tokenizer)
    try:
        return FORMATS[fmt.lower()]
    except (KeyError, AttributeError):
        raise BudgetError(f"unknown think format {fmt!r}; use one of {sorted(FORMATS)} or a ThinkFormat.") from None


def detect_format(tokenizer: Any) -> ThinkFormat:
    """R1/Qwen3 when the chat template mentions `<think>`, s1 when it mentions `<|im_start|>think` or is
    plain ChatML, else R1 (its markers are plain text any tokenizer can write)."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if not isinstance(template, str):  # a dict of named templates
        template = " ".join(str(t) for t in dict(template).values())
    if "<|im_start|>think" in template:
        return S1_FORMAT
    if "<think>" in template:
        return R1_FORMAT
    if "<|im_start|>" in template or "<|im_start|>" in getattr(tokenizer, "all_special_tokens", ()):
        return S1_FORMAT
    return R1_FORMAT


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


# End-of-turn tokens of common chat templates, as text: they count as "the model wants to stop" when they exist.
END_OF_TURN_TEXTS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>")


def _stop_ids(tokenizer: Any) -> tuple[int, ...]:
    ids: list[int] = []
    eos = getattr(tokenizer, "eos_token_id", None)
    for i in eos if isinstance(eos, (list, tuple)) else [eos]:
        if i is not None and i not in ids:
            ids.append(int(i))
    vocab = tokenizer.get_vocab()
    for tok in END_OF_TURN_TEXTS:
        if tok in vocab and vocab[tok] not in ids:
            ids.append(int(vocab[tok]))
    if not ids:
        raise BudgetError("the tokenizer has no eos_token: set tokenizer.eos_token before budget forcing.")
    return tuple(ids)


@functools.lru_cache(maxsize=32)
def _ends_with_table(tokenizer: Any, suffix: str) -> frozenset[int]:
    if not suffix:
        return frozenset()
    size = len(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(size)], skip_special_tokens=False)
    return frozenset(i for i, t in enumerate(texts) if t.endswith(suffix))


def marker_tokens(tokenizer: Any, fmt: Union[str, ThinkFormat, None] = None) -> MarkerTokens:
    """Token ids of `fmt`'s markers for `tokenizer`; a `BudgetError` when the tokenizer cannot write them."""
    return _marker_tokens(tokenizer, get_format(fmt, tokenizer))


@functools.lru_cache(maxsize=32)  # tokenizers hash by identity; the vocabulary scan runs once per pair
def _marker_tokens(tokenizer: Any, fmt: ThinkFormat) -> MarkerTokens:
    return MarkerTokens(
        think_start=_encode_marker(tokenizer, fmt.think_start, "think_start", fmt),
        think_end=_encode_marker(tokenizer, fmt.think_end, "think_end", fmt),
        before_end=_encode_marker(tokenizer, fmt.before_end, "before_end", fmt),
        after_end=_encode_marker(tokenizer, fmt.after_end, "after_end", fmt),
        stop_ids=_stop_ids(tokenizer),
        ends_with_before_end=_ends_with_table(tokenizer, fmt.before_end),
        encode=functools.partial(_encode, tokenizer),
    )
