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
import re
from collections import deque
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Union

from .errors import BudgetError

__all__ = [
    "AUTO",
    "PROFILES",
    "BudgetError",
    "BudgetLike",
    "as_budgets",
    "validate",
    "describe_budget",
    "ThinkingBudget",
    "TokenKind",
    "MarkerTokens",
    "Free",
    "Force",
    "Intercept",
    "Ban",
    "Action",
    "BudgetStats",
    "BudgetTracker",
    "PromptState",
    "read_prompt",
    "DEFAULT_ALLOWANCE",
    "generation_allowance",
    "answer_allowance",
    "close_answer",
    "s1_answer_cut",
    "token_allowance",
]

AUTO = "auto"
# The rule sets a budget can follow: hf-s1's own (the default) and s1's evaluation code, for reproducing its numbers.
PROFILES = ("hf-s1", "s1")
# s1's generation allowance (`max_gen_toks` in its evaluation commands), used when neither the caller nor the
# model's context says otherwise.
DEFAULT_ALLOWANCE = 32768
# "auto" leaves this many tokens of the allowance for the answer, as s1's evaluation does.
AUTO_ANSWER_MARGIN = 100


# Text shaped as a chat-structure token in most templates: `<|...|>`, and DeepSeek's full-width `<｜...｜>`.
CHAT_TOKEN_TEXT = re.compile(r"<\|[^<>|\s]{1,40}\|>|<｜[^<>｜]{1,40}｜>")

# The largest count a budget may hold: more tokens than any context, and within what every engine's tables (and
# vLLM's int64 sampling fields) hold, so one request's count can never overflow a table shared with others.
MAX_COUNT = 2**31 - 1


