"""Turns a budget-forced stream (`ThoughtChunk`s) into the chat messages the Space shows: one collapsible
thought holding the thinking as steps (the model's own text, each injected "Wait", the forced cut), then
the answer. Pure bookkeeping: no model, so it is cheap to test.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import gradio as gr

from hf_s1.budget import ThinkingBudget, TokenKind
from hf_s1.results import BudgetedGeneration

__all__ = ["Step", "ThoughtView"]

# Kinds of streamed text the thought shows as steps; markers are structure, not content.
_STEP_KINDS = (TokenKind.THINKING.value, TokenKind.EXTRAPOLATION.value, TokenKind.CUT.value)


@dataclass
class Step:
    """One shown step of the thinking: the model's text, one injected extrapolation, or the forced cut."""

    kind: str
    text: str = ""
    index: int = 0  # 1-based number of the injection, for extrapolation steps


@dataclass
class ThoughtView:
    """Accumulates one generation's stream into chat messages.

    Args:
        budget: the budget the generation runs with, or `None` for the unforced run of the compare mode.
        key: unique among the messages of a chat (thought ids must not collide across turns).
        label: the thought's title.

    Examples:

    ```python
    >>> from hf_s1 import ThinkingBudget
    >>> from hf_s1.engines.transformers import ThoughtChunk
    >>> view = ThoughtView(ThinkingBudget(max_thinking_tokens=6, num_waits=1), key="t0")
    >>> for text, kind in [("5", "thinking"), ("Wait", "extrapolation"), (" yes", "thinking"),
    ...                    ("\\n<|im_start|>answer\\nFinal Answer:", "cut"), (" 5", "answer")]:
    ...     view.add(ThoughtChunk(text, kind))
    >>> [(s.kind, s.text) for s in view.steps]
    [('thinking', '5'), ('extrapolation', 'Wait'), ('thinking', ' yes'), ('cut', '\\n<|im_start|>answer\\nFinal Answer:')]
    >>> view.answer_text()
    'Final Answer: 5'
    >>> [m.metadata.get("title") for m in view.messages()][:3]
    ['🧠 Thinking', '💭 Model', '⏳ Wait injected (1 of 1)']

    ```
    """

    budget: ThinkingBudget | None
    key: str = "t"
    label: str = "Thinking"
    steps: list[Step] = field(default_factory=list)
    answer: str = ""
    thinking_tokens: int = 0  # live count, set by the caller from the running generation
    result: BudgetedGeneration | None = None
    error: str | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    # -- feeding ---------------------------------------------------------------------------------

    @property
    def waits(self) -> int:
        return sum(s.kind == TokenKind.EXTRAPOLATION.value for s in self.steps)

    @property
    def capped(self) -> bool:
        return any(s.kind == TokenKind.CUT.value for s in self.steps)

    def add(self, chunk: str) -> None:
        """Append one streamed piece (a `ThoughtChunk`: a `str` with `.kind`)."""
        kind = getattr(chunk, "kind", TokenKind.THINKING.value)
        if kind == TokenKind.ANSWER.value:
            self.answer += chunk
            return
        if kind not in _STEP_KINDS:
            return
        last = self.steps[-1] if self.steps else None
        if last is not None and last.kind == kind and not self._injection_complete(last):
            last.text += chunk
        else:
            index = self.waits + 1 if kind == TokenKind.EXTRAPOLATION.value else 0
            self.steps.append(Step(kind, str(chunk), index))

    def _injection_complete(self, step: Step) -> bool:
        # Two injections can follow each other directly (the model tries to end right after a "Wait"):
        # an extrapolation step is complete once it holds the whole string that injection appended.
        if step.kind != TokenKind.EXTRAPOLATION.value or self.budget is None:
            return False
        return len(step.text) >= len(self.budget.extrapolation_at(step.index - 1))

    def finish(self, result: BudgetedGeneration | None, error: str | None = None) -> None:
        """Mark the generation done; its exact telemetry replaces the live counts."""
        self.result = result
        self.error = error
        self.finished = time.monotonic()
        if result is not None:
            self.thinking_tokens = result.thinking_tokens

    # -- rendering -------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.finished is not None

    def answer_text(self) -> str:
        """The answer as shown: the final result's answer when done, else what has streamed so far (with
        the answer prefix the cut wrote)."""
        if self.result is not None:
            return self.result.answer
        prefix = self.budget.answer_prefix if self.capped and self.budget is not None else ""
        return (prefix + self.answer).strip()

    def meter(self) -> str:
        """`"17 / 24 thinking tokens"`-style count against the budget."""
        if self.budget is None or self.budget.max_thinking_tokens is None:
            return f"{self.thinking_tokens} thinking tokens (no budget)"
        text = f"{self.thinking_tokens} / {self.budget.max_thinking_tokens} thinking tokens"
        if self.budget.min_thinking_tokens:
            text += f" (min {self.budget.min_thinking_tokens})"
        return text

    def messages(self) -> list[gr.ChatMessage]:
        """The thought (with one nested step per `Step`) followed by the answer once there is one."""
        parent_id = f"{self.key}-thinking"
        log = self.meter()
        if self.waits:
            log += f" · {self.waits} × {'/'.join(self.budget.extrapolation)}"
        if self.capped:
            log += " · cut"
        meta: dict = {"title": f"🧠 {self.label}", "id": parent_id, "log": log,
                      "status": "done" if self.done else "pending"}
        if self.done:
            meta["duration"] = round(self.finished - self.started, 1)
        out = [gr.ChatMessage(role="assistant", content="", metadata=meta)]
        for i, step in enumerate(self.steps):
            out.append(gr.ChatMessage(role="assistant", content=self._step_content(step),
                                      metadata={"title": self._step_title(step), "id": f"{parent_id}-{i}",
                                                "parent_id": parent_id}))
        if self.error is not None:
            out.append(gr.ChatMessage(role="assistant", content=f"⚠️ {self.error}"))
        elif self.done or self.answer_text():
            answer = self.answer_text()
            if self.result is not None and self.result.finish_reason == "length":
                answer += "\n\n*(stopped at the Space's token limit)*"
            elif self.done and not answer:
                answer = "*(the model wrote no answer after its thinking)*"
            out.append(gr.ChatMessage(role="assistant", content=answer.strip()))
        return out

    def _step_title(self, step: Step) -> str:
        if step.kind == TokenKind.EXTRAPOLATION.value:
            total = self.budget.num_waits if self.budget is not None else 0
            of = f" of {total}" if step.index <= total else ", min tokens not reached"
            return f"⏳ {step.text.strip() or 'Extrapolation'} injected ({step.index}{of})"
        if step.kind == TokenKind.CUT.value:
            at = self.budget.max_thinking_tokens if self.budget is not None else self.thinking_tokens
            return f"✂️ Budget reached: thinking cut at {at} tokens"
        return "💭 Model"

    @staticmethod
    def _step_content(step: Step) -> str:
        if step.kind == TokenKind.CUT.value:
            # A code block keeps special tokens such as <|im_start|> visible instead of sanitised away.
            return "Forced end of thinking and answer prefix:\n```\n" + step.text.strip("\n") + "\n```"
        if step.kind == TokenKind.EXTRAPOLATION.value:
            return f"**{step.text.strip()}**"
        return step.text.strip() or "…"
