"""Gradio Space: watch s1 budget forcing think, live.

Run locally with `python spaces/app.py` (the embedded SmolLM2-135M-Instruct), or choose the model with
`HF_S1_SPACE_MODEL=<hub id or folder>`. Limits come from `HF_S1_SPACE_*` variables: see docs/space.md.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import os
import queue
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gradio as gr
from transformers import StoppingCriteria, StoppingCriteriaList

# `python spaces/app.py` puts this folder on sys.path; importing the app from elsewhere needs it too.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from space_settings import (  # noqa: E402
    EXTRAPOLATION_CHOICES,
    SpaceSettings,
    budget_from_controls,
    check_question,
    check_temperature,
)
from thought_view import ThoughtView  # noqa: E402

from hf_s1.budget import ThinkingBudget, validate  # noqa: E402
from hf_s1.engines.transformers import stream_with_budget  # noqa: E402
from hf_s1.errors import HfS1Error  # noqa: E402
from hf_s1.formats import get_format, marker_tokens  # noqa: E402

__all__ = ["EXAMPLES", "SpaceRuntime", "build_demo", "main"]

# Short questions a 135M model can take a swing at within a few dozen tokens:
# question, min thinking tokens, max thinking tokens, number of Waits, extrapolation string.
EXAMPLES = [
    ["What is 12 * 7?", 8, 32, 2, "Wait"],
    ["What is 15% of 80?", 16, 48, 1, "Hmm"],
    ["Solve for x: 3x + 5 = 20.", 0, 64, 2, "Wait"],
    ["How many prime numbers are there between 10 and 30?", 24, 96, 1, "Alternatively"],
    ["What is the sum of the interior angles of a hexagon, in degrees?", 0, 128, 0, "Wait"],
]

INTRO = """## ⏳ s1 budget forcing, live
Watch a model think under an s1 thinking budget ([arXiv 2501.19393](https://arxiv.org/abs/2501.19393)): an early
end of thinking becomes **Wait**; at the budget the thinking is **cut** and `Final Answer:` is forced."""

# The chat fills the window below the title, the question and the meter, so on a 1366x768 laptop (about 650
# pixels of page in a browser) the answer under the thought is on screen without scrolling; taller windows
# get a taller chat.
CHAT_HEIGHT = "calc(100vh - 260px)"
CHAT_MIN_HEIGHT = 320
METER_PLACEHOLDER = "Thinking tokens appear here."


def zero_gpu(fn: Callable) -> Callable:
    """`spaces.GPU(fn)` on a ZeroGPU Space, `fn` unchanged everywhere else (the `spaces` package is
    optional: it exists only on Hugging Face Spaces)."""
    if os.environ.get("SPACES_ZERO_GPU") != "true":
        return fn
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return fn
    gpu = getattr(spaces, "GPU", None)  # a local folder named `spaces` would import without it
    return gpu(duration=120)(fn) if callable(gpu) else fn


class SpaceRuntime:
    """The model the Space serves, a pool of tokenizer copies, and in-flight accounting.

    Fast tokenizers are not safe to call from two threads at once (padding settings live in shared Rust
    state), so each running generation borrows its own copy; the pool's size also bounds how many
    generations run at once.

    Args:
        model: a causal LM (already on its device, in eval mode).
        tokenizer: its tokenizer.
        settings: the deployment's limits.
    """

    def __init__(self, model: Any, tokenizer: Any, settings: SpaceSettings | None = None) -> None:
        self.model = model
        self.settings = settings or SpaceSettings()
        self.markers = marker_tokens(tokenizer, get_format(None, tokenizer))
        # Compare mode runs two generations per request.
        self._tokenizers: queue.Queue = queue.Queue()
        for _ in range(2 * self.settings.concurrency):
            self._tokenizers.put(copy.deepcopy(tokenizer))
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak_in_flight = 0
        self.completed = 0
        self._generate_on_device = zero_gpu(self.generate)

    @classmethod
    def load(cls, settings: SpaceSettings | None = None) -> SpaceRuntime:
        """Load the operator's model (never a visitor's choice), on GPU when there is one."""
        import torch

        from hf_s1.models import load_model

        settings = settings or SpaceSettings.from_env()
        device = "cuda" if torch.cuda.is_available() else None
        if device is None:
            # Concurrent generations each run a full intra-op thread team; more busy threads than cores
            # makes CPU decoding collapse (ten times slower was measured on 2 cores), so share the cores.
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // settings.concurrency))
        kwargs = {"trust_remote_code": True} if settings.trust_remote_code else {}
        model, tokenizer = load_model(settings.model_source(), device=device, **kwargs)
        return cls(model, tokenizer, settings)

    def check_budget(self, budget: ThinkingBudget) -> None:
        """Raise `BudgetError` now if this model's tokenizer cannot honour `budget` (e.g. a custom
        extrapolation string that contains an end-of-sequence token)."""
        validate(budget, self.markers)

    @contextmanager
    def _borrow_tokenizer(self) -> Iterator[Any]:
        tokenizer = self._tokenizers.get()
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            yield tokenizer
        finally:
            with self._lock:
                self.in_flight -= 1
                self.completed += 1
            self._tokenizers.put(tokenizer)

    def generate(self, question: str, budget: ThinkingBudget, temperature: float, max_new_tokens: int | None,
                 stop: StoppingCriteriaList | None, tag: str) -> Iterator[tuple[Any, Any]]:
        """One streamed generation: yields `(chunk, live_thinking_tokens)` for every `ThoughtChunk`, then
        `(None, result)`. On a ZeroGPU Space this is the function that holds the GPU (`zero_gpu`)."""
        with self._borrow_tokenizer() as tokenizer:
            stream = stream_with_budget(
                self.model, tokenizer, question, budget, do_sample=temperature > 0,
                temperature=temperature or 1.0, max_new_tokens=max_new_tokens, stopping_criteria=stop,
                thread_name=f"hf-s1-{tag}-generate",
            )
            for chunk in stream:
                stats = stream.live_stats()  # has counted every chunk sent so far
                yield chunk, 0 if stats is None else stats.thinking_tokens
            yield None, stream.result

    def start(self, question: str, budget: ThinkingBudget, temperature: float, tag: str, sink: Any,
              max_new_tokens: int | None = None, cancel: threading.Event | None = None) -> threading.Thread:
        """Run one generation in the background. `sink.put` receives `(tag, chunk, live_thinking_tokens)` for
        every streamed `ThoughtChunk`, then `(tag, None, result_or_exception)`. Setting `cancel` stops the
        generation at its next decoding step (the visitor closed or abandoned the request)."""
        stop = StoppingCriteriaList([_Cancelled(cancel)]) if cancel is not None else None
        generate = self._generate_on_device

        def pump() -> None:
            try:
                for chunk, payload in generate(question, budget, temperature, max_new_tokens, stop, tag):
                    sink.put((tag, chunk, payload))
            except BaseException as exc:  # hand the failure to the page instead of hanging it
                sink.put((tag, None, exc))

        # The request's context goes with the thread (ZeroGPU reads the visitor's request from it).
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(pump,), daemon=True, name=f"hf-s1-{tag}")
        thread.start()
        return thread


class _LoopSink:
    """What the generation threads put into and the page's handler awaits: items are handed to the handler's
    event loop, so waiting for the next one is an `await` that a cancelled request interrupts."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._items: asyncio.Queue = asyncio.Queue()

    def put(self, item: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)
        except RuntimeError:  # the server has shut down its loop: nobody is waiting any more
            pass

    async def get(self) -> Any:
        return await self._items.get()


