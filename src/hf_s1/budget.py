"""Budget forcing, framework-free: the policy (`ThinkingBudget`) and the per-sequence state machine
(`BudgetTracker`) that every engine adapter drives.

Every rule about thinking budgets lives in this module, once. An adapter only

1. feeds the tracker each token appended to its sequence (`BudgetTracker.observe`),
2. asks what the next token may be (`BudgetTracker.next_action`), and
3. turns the answer into a logits mask. For an `Intercept` it decides whether the model *attempts*
   one of the intercepted tokens (greedy: it is the arg-max; sampling: a uniform draw falls below
   their probability) and then either calls `BudgetTracker.intercept` and forces the returned token,
   or bans the intercepted tokens.

No torch, no transformers, no vLLM here: token ids in, decisions out.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Union

__all__ = [
    "BudgetError",
    "BudgetLike",
    "ThinkingBudget",
    "TokenKind",
    "MarkerTokens",
    "Free",
    "Force",
    "Intercept",
    "Action",
    "BudgetStats",
    "BudgetTracker",
]


class BudgetError(ValueError):
    """A thinking budget, a think format or a request that cannot be honoured. The message names the fix."""


def _check_count(name: str, value: Any, *, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    # bool is an int subclass; True as a budget is almost certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise BudgetError(f"{name} must be a non-negative int{' or None' if allow_none else ''}, got {value!r}.")
    if value < 0:
        raise BudgetError(f"{name} must be >= 0, got {value}.")


@dataclass(frozen=True)
class ThinkingBudget:
    """How long a model may think, as in s1 budget forcing (arXiv 2501.19393).

    Thinking tokens are every token generated after the think-start marker and before the end marker,
    injected extrapolation tokens included; markers and the answer prefix are not counted.

    Args:
        max_thinking_tokens (`int`, *optional*):
            Upper bound. When the thinking reaches it, the end-of-thinking marker and `answer_prefix` are
            forced. `0` answers at once. `None` sets no upper bound.
        min_thinking_tokens (`int`, defaults to 0):
            Lower bound. Until it is reached, every attempt to end thinking is replaced by the extrapolation
            string.
        num_waits (`int`, defaults to 0):
            Replace the first `num_waits` attempts to end thinking by the extrapolation string (s1's
            "ignore the end N times").
        extrapolation (`str` or `Sequence[str]`, defaults to `"Wait"`):
            What is appended when an end is suppressed. A sequence rotates: the i-th injection uses
            `extrapolation[i % len(extrapolation)]`.
        answer_prefix (`str`, defaults to `"Final Answer:"`):
            Written after the end marker when the upper bound cuts the thinking. May be empty.
        max_answer_tokens (`int`, *optional*):
            Cap on the tokens generated after thinking; the end-of-sequence token is forced there.

    Examples:

    ```python
    >>> from hf_s1 import ThinkingBudget
    >>> budget = ThinkingBudget(max_thinking_tokens=256, min_thinking_tokens=64, num_waits=2)
    >>> budget.extrapolation
    ('Wait',)
    >>> ThinkingBudget.from_dict(budget.to_dict()) == budget
    True
    >>> ThinkingBudget(max_thinking_tokens=10, min_thinking_tokens=20)
    Traceback (most recent call last):
    ...
    hf_s1.budget.BudgetError: min_thinking_tokens (20) is above max_thinking_tokens (10): lower the minimum or raise the maximum.

    ```
    """

    max_thinking_tokens: int | None = None
    min_thinking_tokens: int = 0
    num_waits: int = 0
    extrapolation: Union[str, Sequence[str]] = "Wait"
    answer_prefix: str = "Final Answer:"
    max_answer_tokens: int | None = None

    def __post_init__(self) -> None:
        _check_count("max_thinking_tokens", self.max_thinking_tokens, allow_none=True)
        _check_count("min_thinking_tokens", self.min_thinking_tokens, allow_none=False)
        _check_count("num_waits", self.num_waits, allow_none=False)
        _check_count("max_answer_tokens", self.max_answer_tokens, allow_none=True)
        if self.max_thinking_tokens is not None and self.min_thinking_tokens > self.max_thinking_tokens:
            raise BudgetError(
                f"min_thinking_tokens ({self.min_thinking_tokens}) is above max_thinking_tokens "
                f"({self.max_thinking_tokens}): lower the minimum or raise the maximum."
            )
        if isinstance(self.extrapolation, str):
            strings = (self.extrapolation,)
        elif isinstance(self.extrapolation, (list, tuple)):  # a set or dict has no order to rotate in
            strings = tuple(self.extrapolation)
        else:
            raise BudgetError(f"extrapolation must be a string or a list of strings, got "
                              f"{type(self.extrapolation).__name__} {self.extrapolation!r}.")
        if not strings or any(not isinstance(s, str) or s == "" for s in strings):
            raise BudgetError(
                f"extrapolation must be a non-empty string or a non-empty list of non-empty strings, got "
                f"{self.extrapolation!r}; to extend thinking without text, there is nothing to append: "
                f"use num_waits=0 and min_thinking_tokens=0."
            )
        if not isinstance(self.answer_prefix, str):
            raise BudgetError(f"answer_prefix must be a string (may be empty), got {self.answer_prefix!r}.")
        object.__setattr__(self, "extrapolation", strings)

    def must_extend(self, thinking_tokens: int, waits: int) -> bool:
        """Whether an attempt to end thinking, after `thinking_tokens` and `waits` injections, is suppressed."""
        return waits < self.num_waits or thinking_tokens < self.min_thinking_tokens

    def check_extrapolation_text(self, ending: Iterable[str]) -> None:
        """Refuse an extrapolation that holds, as text, one of the `ending` strings (the end-of-thinking marker,
        end-of-turn tokens): it would end the thinking it is meant to extend. The same rule as
        `MarkerTokens.encode_budget_string`, for callers without a tokenizer (a server's front end)."""
        for text in self.extrapolation:
            for marker in ending:
                if marker and marker in text:
                    raise BudgetError(f"extrapolation {text!r} contains {marker!r}: it would end the thinking it "
                                      f"is meant to extend; remove it from the string.")

    def extrapolation_at(self, waits: int) -> str:
        """The string injected by the `waits`-th suppression (the list rotates)."""
        return self.extrapolation[waits % len(self.extrapolation)]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["extrapolation"] = list(self.extrapolation)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ThinkingBudget:
        """Build from a plain mapping (JSON, request extra args); unknown keys are an error, not ignored."""
        if isinstance(data, ThinkingBudget):
            return data
        if not isinstance(data, Mapping):
            raise BudgetError(f"a thinking budget must be a mapping of its fields, got {type(data).__name__}.")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise BudgetError(f"unknown thinking-budget field(s) {unknown}; valid fields are {sorted(known)}.")
        return cls(**dict(data))


class TokenKind(str, enum.Enum):
    """What a generated token is, as the tracker saw it."""

    MARKER = "marker"  # think-start / think-end marker tokens (model-written or completed)
    THINKING = "thinking"  # written by the model while thinking
    EXTRAPOLATION = "extrapolation"  # injected when an end of thinking was suppressed ("Wait")
    CUT = "cut"  # forced by the upper bound: newline, end marker, answer prefix
    ANSWER = "answer"  # written by the model after thinking
    STOP = "stop"  # the end-of-sequence token that finished the row
    AFTER_STOP = "after_stop"  # padding an engine appends to a finished row


@dataclass(frozen=True)
class MarkerTokens:
    """The token-level view of a think format, built by `hf_s1.formats.ThinkFormat.tokens`.

    Args:
        think_start: ids of the think-start marker.
        think_end: ids of the end-of-thinking marker.
        before_end: ids the cut writes before `think_end` unless the text already ends with them.
        after_end: ids the cut writes after `think_end`, before the answer prefix.
        stop_ids: end-of-sequence / end-of-turn ids; the first is the one forced to end an answer.
        ends_with_before_end: ids whose text already ends with `before_end` (so the cut skips it).
        encode: text -> ids without special tokens, for the budget's own strings.
    """

    think_start: tuple[int, ...]
    think_end: tuple[int, ...]
    before_end: tuple[int, ...]
    after_end: tuple[int, ...]
    stop_ids: tuple[int, ...]
    ends_with_before_end: frozenset[int]
    encode: Callable[[str], Sequence[int]] = field(repr=False, compare=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop_set", frozenset(self.stop_ids))
        if not self.think_start or not self.think_end:
            raise BudgetError("think markers must be non-empty token sequences.")
        if not self.stop_ids:
            raise BudgetError("no end-of-sequence id: set tokenizer.eos_token_id (or generation_config.eos_token_id).")
        for name in ("think_start", "think_end", "before_end", "after_end"):
            if self.stop_set & set(getattr(self, name)):
                raise BudgetError(f"the {name} marker contains an end-of-sequence token; pick another marker.")
        if _find(self.think_start, self.think_end) >= 0 or _find(self.think_end, self.think_start) >= 0:
            raise BudgetError("one think marker contains the other (as tokens), so thinking could never be told "
                              "open from closed: pick markers where neither holds the other.")

    def cut_ids(self, last_token: int | None, answer_prefix: Sequence[int]) -> list[int]:
        """The forced cut: `before_end` unless the text already ends with it, end marker, `after_end`, prefix."""
        ids: list[int] = []
        if self.before_end and last_token not in self.ends_with_before_end:
            ids += self.before_end
        return [*ids, *self.think_end, *self.after_end, *answer_prefix]

    def encode_budget_string(self, text: str, what: str) -> tuple[int, ...]:
        """Tokenize an extrapolation string or answer prefix once; refuse ones that would end the row."""
        key = (text, what)
        if key not in self._cache:
            ids = tuple(int(i) for i in self.encode(text)) if text else ()
            if text and not ids:
                raise BudgetError(f"{what} {text!r} encodes to no tokens with this tokenizer; use another string.")
            if self.stop_set & set(ids):
                raise BudgetError(f"{what} {text!r} contains an end-of-sequence token; it would end generation.")
            if what == "extrapolation" and ids and ids[0] == self.think_end[0]:
                raise BudgetError(f"extrapolation {text!r} starts with the end-of-thinking marker's first token.")
            if what == "extrapolation" and _find(ids, self.think_end) >= 0:
                # It would end thinking inside the injection, below the minimum. (A start marker inside one is
                # plain thinking text: thinking has begun already, so it neither restarts nor nests.)
                raise BudgetError(f"extrapolation {text!r} contains the end-of-thinking marker: it would end the "
                                  f"thinking it is meant to extend; remove the marker from the string.")
            self._cache[key] = ids
        return self._cache[key]


# ---- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Free:
    """No constraint on the next token."""


@dataclass(frozen=True)
class Force:
    """The next token must be `token_id`."""

    token_id: int


@dataclass(frozen=True)
class Intercept:
    """If the model would emit one of `token_ids`, call `BudgetTracker.intercept()` and force the id it
    returns; otherwise ban `token_ids`. Together: "sample, then replace an intercepted token"."""

    token_ids: frozenset[int]


Action = Union[Free, Force, Intercept]

# What the engines accept as a budget: one policy (or its dict) for every prompt, or one per prompt.
BudgetLike = Union[ThinkingBudget, Mapping[str, Any], Sequence[Union[ThinkingBudget, Mapping[str, Any]]]]
FREE = Free()


@dataclass
class BudgetStats:
    """Telemetry of one generated sequence."""

    thinking_tokens: int = 0
    answer_tokens: int = 0
    waits: int = 0
    capped: bool = False
    finished: bool = False  # ended with an end-of-sequence token (else: stopped by a length limit)
    thinking_started: bool = False
    thinking_ended: bool = False
    # generated-token index ranges (start, end), end exclusive; None where the phase never began
    thinking_span: tuple[int, int] | None = None
    answer_span: tuple[int, int] | None = None


class _Phase(enum.Enum):
    BEFORE = 0  # thinking not started yet: the start marker is being forced
    THINKING = 1
    ANSWER = 2
    DONE = 3


class BudgetTracker:
    """Per-sequence budget-forcing state machine.

    Args:
        budget: the policy for this sequence.
        markers: the token ids of the think format.

    Use: `start(prompt_ids)` once, then for every step `next_action()` (and `intercept()` when the adapter
    judges the model attempted an intercepted token), and `observe(token)` for every token appended.

    Examples:

    ```python
    >>> from hf_s1.budget import BudgetTracker, MarkerTokens, ThinkingBudget, Force, Intercept
    >>> vocab = {"<s>": 1, "think": 2, "answer": 3, "\\n": 4, "Wait": 5, "A:": 6, "x": 7}
    >>> markers = MarkerTokens(think_start=(1, 2), think_end=(1, 3), before_end=(4,), after_end=(4,),
    ...     stop_ids=(0,), ends_with_before_end=frozenset({4}), encode=lambda s: [vocab[s]])
    >>> t = BudgetTracker(ThinkingBudget(max_thinking_tokens=2, num_waits=1, answer_prefix="A:"), markers)
    >>> t.start([9, 1, 2])                 # the prompt ends with the think-start marker
    >>> t.next_action()                    # an end now would be suppressed
    Intercept(token_ids=frozenset({0, 1}))
    >>> t.intercept()                      # the model tried to end: inject "Wait"
    5
    >>> _ = t.observe(5), t.observe(7)     # "Wait", then the model writes "x": 2 thinking tokens
    >>> t.next_action()                    # the budget is spent: the cut begins with "\\n"
    Force(token_id=4)
    >>> for tok in (4, 1, 3, 4, 6): _ = t.observe(tok)   # the cut: "\\n" <s> answer "\\n" "A:"
    >>> t.stats.thinking_tokens, t.stats.waits, t.stats.capped
    (2, 1, True)

    ```
    """

    def __init__(self, budget: ThinkingBudget, markers: MarkerTokens) -> None:
        self.budget = budget
        self.markers = markers
        for text in budget.extrapolation:  # validate (and cache) every string up front
            markers.encode_budget_string(text, "extrapolation")
        self._answer_prefix = markers.encode_budget_string(budget.answer_prefix, "answer_prefix")
        self._tail_len = max(len(markers.think_start), len(markers.think_end))
        self.reset()

    # -- lifecycle -------------------------------------------------------------------------------

    def reset(self) -> None:
        self.stats = BudgetStats()
        self.kinds: list[TokenKind] = []  # one per generated token
        self._phase = _Phase.BEFORE
        self._queue: deque[tuple[int, TokenKind]] = deque()
        self._tail: deque[int] = deque(maxlen=self._tail_len)
        self._last_token: int | None = None
        self._started = False

    @property
    def num_generated(self) -> int:
        return len(self.kinds)

    @property
    def last_token(self) -> int | None:
        """The last token seen, prompt included."""
        return self._last_token

    @property
    def done(self) -> bool:
        return self._phase is _Phase.DONE

    def start(self, prompt_ids: Iterable[int]) -> None:
        """Read the prompt: thinking has begun if it holds a start marker with no end marker after it."""
        if self._started:
            raise RuntimeError("BudgetTracker.start() called twice; call reset() first.")
        self._started = True
        prompt = [int(t) for t in prompt_ids]
        self._tail.extend(prompt[-self._tail_len :])
        self._last_token = prompt[-1] if prompt else None
        start_at = _rfind(prompt, self.markers.think_start)
        if start_at >= 0 and _rfind(prompt, self.markers.think_end, start_at) < 0:
            self._begin_thinking()
            return
        # Otherwise write the start marker ourselves, completing it if the prompt ends half-way into it.
        done = _overlap(prompt, self.markers.think_start)
        self._queue.extend((t, TokenKind.MARKER) for t in self.markers.think_start[done:])

    # -- decisions -------------------------------------------------------------------------------

    def next_action(self) -> Action:
        """What the next token may be."""
        if not self._started:
            raise RuntimeError("call BudgetTracker.start(prompt_ids) before next_action().")
        phase = self._phase
        if phase is _Phase.THINKING:
            cap = self.budget.max_thinking_tokens
            if cap is not None and self.stats.thinking_tokens >= cap and not self._marker_queued():
                self._cut()
            elif not self._queue:
                if self._must_extend():
                    return Intercept(self.markers.stop_set | {self.markers.think_end[0]})
                # Ending is allowed; an end-of-sequence token is turned into the end marker so the answer
                # phase always follows the thinking.
                return Intercept(self.markers.stop_set)
        elif phase is _Phase.ANSWER and not self._queue:
            cap = self.budget.max_answer_tokens
            if cap is not None and self.stats.answer_tokens >= cap:
                return Force(self.markers.stop_ids[0])
            return FREE
        elif phase is _Phase.DONE:
            return FREE
        elif phase is _Phase.BEFORE and not self._queue:
            # A forced start marker was overridden downstream: write it again.
            self._queue.extend((t, TokenKind.MARKER) for t in self.markers.think_start)
        return Force(self._queue[0][0]) if self._queue else FREE

    def intercept(self) -> int:
        """The model attempted an intercepted token: queue its replacement and return the id to force."""
        if self._phase is not _Phase.THINKING or self._queue:
            raise RuntimeError("intercept() is only valid right after next_action() returned an Intercept.")
        ids, kind = self._replacement()
        if kind is TokenKind.EXTRAPOLATION:
            self.stats.waits += 1
        self._queue.extend((t, kind) for t in ids)
        return self._queue[0][0]

    def _replacement(self) -> tuple[tuple[int, ...], TokenKind]:
        """What an intercepted token is replaced by: an extrapolation while thinking must go on, else the
        end marker (an end-of-sequence token while ending is allowed)."""
        if self._must_extend():
            text = self.budget.extrapolation_at(self.stats.waits)
            return self.markers.encode_budget_string(text, "extrapolation"), TokenKind.EXTRAPOLATION
        return self.markers.think_end, TokenKind.MARKER

    def replay(self, token_ids: Iterable[int], injected: Container[int] | None = None) -> None:
        """Catch up with tokens generated while no adapter drove this tracker (a resumed request, a
        multi-call loop, telemetry rebuilt from output ids): decisions are re-run.

        Whether an intercepted end was replaced is known exactly when `injected` holds the generated
        positions where an extrapolation was injected (an engine's log). Otherwise it is inferred: a token
        equal to what an intercept would force is taken as forced (a model that wrote that very token itself,
        at a point where an end would have been extended, is then counted as one more wait)."""
        for token in token_ids:
            action = self.next_action()
            if isinstance(action, Intercept):
                if injected is not None and self._must_extend():
                    attempted = self.num_generated in injected
                else:
                    attempted = token not in action.token_ids and token == self._replacement()[0][0]
                if attempted:
                    self.intercept()
            self.observe(token)

    # -- observation -----------------------------------------------------------------------------

    def observe(self, token_id: int) -> TokenKind:
        """Record a token appended to the sequence; returns what it was."""
        token_id = int(token_id)
        index = len(self.kinds)
        kind = self._classify(token_id)
        self.kinds.append(kind)
        self._tail.append(token_id)
        self._last_token = token_id
        st = self.stats
        if kind in (TokenKind.THINKING, TokenKind.EXTRAPOLATION):
            st.thinking_tokens += 1
        elif kind is TokenKind.ANSWER:
            st.answer_tokens += 1
        if self._phase is _Phase.BEFORE and self._ends_with(self.markers.think_start):
            self._begin_thinking(index + 1)
        elif self._phase is _Phase.THINKING and self._ends_with(self.markers.think_end):
            self._phase = _Phase.ANSWER
            st.thinking_ended = True
            first = index + 1 - len(self.markers.think_end)
            # The cut's leading newline belongs to neither the thinking nor the marker.
            while first > 0 and self.kinds[first - 1] is TokenKind.CUT:
                first -= 1
            st.thinking_span = (st.thinking_span[0], max(first, st.thinking_span[0]))
            st.answer_span = (index + 1, index + 1)
        if st.answer_span is not None and kind in (TokenKind.ANSWER, TokenKind.CUT):
            st.answer_span = (st.answer_span[0], index + 1)
        if kind is TokenKind.STOP:
            self._phase = _Phase.DONE
            st.finished = True
            self._queue.clear()
        return kind

    def _classify(self, token_id: int) -> TokenKind:
        if self._phase is _Phase.DONE:
            return TokenKind.AFTER_STOP
        if self._queue:
            expected, kind = self._queue[0]
            if token_id == expected:
                self._queue.popleft()
                return kind
            # Something downstream overrode a forced token (another processor, a length limit's EOS):
            # drop the rest of the forced run and take the token as the model's own.
            self._queue.clear()
        if token_id in self.markers.stop_set:
            return TokenKind.STOP
        if self._phase is _Phase.THINKING:
            if token_id == self.markers.think_end[0]:
                # The model starts the end marker: complete it rather than leave it half-written.
                self._queue.extend((t, TokenKind.MARKER) for t in self.markers.think_end[1:])
                return TokenKind.MARKER
            return TokenKind.THINKING
        if self._phase is _Phase.ANSWER:
            return TokenKind.ANSWER
        return TokenKind.MARKER  # BEFORE: only reached by an overridden start marker

    # -- rules -----------------------------------------------------------------------------------

    def _must_extend(self) -> bool:
        return self.budget.must_extend(self.stats.thinking_tokens, self.stats.waits)

    def _marker_queued(self) -> bool:
        return bool(self._queue) and self._queue[0][1] in (TokenKind.MARKER, TokenKind.CUT)

    def _cut(self) -> None:
        """Upper bound reached: drop any pending extrapolation and force newline + end marker + prefix."""
        self._queue.clear()
        ids = self.markers.cut_ids(self._last_token, self._answer_prefix)
        self._queue.extend((t, TokenKind.CUT) for t in ids)
        self.stats.capped = True

    def _begin_thinking(self, at: int = 0) -> None:
        self._phase = _Phase.THINKING
        self.stats.thinking_started = True
        self.stats.thinking_span = (at, at)

    def _ends_with(self, marker: tuple[int, ...]) -> bool:
        n = len(marker)
        return len(self._tail) >= n and tuple(self._tail)[-n:] == marker

    # -- conveniences for adapters ---------------------------------------------------------------

    def finish(self, generated_ids: Sequence[int]) -> BudgetStats:
        """Observe whatever of `generated_ids` the engine produced after its last processor call (the
        final token is sampled after the last call) and return the stats. Thinking span is closed at the
        end of the sequence when thinking never ended."""
        for tok in list(generated_ids)[self.num_generated :]:
            self.observe(tok)
        st = self.stats
        if st.thinking_started and not st.thinking_ended:
            end = len(self.kinds)
            while end > st.thinking_span[0] and self.kinds[end - 1] in (TokenKind.STOP, TokenKind.AFTER_STOP,
                                                                        TokenKind.CUT, TokenKind.MARKER):
                end -= 1
            st.thinking_span = (st.thinking_span[0], end)
        return st


def _rfind(seq: Sequence[int], sub: Sequence[int], start: int = 0) -> int:
    """Index of the last occurrence of `sub` in `seq[start:]`, or -1."""
    n = len(sub)
    for i in range(len(seq) - n, start - 1, -1):
        if tuple(seq[i : i + n]) == tuple(sub):
            return i
    return -1


def _find(seq: Sequence[int], sub: Sequence[int]) -> int:
    """Index of the first occurrence of `sub` in `seq`, or -1."""
    n = len(sub)
    for i in range(len(seq) - n + 1):
        if tuple(seq[i : i + n]) == tuple(sub):
            return i
    return -1


def _overlap(seq: Sequence[int], marker: Sequence[int]) -> int:
    """Length of the longest proper prefix of `marker` that `seq` ends with."""
    for k in range(min(len(marker) - 1, len(seq)), 0, -1):
        if tuple(seq[-k:]) == tuple(marker[:k]):
            return k
    return 0