def _check_count(name: str, value: Any, *, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    # bool is an int subclass; True as a budget is almost certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise BudgetError(f"{name} must be a non-negative int{' or None' if allow_none else ''}, got {value!r}.")
    if value < 0:
        raise BudgetError(f"{name} must be >= 0, got {value}.")
    if value > MAX_COUNT:
        fix = "use None for no limit" if allow_none else "use a smaller number"
        raise BudgetError(f"{name}={value} is more than any context holds (at most {MAX_COUNT}): {fix}.")


@dataclass(frozen=True)
class ThinkingBudget:
    """How long a model may think, as in s1 budget forcing (arXiv 2501.19393).

    Thinking tokens are every token generated after the think-start marker and before the end marker,
    injected extrapolation tokens included; markers and the answer prefix are not counted. Every count is an int
    from 0 to `MAX_COUNT` (2**31 - 1, more than any context); a larger one is refused (`None` sets no limit).

    Args:
        max_thinking_tokens (`int` or `"auto"`, *optional*):
            Upper bound. When the thinking reaches it, the end-of-thinking marker and `answer_prefix` are
            forced. `0` answers at once. `None` sets no upper bound. `"auto"` (s1's evaluation setting) is what
            the generation allowance leaves after the longest prompt of the call, the think-start marker, the
            end marker plus the answer prefix, and 100 tokens for the answer; engines resolve it per call
            (`resolve`).
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
            Cap on the tokens generated after thinking; the end-of-sequence token is forced there. By default
            the answer may use the whole generation allowance, as in s1 (see `token_allowance`).
        profile (`str`, defaults to `"hf-s1"`):
            Which rules drive the budget. `"hf-s1"`: the rules above. `"s1"`: s1's evaluation code, to reproduce
            its published numbers token for token on greedy runs: thinking runs in rounds that end on an end
            token (the end marker's first token, end-of-turn, end-of-sequence); when `num_waits > 0` every round
            writes at least one token before it may end; each round may write up to `max_thinking_tokens`
            tokens, and the joined thinking is then cut to `max_thinking_tokens`; the cut writes the newline,
            end marker and answer prefix when the last round hit its length limit, and only the end marker when
            it ended by itself. No `min_thinking_tokens` (s1's evaluation has no Wait-based minimum).

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
    hf_s1.errors.BudgetError: min_thinking_tokens (20) is above max_thinking_tokens (10): lower the minimum or raise the maximum.

    ```
    """

    max_thinking_tokens: Union[int, None, Literal["auto"]] = None
    min_thinking_tokens: int = 0
    num_waits: int = 0
    extrapolation: Union[str, Sequence[str]] = "Wait"
    answer_prefix: str = "Final Answer:"
    max_answer_tokens: int | None = None
    profile: Literal["hf-s1", "s1"] = "hf-s1"

    def __post_init__(self) -> None:
        if self.max_thinking_tokens != AUTO:
            _check_count("max_thinking_tokens", self.max_thinking_tokens, allow_none=True)
        _check_count("min_thinking_tokens", self.min_thinking_tokens, allow_none=False)
        _check_count("num_waits", self.num_waits, allow_none=False)
        _check_count("max_answer_tokens", self.max_answer_tokens, allow_none=True)
        if self.profile not in PROFILES:
            raise BudgetError(f"profile must be one of {list(PROFILES)}, got {self.profile!r}.")
        if self.profile == "s1" and self.min_thinking_tokens:
            raise BudgetError("the s1 profile has no min_thinking_tokens (s1's evaluation extends thinking only by "
                              "num_waits): set min_thinking_tokens=0, or use profile='hf-s1'.")
        if isinstance(self.max_thinking_tokens, int) and self.min_thinking_tokens > self.max_thinking_tokens:
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

    @property
    def is_auto(self) -> bool:
        return self.max_thinking_tokens == AUTO

    def resolve(self, markers: MarkerTokens, *, allowance: int, longest_prompt: int) -> ThinkingBudget:
        """This budget with `"auto"` replaced by the cap it stands for in a call whose generation allowance is
        `allowance` and whose longest prompt has `longest_prompt` tokens (s1's rule). Other budgets are returned
        as they are."""
        if not self.is_auto:
            return self
        prefix = markers.encode_budget_string(self.answer_prefix, "answer_prefix")
        end = len(markers.think_end) + len(markers.after_end) + len(prefix)
        cap = allowance - longest_prompt - len(markers.think_start) - end - AUTO_ANSWER_MARGIN
        if cap < 1:
            raise BudgetError(
                f'max_thinking_tokens="auto" leaves no thinking: the allowance ({allowance}) minus the longest '
                f"prompt ({longest_prompt}), the markers ({len(markers.think_start) + end}) and "
                f"{AUTO_ANSWER_MARGIN} answer tokens is {cap}; raise max_new_tokens or give a number.")
        return replace(self, max_thinking_tokens=cap)

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

    def check_chat_structure_text(self) -> None:
        """Refuse an extrapolation or answer prefix holding text shaped as a chat-structure token (`<|im_start|>`,
        `<|channel|>`, DeepSeek's `<｜User｜>`): the rule `MarkerTokens.encode_budget_string` applies with the
        tokenizer's own control tokens, for callers without a tokenizer (a server's front end)."""
        for what, texts in (("extrapolation", self.extrapolation), ("answer_prefix", (self.answer_prefix,))):
            for text in texts:
                found = CHAT_TOKEN_TEXT.search(text)
                if found:
                    raise BudgetError(f"{what} {text!r} holds the chat-structure token {found.group()!r}: it would "
                                      f"forge a turn or a marker inside the output; remove it from the string.")

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
        if type(data).__qualname__ == "ThinkingBudget" and hasattr(data, "to_dict"):
            data = data.to_dict()  # the class of a reloaded module (autoreload, doctest collection): same fields
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
        turn_ends: ids that close a chat turn when the prompt is read (`BudgetTracker.start`): the stop ids and
            end-of-turn tokens a marker holds. Default: the stop ids.
        end_is_text: the end marker is several ordinary pieces of text (OLMo 3's `</think>` is `</` `think` `>`,
            as is R1's on a tokenizer without a `</think>` token), so its first piece also starts ordinary text
            (`</div>`). Then an attempt to end is the model about to write the marker's last piece after the others,
            a marker the model begins is not completed for it, and the pieces it wrote before the last one are
            counted as marker, not thinking, once the marker is whole.
        space_ids: ids whose text is only whitespace: what may follow the end marker of a prompt that closes
            thinking (`read_prompt`).
        control_tokens: id -> text of the chat-structure tokens (special tokens, and added markup tokens such as
            `<think>` or `[TOOL_CALLS]`): an extrapolation or answer prefix holding one would forge a turn or a
            marker inside the output, and is refused.
    """

    think_start: tuple[int, ...]
    think_end: tuple[int, ...]
    before_end: tuple[int, ...]
    after_end: tuple[int, ...]
    stop_ids: tuple[int, ...]
    ends_with_before_end: frozenset[int]
    encode: Callable[[str], Sequence[int]] = field(repr=False, compare=False)
    turn_ends: tuple[int, ...] = ()
    end_is_text: bool = False
    space_ids: frozenset[int] = frozenset()
    control_tokens: Mapping[int, str] = field(default_factory=dict, repr=False, compare=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop_set", frozenset(self.stop_ids))
        object.__setattr__(self, "turn_ends", tuple(dict.fromkeys((*self.stop_ids, *self.turn_ends))))
        if not self.think_start or not self.think_end:
            raise BudgetError("think markers must be non-empty token sequences.")
        if not self.stop_ids:
            raise BudgetError("no end-of-sequence id: set tokenizer.eos_token_id (or generation_config.eos_token_id).")
        for name in ("think_start", "think_end", "before_end", "after_end"):
            if self.stop_set & set(getattr(self, name)):
                raise BudgetError(f"the {name} marker contains an end-of-sequence token; pick another marker.")
        if self.end_is_text and len(self.think_end) < 2:
            raise BudgetError("end_is_text needs an end marker of several tokens (a one-token marker is a token).")
        if _find(self.think_start, self.think_end) >= 0 or _find(self.think_end, self.think_start) >= 0:
            raise BudgetError("one think marker contains the other (as tokens), so thinking could never be told "
                              "open from closed: pick markers where neither holds the other.")

    def end_attempt(self, tail: Sequence[int]) -> int | None:
        """The token that is an attempt to end thinking after `tail` (the last tokens written): the end marker's
        first token; for a plain-text marker (`end_is_text`), its last token once `tail` ends with all the others,
        else none (what merely starts like the marker is text)."""
        if not self.end_is_text:
            return self.think_end[0]
        head = tuple(self.think_end[:-1])
        return self.think_end[-1] if tuple(tail)[-len(head):] == head else None

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
                # It would end thinking inside the injection, below the minimum. (A plain-text start marker inside
                # one is thinking text: thinking has begun already, so it neither restarts nor nests.)
                raise BudgetError(f"extrapolation {text!r} contains the end-of-thinking marker: it would end the "
                                  f"thinking it is meant to extend; remove the marker from the string.")
            forged = [self.control_tokens[i] for i in ids if i in self.control_tokens]
            if forged:
                raise BudgetError(f"{what} {text!r} holds the chat-structure token {forged[0]!r}: it would forge a "
                                  f"turn or a marker inside the output; remove it from the string.")
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


@dataclass(frozen=True)
class Ban:
    """The next token must not be one of `token_ids` (s1 profile: a round writes a token before it may end)."""

    token_ids: frozenset[int]


Action = Union[Free, Force, Intercept, Ban]

# What the engines accept as a budget: one policy (or its dict) for every prompt, or one per prompt.
BudgetLike = Union[ThinkingBudget, Mapping[str, Any], Sequence[Union[ThinkingBudget, Mapping[str, Any]]]]
FREE = Free()


@dataclass
class BudgetStats:
    """Telemetry of one generated sequence.

    A *wait* is an injected extrapolation: an attempt to end thinking that the budget replaced by the
    extrapolation string (`BudgetTracker.intercept`, the one place `waits` is counted). A "Wait" the model writes
    by itself is thinking, never a wait; so an engine that rebuilds telemetry from output ids replays them with
    its record of where it injected (`BudgetTracker.replay(ids, injected=...)`), and every engine reports the same.
    """

    thinking_tokens: int = 0
    answer_tokens: int = 0
    waits: int = 0  # injected extrapolations (above)
    capped: bool = False
    finished: bool = False  # ended with an end-of-sequence token (else: stopped by a length limit)
    thinking_started: bool = False
    thinking_ended: bool = False
    # generated-token index ranges (start, end), end exclusive; None where the phase never began
    thinking_span: tuple[int, int] | None = None
    answer_span: tuple[int, int] | None = None
    # s1 profile: the rounds ran past the cap and the last one ended by "length" or by "stop"; the engine resumes
    # from the thinking cut to the cap (`BudgetTracker.resume`).
    overrun: str | None = None


@dataclass(frozen=True)
class TrackerSnapshot:
    """`BudgetTracker.snapshot`: the state that `BudgetStats` does not show."""

    phase: int  # 0: before thinking (the start marker is being forced), 1: thinking, 2: answer, 3: done
    queued: tuple[int, ...]  # the rest of the forced run being written, first id first (empty: nothing forced)
    queued_kind: TokenKind | None  # what those ids are (one kind per run; None when nothing is queued)
    tail: tuple[int, ...]  # the last tokens seen, prompt included, as many as the longest marker has
    round: int  # s1 profile: model tokens since thinking began or since the last extrapolation
    generated: int  # tokens observed since start()


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
        if budget.is_auto:
            raise BudgetError('max_thinking_tokens="auto" must be resolved for a call first: '
                              "budget.resolve(markers, allowance=..., longest_prompt=...) (the engines do it).")
        self.budget = budget
        self._s1 = budget.profile == "s1"
        self.markers = markers
        validate(budget, markers)  # every string up front (cached in markers)
        self._answer_prefix = markers.encode_budget_string(budget.answer_prefix, "answer_prefix")
        self._tail_len = max(len(markers.think_start), len(markers.think_end))
        self.reset()

    # -- lifecycle -------------------------------------------------------------------------------

    def reset(self) -> None:
        self.stats = BudgetStats()
        self.kinds: list[TokenKind] = []  # one per generated token
        # One per generated token: the budget chose it (a token of a forced run: the start marker, the cut, an
        # extrapolation, the rest of an end marker the model began; the end-of-sequence at the answer cap), not
        # the model. What a policy-gradient loss must leave out: the policy did not sample these.
        self.forced: list[bool] = []
        self.ids: list[int] = []  # the generated tokens
        self._round = 0  # s1 profile: model tokens written since thinking began or since the last extrapolation
        self._resume_cut: tuple[int, ...] = ()
        self._prompt_tail: list[int] = []
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

    def snapshot(self) -> TrackerSnapshot:
        """Where this tracker stands, beyond `stats`: what a batched engine needs to continue the sequence from
        here (`BatchBudget.resume` writes it into a slot instead of stepping the device once per token)."""
        queued = tuple(t for t, _ in self._queue)
        kinds = {k for _, k in self._queue}
        return TrackerSnapshot(phase=self._phase.value, queued=queued,
                               queued_kind=kinds.pop() if len(kinds) == 1 else None, tail=tuple(self._tail),
                               round=self._round, generated=self.num_generated)

    def start(self, prompt_ids: Iterable[int]) -> None:
        """Read the prompt (`read_prompt`): thinking has begun when its last turn holds an open start marker;
        thinking is over, and the answer begins, when its last turn holds an end marker after any start marker
        (a template that switched thinking off): it is never re-opened. Otherwise the start marker is written
        (completed when the prompt ends half-way into it)."""
        if self._started:
            raise RuntimeError("BudgetTracker.start() called twice; call reset() first.")
        self._started = True
        prompt = [int(t) for t in prompt_ids]
        self._prompt_tail = prompt[-self._tail_len :]
        self._tail.extend(self._prompt_tail)
        self._last_token = prompt[-1] if prompt else None
        state = read_prompt(prompt, self.markers)
        if state == "open":
            self._begin_thinking()
        elif state == "closed":
            self._phase = _Phase.ANSWER
            self.stats.answer_span = (0, 0)
        else:
            done = _overlap(prompt, self.markers.think_start)
            self._queue.extend((t, TokenKind.MARKER) for t in self.markers.think_start[done:])

    # -- decisions -------------------------------------------------------------------------------

    def next_action(self) -> Action:
        """What the next token may be."""
        if not self._started:
            raise RuntimeError("call BudgetTracker.start(prompt_ids) before next_action().")
        phase = self._phase
        if phase is _Phase.THINKING and self._s1:
            if not self._queue:
                cap = self.budget.max_thinking_tokens
                if cap is not None and self._round >= cap:  # the round hit its length limit: the last round
                    if self.stats.thinking_tokens <= cap:
                        self._cut()
                    else:  # the joined rounds ran past the cap: end this pass; the engine resumes at the cap
                        self._queue.append((self.markers.stop_ids[0], TokenKind.STOP))
                elif self._round == 0 and self.budget.num_waits:
                    return Ban(self._end_ids())
                else:
                    return Intercept(self._end_ids())
        elif phase is _Phase.THINKING:
            cap = self.budget.max_thinking_tokens
            if cap is not None and self.stats.thinking_tokens >= cap and not self._marker_queued():
                self._cut()
            elif not self._queue:
                if self._must_extend():
                    return Intercept(self._end_ids())
                # Ending is allowed; an end-of-sequence token is turned into the end marker so the answer
                # phase always follows the thinking.
                return Intercept(self.markers.stop_set)
        elif phase is _Phase.ANSWER and not self._queue:
            return Force(self.markers.stop_ids[0]) if self._answer_capped() else FREE
        elif phase is _Phase.DONE:
            return FREE
        elif phase is _Phase.BEFORE and not self._queue:
            # A forced start marker was overridden downstream: write it again.
            self._queue.extend((t, TokenKind.MARKER) for t in self.markers.think_start)
        return Force(self._queue[0][0]) if self._queue else FREE

    def _end_ids(self) -> frozenset[int]:
        """The tokens that are an attempt to end thinking now (`MarkerTokens.end_attempt`)."""
        end = self.markers.end_attempt(self._tail)
        return self.markers.stop_set if end is None else self.markers.stop_set | {end}

    def _answer_capped(self) -> bool:
        cap = self.budget.max_answer_tokens
        return self._phase is _Phase.ANSWER and cap is not None and self.stats.answer_tokens >= cap

    def intercept(self) -> int:
        """The model attempted an intercepted token: queue its replacement and return the id to force."""
        if self._phase is not _Phase.THINKING or self._queue:
            raise RuntimeError("intercept() is only valid right after next_action() returned an Intercept.")
        ids, kind = self._replacement()
        if kind is TokenKind.EXTRAPOLATION:
            self.stats.waits += 1
            self._round = 0
        self._queue.extend((t, kind) for t in ids)
        return self._queue[0][0]

    def _replacement(self) -> tuple[tuple[int, ...], TokenKind]:
        """What an intercepted token is replaced by: an extrapolation while thinking must go on, else the
        end marker (an end-of-sequence token while ending is allowed)."""
        if self._must_extend():
            text = self.budget.extrapolation_at(self.stats.waits)
            return self.markers.encode_budget_string(text, "extrapolation"), TokenKind.EXTRAPOLATION
        if self._s1 and self._over_cap():  # the last round ended past the cap: end this pass (see `resume`)
            return (self.markers.stop_ids[0],), TokenKind.STOP
        return self.markers.think_end, TokenKind.MARKER

    def replay(self, token_ids: Iterable[int], injected: Container[int] | None = None) -> None:
        """Catch up with tokens generated while no adapter drove this tracker (a resumed request, a
        multi-call loop, telemetry rebuilt from output ids): decisions are re-run.

        Whether an intercepted end was replaced is known exactly when `injected` holds the generated
        positions where the budget replaced one (the engine's log: an extrapolation, or the end marker in place of an
        end of sequence; every engine's `generate_with_budget` passes it). Otherwise it is inferred: a token equal to
        what an intercept would force is taken as forced, so a model that wrote that very token itself, at a point
        where an end would have been extended, is counted as one more wait (`BudgetStats`: it is not one), and, with
        a plain-text end marker, its own first piece as the budget's."""
        for token in token_ids:
            action = self.next_action()
            if isinstance(action, Intercept):
                if injected is not None:
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
        head = self._queue[0][0] if self._queue else (self.markers.stop_ids[0] if self._answer_capped() else None)
        self.forced.append(token_id == head)
        kind = self._classify(token_id)
        st = self.stats
        if kind is TokenKind.STOP and self._phase is _Phase.THINKING and self._s1 and self._over_cap():
            length = self._round >= self.budget.max_thinking_tokens
            st.overrun = "length" if length else "stop"
            # s1 writes the newline unless the last round's text ends with one (its untruncated text).
            self._resume_cut = (tuple(self.markers.cut_ids(self._last_token, self._answer_prefix)) if length
                                else self.markers.think_end)
        self.kinds.append(kind)
        self.ids.append(token_id)
        self._tail.append(token_id)
        self._last_token = token_id
        if kind is TokenKind.THINKING:
            self._round += 1
        if kind in (TokenKind.THINKING, TokenKind.EXTRAPOLATION):
            st.thinking_tokens += 1
        elif kind is TokenKind.ANSWER:
            st.answer_tokens += 1
        if self._phase is _Phase.BEFORE and self._ends_with(self.markers.think_start):
            self._begin_thinking(index + 1)
        elif self._phase is _Phase.THINKING and self._ends_with(self.markers.think_end):
            if self.markers.end_is_text and kind is TokenKind.THINKING:
                # The model wrote a plain-text marker itself: its pieces were text until now, they are the marker.
                before = st.thinking_tokens - 1  # this token was counted as thinking above
                pieces = min(len(self.markers.think_end) - 1, before)
                st.thinking_tokens = before - pieces
                kind = self.kinds[-1] = TokenKind.MARKER
                self._round -= 1
                for k in range(index - pieces, index):
                    self.kinds[k] = TokenKind.MARKER
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
            if token_id == self.markers.think_end[0] and not self.markers.end_is_text:
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

    def _over_cap(self) -> bool:
        cap = self.budget.max_thinking_tokens
        return cap is not None and self.stats.thinking_tokens > cap

    def resume(self) -> list[int]:
        """s1 profile, after a pass that ended with `stats.overrun` set: go back to where s1's answer call starts.

        s1 lets every round write up to the cap and cuts the joined thinking to the cap afterwards, so the cut's
        form depends on tokens written past the cap, which a single pass cannot take back. The pass writes them,
        ends the row, and the engine calls again from what this returns: the generated ids up to the cap, then
        the cut (newline, end marker, answer prefix if the last round hit its length limit; the end marker alone if
        it ended by itself). The tracker is rewound to that point; `finish(returned + answer)` completes it.
        """
        st = self.stats
        if st.overrun is None:
            raise RuntimeError("resume() is only valid after a pass whose thinking ran past the cap (stats.overrun).")
        first = st.thinking_span[0]
        keep = first + self.budget.max_thinking_tokens
        ids, kinds, forced = self.ids[:keep], self.kinds[:keep], self.forced[:keep]
        waits = sum(1 for i in range(first, keep)
                    if kinds[i] is TokenKind.EXTRAPOLATION and (i == first or kinds[i - 1] is not TokenKind.EXTRAPOLATION))
        cut, kind = self._resume_cut, TokenKind.CUT if st.overrun == "length" else TokenKind.MARKER
        prompt_tail = self._prompt_tail
        self.reset()
        self._started, self._prompt_tail = True, prompt_tail
        self.ids, self.kinds, self.forced = ids, kinds, forced
        self._tail.extend((prompt_tail + ids)[-self._tail_len :])
        self._last_token = self._tail[-1] if self._tail else None
        self._phase = _Phase.THINKING
        self.stats = BudgetStats(thinking_tokens=len(ids) - first, waits=waits, capped=True, thinking_started=True,
                                 thinking_span=(first, first), overrun=st.overrun)
        self._queue.extend((t, kind) for t in cut)
        return ids + list(cut)

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
        if self._s1 and self._phase is _Phase.THINKING and self._over_cap() and st.overrun is None:
            # A length limit (the context) ended rounds that ran past the cap: s1 ends that round by its length.
            st.overrun = "length"
            self._resume_cut = tuple(self.markers.cut_ids(self._last_token, self._answer_prefix))
        if st.thinking_started and not st.thinking_ended:
            end = len(self.kinds)
            while end > st.thinking_span[0] and self.kinds[end - 1] in (TokenKind.STOP, TokenKind.AFTER_STOP,
                                                                        TokenKind.CUT, TokenKind.MARKER):
                end -= 1
            st.thinking_span = (st.thinking_span[0], end)
        return st


def close_answer(answer: Sequence[int], budget: ThinkingBudget, markers: MarkerTokens) -> list[int]:
    """An answer generated without the budget processor (a resumed row's answer call), ended as one pass ends it:
    at its first end-of-sequence token, or at `max_answer_tokens`, where the end-of-sequence token is forced."""
    ids = [int(t) for t in answer]
    stop = next((k for k, t in enumerate(ids) if t in markers.stop_set), None)
    ids = ids if stop is None else ids[: stop + 1]
    cap = budget.max_answer_tokens
    if cap is not None and (stop is None or stop > cap) and len(ids) >= cap:
        ids = ids[:cap] + [markers.stop_ids[0]]
    return ids


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


PromptState = Literal["open", "closed", "absent"]


def read_prompt(prompt_ids: Sequence[int], markers: MarkerTokens) -> PromptState:
    """Whether a prompt leaves thinking open, closed or not begun, read from its last turn only.

    The last turn is what follows the last turn-end token (`MarkerTokens.turn_ends`; one inside the last end
    marker, as gpt-oss's `<|end|>`, is part of the marker). Within it:

    - `"open"`: a start marker with no end marker after it (a template that opens thinking, `<think>\\n`);
    - `"closed"`: an end marker after any start marker, followed by nothing but whitespace (a template that switched
      thinking off, Qwen3's `<think>\\n\\n</think>\\n\\n`, DeepSeek-V3.1's `</think>`): the answer begins; thinking
      is not re-opened;
    - `"absent"`: neither; the start marker is to be written.

    Markers in earlier turns (a user's own text, an earlier assistant's thinking) never decide.

    ```python
    >>> from hf_s1.budget import MarkerTokens, read_prompt
    >>> m = MarkerTokens(think_start=(5,), think_end=(6,), before_end=(), after_end=(), stop_ids=(0,),
    ...     ends_with_before_end=frozenset(), encode=list)
    >>> read_prompt([1, 5, 7, 0, 2], m), read_prompt([1, 2, 5], m), read_prompt([1, 2, 5, 6], m)
    ('absent', 'open', 'closed')

    ```
    """
    prompt = [int(t) for t in prompt_ids]
    end = markers.think_end
    end_at = _rfind(prompt, end)
    turns = set(markers.turn_ends)
    turn = max((i for i, t in enumerate(prompt) if t in turns and not (0 <= end_at <= i < end_at + len(end))),
               default=-1) + 1
    start_at = _rfind(prompt, markers.think_start, turn)
    end_at = end_at if end_at >= turn else -1
    if start_at >= 0 and end_at < start_at:
        return "open"
    if end_at >= 0 and all(t in markers.space_ids for t in prompt[end_at + len(end):]):
        return "closed"
    return "absent"


# ---- budgets in: coercion, validation, description ---------------------------------------------------


def as_budgets(budget: BudgetLike, n: int | None = None) -> list[ThinkingBudget]:
    """Every form a caller may give a budget in (`BudgetLike`: a `ThinkingBudget`, a mapping of its fields, or a
    list of either), as a list of `ThinkingBudget`s. With `n` (the number of prompts) a single budget is shared by
    the `n` rows and a list must have `n` entries; without it the list is returned as given (non-empty).

    ```python
    >>> from hf_s1.budget import as_budgets
    >>> as_budgets({"max_thinking_tokens": 8}, 2) == [ThinkingBudget(max_thinking_tokens=8)] * 2
    True

    ```
    """
    if isinstance(budget, (ThinkingBudget, Mapping)):
        return [ThinkingBudget.from_dict(budget)] * (1 if n is None else n)
    if isinstance(budget, Sequence) and not isinstance(budget, str) and len(budget) > 0:
        budgets = [ThinkingBudget.from_dict(b) for b in budget]
        if n is not None and len(budgets) != n:
            raise BudgetError(
                f"got {len(budgets)} budgets for {n} prompts: pass one ThinkingBudget per prompt, or a single one."
            )
        return budgets
    raise BudgetError(f"budget must be a ThinkingBudget or a non-empty list of them, got {budget!r}.")


def validate(budget: ThinkingBudget, markers: MarkerTokens) -> None:
    """Raise `BudgetError` now if `budget` cannot be honoured with these marker tokens (an extrapolation or answer
    prefix that would end the row, contains the end marker or encodes to nothing), so that nothing fails
    mid-generation. An `"auto"` cap is checked as if the allowance were unbounded. The strings are cached in
    `markers`, so the trackers built afterwards do not tokenize them again."""
    if budget.is_auto:
        budget = budget.resolve(markers, allowance=1 << 30, longest_prompt=0)
    for text in budget.extrapolation:
        markers.encode_budget_string(text, "extrapolation")
    markers.encode_budget_string(budget.answer_prefix, "answer_prefix")


def describe_budget(budget: ThinkingBudget) -> str:
    """A short human description of a budget, for cards, evaluation notes and commit messages.

    ```python
    >>> describe_budget(ThinkingBudget(max_thinking_tokens=512, num_waits=2))
    'max 512 thinking tokens, 2 Wait extensions'
    >>> describe_budget(ThinkingBudget(max_thinking_tokens="auto", profile="s1"))
    'auto thinking cap (allowance minus prompt), s1 profile'

    ```
    """
    parts = []
    if budget.is_auto:
        parts.append("auto thinking cap (allowance minus prompt)")
    elif budget.max_thinking_tokens is not None:
        parts.append(f"max {budget.max_thinking_tokens} thinking tokens")
    if budget.min_thinking_tokens:
        parts.append(f"min {budget.min_thinking_tokens} thinking tokens")
    if budget.num_waits:
        words = "/".join(budget.extrapolation)
        parts.append(f"{budget.num_waits} {words} extension{'s' if budget.num_waits != 1 else ''}")
    if budget.max_answer_tokens is not None:
        parts.append(f"max {budget.max_answer_tokens} answer tokens")
    text = ", ".join(parts) or "no thinking limit"
    return text + (f", {budget.profile} profile" if budget.profile != "hf-s1" else "")


# ---- token allowance -----------------------------------------------------------------------------


def generation_allowance(context: int | None, max_new_tokens: int | None = None) -> int:
    """The generation allowance, s1's `max_gen_toks`: `max_new_tokens`, else the model's context length, at most
    `DEFAULT_ALLOWANCE` (s1 evaluates 32k-context models with 32,768)."""
    if max_new_tokens is not None:
        return max_new_tokens
    return min(context or DEFAULT_ALLOWANCE, DEFAULT_ALLOWANCE)


def answer_allowance(budget: ThinkingBudget, context: int | None, max_new_tokens: int | None = None,
                     prompt_len: int | None = None) -> int:
    """Tokens the answer may write after the thinking: `max_answer_tokens`, else the whole generation allowance
    (s1's answer call gets all of `max_gen_toks`). With `prompt_len` (what the answer call reads: prompt, thinking
    and cut) it is kept within the context."""
    limit = budget.max_answer_tokens
    if limit is None:
        limit = generation_allowance(context, max_new_tokens)
    if prompt_len is not None and context is not None:
        limit = min(limit, context - prompt_len)
    return limit


def s1_answer_cut(tracker: BudgetTracker, ids: Sequence[int], prompt_len: int, context: int | None,
                  max_new_tokens: int | None = None) -> list[int]:
    """s1 profile without `max_answer_tokens`: the answer is what s1's answer call writes, at most
    `answer_allowance` tokens (s1's `max_gen_toks`, within the context) after the prompt, thinking and cut it
    reads. A single pass has no per-answer limit of its own (its row allowance covers every round up to the
    cap), so an answer it wrote past that allowance is cut there, and the row ends by length as s1's call does.
    Returns `ids` as they are otherwise (other profiles, `max_answer_tokens` set, a short answer).

    Args:
        tracker: the row's tracker after `finish(ids)`.
        ids: the row's generated ids.
        prompt_len: the row's prompt length (what precedes `ids`).
        context, max_new_tokens: as for `answer_allowance`.
    """
    ids, budget = list(ids), tracker.budget
    if budget.profile != "s1" or budget.max_answer_tokens is not None:
        return ids
    answer = [k for k, kind in enumerate(tracker.kinds) if kind is TokenKind.ANSWER]
    if not answer:
        return ids
    limit = answer_allowance(budget, context, max_new_tokens, prompt_len=prompt_len + answer[0])
    return ids[: answer[limit]] if len(answer) > limit else ids


def token_allowance(
    budget: ThinkingBudget,
    markers: MarkerTokens,
    prompt_len: int,
    context: int | None,
    max_new_tokens: int | None = None,
) -> int:
    """New tokens one row may generate in a single pass.

    An explicit `max_new_tokens` bounds the whole row, as in `generate` (hf-s1 profile). Otherwise the row may
    write the start marker, the thinking cap, the cut and then the answer allowance (`answer_allowance`: by
    default the whole generation allowance, as s1's answer call gets all of `max_gen_toks`); with the s1 profile
    that holds for an explicit `max_new_tokens` too (it is s1's `max_gen_toks`). Without a thinking cap the row
    gets the generation allowance. A row never runs past the context; raises when the prompt or the thinking cap
    does not fit.
    """
    if max_new_tokens is not None:
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise BudgetError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}.")
    if budget.is_auto:
        raise BudgetError('resolve max_thinking_tokens="auto" for the call first (ThinkingBudget.resolve).')
    room = None if context is None else context - prompt_len
    if room is not None and room < 1:
        raise BudgetError(f"the prompt has {prompt_len} tokens, which fills the model's context of {context}.")
    cap = budget.max_thinking_tokens
    fixed = max_new_tokens is not None and budget.profile != "s1"
    if cap is None or fixed:
        need = generation_allowance(context, max_new_tokens)
        if not fixed:  # the default allowance shrinks to what the context leaves
            return need if room is None else min(need, room)
    else:
        prefix = markers.encode_budget_string(budget.answer_prefix, "answer_prefix")
        thinking = len(markers.think_start) + cap + len(markers.cut_ids(None, prefix))
        need = thinking + answer_allowance(budget, context, max_new_tokens) + 1  # + the end-of-sequence token
        if budget.profile == "s1":  # every round may write up to the cap before the pass ends (see resume)
            waits = max(len(markers.encode_budget_string(e, "extrapolation")) for e in budget.extrapolation)
            need = max(need, len(markers.think_start) + (budget.num_waits + 1) * cap + budget.num_waits * waits + 1)
        if room is not None and need > room and thinking + 1 <= room and budget.max_answer_tokens is None:
            return room  # the answer gets what the context leaves
    if room is not None and need > room:
        raise BudgetError(
            f"prompt ({prompt_len} tokens) + budget ({need} new tokens) exceeds the model's context of {context}: "
            f"lower max_thinking_tokens / max_answer_tokens / max_new_tokens or shorten the prompt.")
    return need