class _Cancelled(StoppingCriteria):
    """Stops a generation once its request is gone: checked at every decoding step, reads no device memory."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def _summary(view: ThoughtView) -> dict[str, Any] | None:
    r = view.result
    if r is None:
        return None
    return {
        "thinking_tokens": r.thinking_tokens,
        "answer_tokens": r.answer_tokens,
        "waits": r.waits,
        "capped": r.capped,
        "finish_reason": r.finish_reason,
        "answer": r.answer,
        "budget": r.budget.to_dict(),
    }


def _meter(forced: ThoughtView, plain: ThoughtView | None) -> str:
    def line(title: str, view: ThoughtView) -> str:
        text = f"**{title}:** {view.meter()}"
        if view.budget is not None:
            text += f" · {view.waits} injected"
        if view.capped:
            text += " · cut by the budget"
        if view.done:
            text += f" · done in {view.finished - view.started:.1f} s"
        return text

    lines = [line("With budget forcing", forced)]
    if plain is not None:
        lines.append(line("Without budget forcing", plain))
    return "  \n".join(lines)


def build_demo(runtime: SpaceRuntime) -> gr.Blocks:
    """The Space's UI around `runtime`, with its queue set to the deployment's concurrency.

    Args:
        runtime: the loaded model and limits.
    """
    settings = runtime.settings
    cap = settings.max_thinking_tokens

    async def ask(question, chat_forced, chat_plain, min_tokens, max_tokens, num_waits, extrapolation, custom,
                  temperature, compare):
        try:
            question = check_question(question, settings)
            budget = budget_from_controls(settings, min_tokens, max_tokens, num_waits, extrapolation, custom)
            temperature = check_temperature(temperature)
            runtime.check_budget(budget)
        except HfS1Error as exc:
            # The error replaces the meter (and the telemetry), so the previous run's numbers do not stand next to
            # a request that never ran; the chats keep their history.
            yield gr.skip(), gr.skip(), f"⚠️ **Not run:** {exc}", None
            raise gr.Error(str(exc)) from None

        turn = uuid.uuid4().hex[:8]
        user = gr.ChatMessage(role="user", content=question)
        forced = ThoughtView(budget, key=f"{turn}-forced", label="Thinking (budget forcing)")
        plain = ThoughtView(None, key=f"{turn}-plain", label="Thinking (no budget forcing)") if compare else None
        sink = _LoopSink()
        # Set when this request ends for any reason; its generations then stop at their next decoding step. gradio
        # runs every step of a request in one task: when that task ends (finished, cancelled, or its client gone)
        # the event is set, whether or not gradio also closes this generator (it may only drop it, when cancelled
        # between two steps). Waiting is an `await`, so a cancel that arrives mid-step reaches `finally` at once.
        cancel = threading.Event()
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(lambda _: cancel.set())
        runtime.start(question, budget, temperature, "forced", sink, cancel=cancel)
        if plain is not None:
            # The same question with no bounds: only the Space's own token limits apply.
            unforced = ThinkingBudget(max_answer_tokens=settings.max_answer_tokens)
            runtime.start(question, unforced, temperature, "plain", sink, max_new_tokens=settings.max_new_tokens,
                          cancel=cancel)
        views = {"forced": forced, "plain": plain}
        history_forced = [*(chat_forced or []), user]
        history_plain = [*(chat_plain or []), user] if plain is not None else chat_plain

        def render():
            return (
                [*history_forced, *forced.messages()],
                [*history_plain, *plain.messages()] if plain is not None else gr.skip(),
                _meter(forced, plain),
                {"forced": _summary(forced), "unforced": _summary(plain) if plain is not None else None},
            )

        try:
            yield render()
            running = 1 + (plain is not None)
            while running:
                tag, chunk, payload = await sink.get()
                view = views[tag]
                if chunk is None:
                    running -= 1
                    if isinstance(payload, BaseException):
                        view.finish(None, error=f"{type(payload).__name__}: {payload}")
                    else:
                        view.finish(payload)
                else:
                    view.add(chunk)
                    view.thinking_tokens = payload
                yield render()
        finally:
            cancel.set()

    def check_bounds(min_value, max_value):
        # Live feedback as the sliders move; `ask` checks every value again on the server.
        try:
            budget_from_controls(settings, min_value, max_value, 0, "Wait")
        except HfS1Error as exc:
            return gr.update(value=f"⚠️ {exc}", visible=True)
        return gr.update(value="", visible=False)

    with gr.Blocks(title="s1 budget forcing") as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            # Question, meter, then the chats: the answer is the lowest thing to read and stays on screen.
            with gr.Column(scale=5):
                with gr.Row():
                    question = gr.Textbox(show_label=False, placeholder="Ask a short math question…",
                                          max_length=settings.max_question_chars, elem_id="question", scale=5)
                    send = gr.Button("Ask", variant="primary", elem_id="ask", scale=1)
                meter = gr.Markdown(METER_PLACEHOLDER, elem_id="token-meter")
                with gr.Row(equal_height=True):
                    chat_forced = gr.Chatbot(label="With budget forcing", elem_id="chat-forced", height=CHAT_HEIGHT,
                                             min_height=CHAT_MIN_HEIGHT, group_consecutive_messages=False)
                    with gr.Column(visible=False) as plain_column:
                        chat_plain = gr.Chatbot(label="Without budget forcing", elem_id="chat-plain",
                                                height=CHAT_HEIGHT, min_height=CHAT_MIN_HEIGHT,
                                                group_consecutive_messages=False)
            with gr.Column(scale=2, min_width=280):
                min_tokens = gr.Slider(0, cap, value=8, step=1, label="Min thinking tokens", elem_id="min-thinking")
                max_tokens = gr.Slider(0, cap, value=32, step=1, label="Max thinking tokens", elem_id="max-thinking")
                budget_error = gr.Markdown(visible=False, elem_id="budget-error")
                num_waits = gr.Slider(0, settings.max_waits, value=2, step=1, label="Number of Waits",
                                      info="Attempts to end thinking replaced by the string below",
                                      elem_id="num-waits")
                extrapolation = gr.Radio(list(EXTRAPOLATION_CHOICES), value="Wait", label="Extrapolation string",
                                         elem_id="extrapolation")
                custom = gr.Textbox(label="Custom string", max_length=settings.max_extrapolation_chars,
                                    visible=False, elem_id="custom-extrapolation")
                temperature = gr.Slider(0, 1.5, value=0, step=0.05, label="Temperature", info="0 = greedy",
                                        elem_id="temperature")
                compare = gr.Checkbox(False, label="Compare: the same question without budget forcing",
                                      elem_id="compare")
                with gr.Accordion("Run details", open=False):
                    details = gr.JSON(label="Telemetry", elem_id="details")
                gr.ClearButton([chat_forced, chat_plain, meter, details], value="Clear chat")
        gr.Examples(EXAMPLES, [question, min_tokens, max_tokens, num_waits, extrapolation], label="Examples")

        inputs = [question, chat_forced, chat_plain, min_tokens, max_tokens, num_waits, extrapolation, custom,
                  temperature, compare]
        outputs = [chat_forced, chat_plain, meter, details]
        send.click(ask, inputs, outputs, api_name="ask", concurrency_limit=settings.concurrency)
        question.submit(ask, inputs, outputs, api_name=False, concurrency_limit=settings.concurrency)
        extrapolation.change(lambda v: gr.update(visible=v == "custom"), extrapolation, custom, api_name=False,
                             queue=False)
        compare.change(lambda v: gr.update(visible=v), compare, plain_column, api_name=False, queue=False)
        for slider in (min_tokens, max_tokens):
            slider.change(check_bounds, [min_tokens, max_tokens], budget_error, api_name=False, queue=False)

    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
    return demo


def main() -> None:
    """Load the configured model and serve the Space (host and port from GRADIO_SERVER_NAME/PORT)."""
    runtime = SpaceRuntime.load(SpaceSettings.from_env())
    build_demo(runtime).launch()


if __name__ == "__main__":
    main()
