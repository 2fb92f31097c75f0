"""The result of a budget-forced generation: the same type from every engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .budget import BudgetStats, BudgetTracker, ThinkingBudget, TokenKind

__all__ = ["BudgetedGeneration", "build_result", "result_from_tracker"]


@dataclass
class BudgetedGeneration:
    """One prompt's generation with its thinking-budget telemetry.

    Attributes:
        prompt: the prompt as given.
        text: everything generated, markers included (special tokens kept).
        thinking: the thinking text (between the markers; injected extrapolations included).
        answer: the text after the end-of-thinking marker (with the answer prefix when the cap cut it).
        token_ids: the generated ids, prompt excluded.
        thinking_tokens / answer_tokens / waits: counts as defined by `ThinkingBudget`.
        capped: whether the upper bound cut the thinking.
        finish_reason: `"stop"` (end-of-sequence) or `"length"` (a token limit ended the row first).
        budget: the policy applied to this row.
        kinds: what each generated token was (`TokenKind` values), for display and audits.
        segments: the generated text as runs of one kind, `(kind, text)` in order (end-of-sequence and padding
            left out): what a UI needs to mark injected extrapolations and the forced cut.
        forced: one per `token_ids` entry: the budget chose that token (`BudgetTracker.forced`), not the model.
        stop_id: the end-of-sequence id that ended the row (left out of `token_ids`); `None` when a limit did.
        stop_forced: the budget forced that end-of-sequence token (the answer cap).
    """

    prompt: Any
    text: str
    thinking: str
    answer: str
    token_ids: list[int]
    thinking_tokens: int
    answer_tokens: int
    waits: int
    capped: bool
    finish_reason: str
    budget: ThinkingBudget
    kinds: list[str] = field(default_factory=list, repr=False)
    segments: list[tuple[str, str]] = field(default_factory=list, repr=False)
    forced: list[bool] = field(default_factory=list, repr=False)
    stop_id: int | None = None
    stop_forced: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["budget"] = self.budget.to_dict()
        return d

    def render(self) -> str:
        """A readable block for a terminal: the prompt, the thinking with injected extrapolations marked `[+...]`,
        how it ended, and the answer."""
        ending = "cut at the cap" if self.capped else "ended by the model"
        if self.finish_reason == "length" and not self.answer:
            ending = "stopped by the token limit"
        waits = f"{self.waits} injected [+...]" if self.waits else "none injected"
        return (f"### {self.prompt}\n--- thinking: {self.thinking_tokens} tokens, waits: {waits}, {ending}\n"
                f"{self.marked_thinking()}\n--- answer ({self.answer_tokens} tokens)\n{self.answer}\n")

    def marked_thinking(self, injected: str = "[+{}]") -> str:
        """The thinking with each injected extrapolation shown through `injected` (a format string), so text the
        model wrote ("Wait" included) can be told from text the budget added."""
        parts = []
        for kind, text in self.segments:
            if kind == TokenKind.THINKING.value:
                parts.append(text)
            elif kind == TokenKind.EXTRAPOLATION.value:
                core = text.strip()
                parts.append(text[: len(text) - len(text.lstrip())] + injected.format(core) + text[len(text.rstrip()):])
            elif kind in (TokenKind.CUT.value, TokenKind.ANSWER.value) or (
                    kind == TokenKind.MARKER.value and parts):
                break  # thinking is over (a marker before any thinking is the start marker)
        return "".join(parts).strip()


def build_result(
    prompt: Any,
    token_ids: Sequence[int],
    stats: BudgetStats,
    kinds: Sequence[TokenKind],
    budget: ThinkingBudget,
    decode: Callable[[Sequence[int]], str],
    forced: Sequence[bool] = (),
) -> BudgetedGeneration:
    ids = [int(t) for t in token_ids]
    # Drop the end-of-sequence token and any padding an engine appended after it.
    end = next((i for i, k in enumerate(kinds) if k in (TokenKind.STOP, TokenKind.AFTER_STOP)), len(ids))
    stop = end < len(ids) and kinds[end] is TokenKind.STOP
    stop_id, stop_forced = (ids[end], bool(forced[end]) if end < len(forced) else False) if stop else (None, False)
    ids, kinds = ids[:end], list(kinds[:end])
    segments: list[tuple[str, str]] = []
    start = 0
    for i in range(1, len(kinds) + 1):
        if i == len(kinds) or kinds[i] is not kinds[start]:
            segments.append((kinds[start].value, decode(ids[start:i])))
            start = i
    thinking = decode(ids[slice(*stats.thinking_span)]) if stats.thinking_span else ""
    answer = decode(ids[slice(*stats.answer_span)]) if stats.answer_span else ""
    return BudgetedGeneration(
        prompt=prompt,
        text=decode(ids),
        thinking=thinking.strip(),
        answer=answer.strip(),
        token_ids=ids,
        thinking_tokens=stats.thinking_tokens,
        answer_tokens=stats.answer_tokens,
        waits=stats.waits,
        capped=stats.capped,
        finish_reason="stop" if stats.finished else "length",
        budget=budget,
        kinds=[k.value for k in kinds],
        segments=segments,
        forced=[bool(f) for f in forced[:end]],
        stop_id=stop_id,
        stop_forced=stop_forced,
    )


def result_from_tracker(
    prompt: Any,
    token_ids: Sequence[int],
    tracker: BudgetTracker,
    decode: Callable[[Sequence[int]], str],
) -> BudgetedGeneration:
    """The last step of every engine: the tracker that followed a row observes what the engine produced after its
    last decision (`BudgetTracker.finish`), and the row becomes a `BudgetedGeneration`."""
    stats = tracker.finish(token_ids)
    return build_result(prompt, token_ids, stats, tracker.kinds, tracker.budget, decode, tracker.forced)

