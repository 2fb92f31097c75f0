"""Budget forcing on transformers' continuous batching (`ContinuousBatchingManager`, what `generate_batch` runs on).

transformers builds a manager's logits processors from its generation config alone and takes no user processor.
Its per-request interface for its own warpers is `ContinuousBatchingLogitsProcessor`: `prepare_tensor_args` runs on
the host with the requests that get a token this step, `__call__` runs on the device with one int32 per row.
`BudgetForcingCBProcessor` is such a processor over the shared batch core (`BatchBudget`), and
`enable_budget_forcing(manager, processor)` puts it last in a manager's list before the manager starts: the
smallest change that works with the installed transformers, and the shape an upstream `logits_processor=` argument
would take.

How a step runs:

- Host (`prepare_tensor_args`): each request id gets a budget slot the first time it has a token to sample; the row's
  int32 is `2 * slot + committed` (`-1`: a request without a budget). A request seen before has, as its last input
  token, the token sampled for it at its previous step: that token is committed. The host never reads a token, so
  under async batching (the host prepares step N+1 before step N's token is known) the step stays correct: the
  token reaches the core on the device, where transformers carries it into the input ids.
- Device (`__call__`): stage writes first (new slots, freed slots, a longer injection log), then one
  `BatchBudget.step` for every row: no per-row Python.
- Slots are freed when their request leaves the scheduler (finished or cancelled); the request's injection log is
  kept for its telemetry (`tracker`, `stats`).

Per-request budgets: `manager.add_request(ids, max_new_tokens=..., thinking_budget={...})` (a `ThinkingBudget`, a
mapping of its fields or its JSON string; `None`: no budget). Requests without the key get the processor's
default budget.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import LogitsProcessorList
from transformers.generation.continuous_batching.cb_logits_processors import (
    ContinuousBatchingLogitsProcessor,
    ContinuousBatchingLogitsProcessorList,
)

from ..budget import BudgetError, BudgetStats, BudgetTracker, ThinkingBudget, validate
from ..formats import ThinkFormat, get_format, marker_tokens
from .batch_budget import BatchBudget, SlotSpec
from .request_budget import BUDGET_KEY, RESUME_KEY, parse_budget

__all__ = ["BudgetForcingCBProcessor", "enable_budget_forcing", "BUDGET_KEY", "RESUME_KEY"]

# Finished requests whose telemetry nobody took: past this many, the oldest is dropped (a server's memory).
KEPT = 4096


class BudgetForcingCBProcessor(ContinuousBatchingLogitsProcessor):
    r"""
    s1 budget forcing for transformers' continuous batching: per-request thinking budgets, one batched step per
    decode step, slots keyed by request id. Install it in a manager with `enable_budget_forcing` before
    `manager.start()`; `generate_with_budget(..., continuous_batching=True)` does it for you.

    It runs after the generation config's warpers (temperature, top-k, top-p), so with sampling it decides on the
    distribution the sampler really draws from: an end of thinking is replaced by "Wait" with exactly the
    probability the sampler gives it.

    Args:
        tokenizer (`PreTrainedTokenizerBase`):
            The model's tokenizer; the format's markers must round-trip through it.
        budget (`ThinkingBudget` or `dict`, *optional*):
            The budget of requests that do not name one in `thinking_budget`; `None` leaves them free.
        think_format (`str` or `ThinkFormat`, *optional*):
            `"s1"`, `"r1"` or a custom `ThinkFormat`; detected from the tokenizer's chat template when omitted.
        num_slots (`int`, *optional*, defaults to 64):
            Budget slots to start with (one per budgeted request that has started and not left the manager); the
            state grows by doubling when more requests run at once.
        fused (`bool`, *optional*):
            Run each step compiled (`hf_s1.engines.fused`); default: `HF_S1_FUSED`, else fused on CUDA only.

    Examples:

    ```python
    >>> from transformers import ContinuousBatchingConfig, GenerationConfig
    >>> from hf_s1 import ThinkingBudget, load_default_model
    >>> from hf_s1.engines.continuous import BudgetForcingCBProcessor, enable_budget_forcing
    >>> model, tokenizer = load_default_model()
    >>> chat = [{"role": "user", "content": "What is 2+3?"}]
    >>> ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) + "<|im_start|>think"
    >>> ids = tokenizer(ids)["input_ids"]
    >>> config = GenerationConfig(do_sample=False, eos_token_id=tokenizer.eos_token_id, max_new_tokens=40)
    >>> manager = model.init_continuous_batching(config, ContinuousBatchingConfig(num_blocks=8, page_size=64,
    ...                                          max_batch_tokens=256))
    >>> processor = enable_budget_forcing(manager, BudgetForcingCBProcessor(tokenizer))
    >>> manager.start()
    >>> rid = manager.add_request(ids, max_new_tokens=40, thinking_budget={"max_thinking_tokens": 8})
    >>> out = manager.get_result(rid, timeout=120)
    >>> manager.stop(block=True)
    >>> stats = processor.stats(rid, out.generated_tokens)
    >>> stats.thinking_tokens, stats.capped
    (8, True)

    ```
    """

    supported_kwargs: dict[str, type] = {BUDGET_KEY: object, RESUME_KEY: bool}
    ignored_kwargs: tuple[str, ...] = ()

    def __init__(self, tokenizer: Any, budget: ThinkingBudget | Mapping[str, Any] | None = None,
                 think_format: str | ThinkFormat | None = None, *, num_slots: int = 64,
                 fused: bool | None = None) -> None:
        if isinstance(num_slots, bool) or not isinstance(num_slots, int) or num_slots < 1:
            raise BudgetError(f"num_slots must be a positive int, got {num_slots!r}.")
        self.think_format = get_format(think_format, tokenizer)
        self.markers = marker_tokens(tokenizer, self.think_format)
        self.default_budget = None if budget is None else self._checked(budget, "budget", resumes=True)
        # Slot 0 takes the rows without a budget (written, never read); requests get 1..capacity-1.
        self._capacity = num_slots + 1
        self.fused = fused
        self.do_sample = False  # set from the manager's generation config by enable_budget_forcing
        self._core: BatchBudget | None = None
        self._scheduler: Any = None  # a callable returning the manager's live scheduler (None before it starts)
        self._slot_of: dict[str, int] = {}  # request id -> slot; -1: the request has no budget
        self._requests: dict[str, tuple[ThinkingBudget, list[int]]] = {}  # id -> (budget, prompt), for telemetry
        self._free = list(range(self._capacity - 1, 0, -1))
        self._entering: list[tuple[int, SlotSpec, list[int]]] = []
        self._leaving: list[tuple[str, int]] = []
        self._kept: OrderedDict[str, torch.Tensor] = OrderedDict()  # finished requests' injection logs
        self._log_need = 0

    # -- budgets of requests ---------------------------------------------------------------------------------

    def _checked(self, raw: Any, where: str, *, resumes: bool) -> ThinkingBudget | None:
        budget = parse_budget(raw, where, resumes=resumes, driver="generate_with_budget(..., continuous_batching=True)",
                              resume_flag=f"{RESUME_KEY}=True")
        if budget is not None:
            try:
                validate(budget, self.markers)  # the checks that need the tokenizer (strings that would end the row...)
            except BudgetError as exc:
                raise BudgetError(f"{where}: {exc}") from None
        return budget

    def request_budget(self, kwargs: Mapping[str, Any]) -> ThinkingBudget | None:
        """The budget a request's `logit_processor_kwargs` ask for (`None`: none). Raises `BudgetError` naming the
        fix; the manager calls it when the request arrives (`check_kwargs`), so a bad budget fails that request."""
        if BUDGET_KEY not in kwargs:
            return self.default_budget
        return self._checked(kwargs[BUDGET_KEY], BUDGET_KEY, resumes=kwargs.get(RESUME_KEY) is True)

    # -- ContinuousBatchingLogitsProcessor ---------------------------------------------------------------------

    def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
        int32_tensor.fill_(-1)  # padded rows: no budget

    def _sweep(self) -> None:
        """Free the slots of requests that left the scheduler (finished, cancelled, failed)."""
        scheduler = self._scheduler() if self._scheduler is not None else None
        if scheduler is None:
            return
        active, waiting = scheduler.active_requests, scheduler.waiting_requests
        if len(self._slot_of) <= len(active) + len(waiting):
            return  # every tracked request may still be live (a cheap test, most steps)
        for rid in [r for r in self._slot_of if r not in active and r not in waiting]:
            slot = self._slot_of.pop(rid)
            if slot >= 0:  # free now: its release is flushed ahead of any request entering it
                self._leaving.append((rid, slot))
                self._free.append(slot)

    def _admit(self, state: Any) -> int:
        rid = state.request_id
        budget = self.request_budget(state.logit_processor_kwargs)
        if budget is None:
            self._slot_of[rid] = -1
            return -1
        if state.generated_len() or state._true_initial_tokens:
            raise BudgetError(f"request {rid!r} reached budget forcing with tokens already generated (a forked "
                              f"sequence?): budget forcing needs num_return_sequences=1; repeat the prompt instead.")
        if not self._free:  # double the state (flushed before the new slots are used)
            self._free = list(range(2 * self._capacity - 1, self._capacity - 1, -1))
            self._capacity *= 2
        slot = self._free.pop()
        prompt = list(state.initial_tokens)
        self._slot_of[rid] = slot
        self._requests[rid] = (budget, prompt)
        self._entering.append((slot, SlotSpec(budget, self.markers, greedy=not self.do_sample), prompt))
        return slot

    def prepare_tensor_args(self, requests_with_new_token: list[Any]) -> torch.Tensor:
        self._sweep()
        codes = []
        need = 0
        for future in requests_with_new_token:
            state = future.state
            slot = self._slot_of.get(state.request_id)
            if slot is None:  # its first token: nothing to commit yet
                slot = self._admit(state)
                codes.append(-1 if slot < 0 else 2 * slot)
            else:
                codes.append(-1 if slot < 0 else 2 * slot + 1)
            need = max(need, state.generated_len())
        # The token decided now sits at most one position past what the host knows (async batching).
        self._log_need = max(self._log_need, need + 2)
        return torch.tensor(codes, dtype=torch.int32)

    def _flush(self, device: torch.device) -> None:
        """Apply what the host staged, on the step's stream, in order with the steps."""
        if self._core is None:
            self._core = BatchBudget(self._capacity, device, log_injections=True, fused=self.fused)
        core = self._core
        if core.num_slots < self._capacity:
            core.add_slots(self._capacity - core.num_slots)
        if self._leaving:
            for rid, slot in self._leaving:
                if rid in self._requests:
                    self._kept[rid] = core.log_row(slot)
                    while len(self._kept) > KEPT:
                        dropped, _ = self._kept.popitem(last=False)
                        self._requests.pop(dropped, None)
            core.release([slot for _, slot in self._leaving])
            self._leaving = []
        if self._entering:
            slots = [slot for slot, _, _ in self._entering]
            core.set_slots(slots, [spec for _, spec, _ in self._entering])
            width = max(1, max(len(p) for _, _, p in self._entering))
            prompts = torch.tensor([[-1] * (width - len(p)) + p for _, _, p in self._entering], device=device)
            core.start(slots, prompts, torch.tensor([len(p) for _, _, p in self._entering], device=device))
            self._entering = []
        core.reserve_log(self._log_need)

    def __call__(self, scores: torch.FloatTensor, tensor_arg: torch.Tensor, input_ids: torch.Tensor | None = None,
                 allowed: torch.Tensor | None = None) -> torch.FloatTensor:
        if input_ids is None:
            raise BudgetError("BudgetForcingCBProcessor needs the rows' last input ids: install it with "
                              "hf_s1.engines.continuous.enable_budget_forcing(manager, processor).")
        self._flush(scores.device)
        n = scores.shape[0]
        code = tensor_arg[:n].long()
        active = code >= 0
        slot = torch.where(active, code >> 1, 0)  # rows without a budget use the spare slot
        committed = active & (code & 1).bool()
        probs = uniform = None
        if self.do_sample:  # last in the list: these are the scores the sampler draws from
            probs = torch.softmax(scores.float(), dim=-1)
            uniform = torch.rand(n, device=scores.device)
        # `allowed`: the scores before the warpers; a token only they removed (top-p...) may still be forced or
        # injected, as in generate_with_budget.
        self._core.step(scores, slot, active, input_ids.long(), committed, commit_slot=slot, probs=probs,
                        uniform=uniform, allowed=None if allowed is scores else allowed)
        return scores

    # -- telemetry ---------------------------------------------------------------------------------------------

    def _injected(self, request_id: str) -> set[int]:
        kept = self._kept.get(request_id)
        if kept is not None:
            return set(torch.nonzero(kept).flatten().tolist())
        slot = self._slot_of.get(request_id, -1)
        return self._core.injected_positions(slot) if slot >= 0 and self._core is not None else set()

    def tracker(self, request_id: str, generated_tokens: Sequence[int]) -> BudgetTracker | None:
        """The `BudgetTracker` of a request, replayed over its generated tokens with the exact record of where
        extrapolations were injected (`None`: the request had no budget). Reads the device."""
        entry = self._requests.get(request_id)
        if entry is None:
            return None
        budget, prompt = entry
        tracker = BudgetTracker(budget, self.markers)
        tracker.start(prompt)
        tracker.replay(list(generated_tokens), injected=self._injected(request_id))
        return tracker

    def stats(self, request_id: str, generated_tokens: Sequence[int]) -> BudgetStats | None:
        """Telemetry of a request (thinking tokens, waits, capped...) from its generated tokens."""
        tracker = self.tracker(request_id, generated_tokens)
        return None if tracker is None else tracker.finish(list(generated_tokens))

    def forget(self, request_ids: Sequence[str]) -> None:
        """Drop the kept telemetry of finished requests (a long-running manager's client calls it once read)."""
        for rid in request_ids:
            self._kept.pop(rid, None)
            if rid not in self._slot_of:
                self._requests.pop(rid, None)


class BudgetForcingLogitsProcessorList(ContinuousBatchingLogitsProcessorList):
    """A manager's processor list with the budget processor last. It differs from transformers' list in two
    places: the budget processor also gets the rows' last input ids (the committed tokens, on the device), and a
    request's budget is validated when it arrives."""

    def __init__(self, base: ContinuousBatchingLogitsProcessorList, processor: BudgetForcingCBProcessor) -> None:
        super().__init__(LogitsProcessorList([*base.logits_processor, processor]), per_request_processors=False,
                         drop_unsupported_processors=False)
        # transformers counts argument rows when it converts its own warpers; count every per-request processor.
        self.tensors_required = sum(isinstance(p, ContinuousBatchingLogitsProcessor) for p in self.logits_processor)
        self.budget_processor = processor

    def check_kwargs(self, kwargs: dict) -> None:
        super().check_kwargs(kwargs)
        self.budget_processor.request_budget(kwargs or {})

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor,
                 logits_processor_args: torch.Tensor) -> torch.FloatTensor:
        i, allowed = 0, scores
        for processor in self.logits_processor:
            if processor is self.budget_processor:
                scores = processor(scores, logits_processor_args[i], input_ids, allowed)
                i += 1
            elif isinstance(processor, ContinuousBatchingLogitsProcessor):
                scores = processor(scores, logits_processor_args[i])
                i += 1
            else:
                scores = processor(input_ids, scores)
            if not type(processor).__name__.endswith("LogitsWarper"):  # what the stages before the warpers allow
                allowed = scores
        return scores


def enable_budget_forcing(manager: Any, processor: BudgetForcingCBProcessor) -> BudgetForcingCBProcessor:
    """Put `processor` last in `manager`'s logits processors (a `ContinuousBatchingManager` from
    `model.init_continuous_batching`, before `manager.start()`). Returns the processor (for its telemetry).

    Raises:
        BudgetError: the manager already runs, forks sequences (`num_return_sequences > 1`), or captures its step
            in CUDA graphs (the budget step admits requests on the host each step: pass
            `ContinuousBatchingConfig(use_cuda_graph=False)`).
    """
    if not isinstance(processor, BudgetForcingCBProcessor):
        raise BudgetError(f"processor must be a BudgetForcingCBProcessor, got {type(processor).__name__}.")
    if manager.is_running():
        raise BudgetError("the manager is already running: call enable_budget_forcing before manager.start().")
    if getattr(manager, "num_return_sequences", 1) != 1:
        raise BudgetError("budget forcing follows one sequence per request: set num_return_sequences=1 and repeat "
                          "the prompt instead.")
    graphs = manager.continuous_batching_config.use_cuda_graph
    if any(graphs) if isinstance(graphs, tuple) else bool(graphs):
        raise BudgetError("budget forcing admits requests on the host at each step, which a captured CUDA graph "
                          "would skip: pass ContinuousBatchingConfig(use_cuda_graph=False).")
    if isinstance(manager.logit_processor, BudgetForcingLogitsProcessorList):
        raise BudgetError("this manager already has a budget processor.")
    manager.logit_processor = BudgetForcingLogitsProcessorList(manager.logit_processor, processor)
    processor.do_sample = bool(getattr(manager.generation_config, "do_sample", False))
    processor._scheduler = lambda: getattr(getattr(manager, "batch_processor", None), "scheduler", None)
    return processor


def cpu_config(rows: Sequence[Sequence[int]], limits: Sequence[int]) -> Any:
    """A `ContinuousBatchingConfig` sized for this call on CPU: transformers sizes its paged cache for a GPU
    (about 256k tokens, 8k tokens a step), which on a CPU costs more per step than the model itself."""
    from transformers import ContinuousBatchingConfig

    page = 64
    pages = sum(-(-(len(r) + n + 1) // page) for r, n in zip(rows, limits))
    return ContinuousBatchingConfig(page_size=page, num_blocks=max(8, pages + 1), max_batch_tokens=512,
                                    use_cuda_graph=False)


def run_requests(model: Any, tokenizer: Any, rows: Sequence[Sequence[int]], budgets: Sequence[ThinkingBudget],
                 limits: Sequence[int], *, think_format: ThinkFormat, generation_config: Any,
                 continuous_batching_config: Any = None, timeout: float = 600.0
                 ) -> tuple[list[list[int]], list[str], BudgetForcingCBProcessor]:
    """Generate `rows` (prompt ids) on a continuous batching manager of `model`, each request with its budget and
    token limit; return the generated ids, the request ids and the processor (for each request's tracker).
    The one continuous-batching path of `generate_with_budget`."""
    config = continuous_batching_config
    if config is None:
        config = cpu_config(rows, limits) if getattr(model, "device", torch.device("cpu")).type == "cpu" else None
        if config is None:
            from transformers import ContinuousBatchingConfig

            config = ContinuousBatchingConfig(use_cuda_graph=False)
    manager = model.init_continuous_batching(generation_config, config)
    processor = enable_budget_forcing(manager, BudgetForcingCBProcessor(tokenizer, None, think_format))
    manager.start()
    try:
        ids = [manager.add_request(list(r), max_new_tokens=int(n), **{BUDGET_KEY: b, RESUME_KEY: True})
               for r, b, n in zip(rows, budgets, limits)]
        results: dict[str, Any] = {}
        while len(results) < len(ids):
            out = manager.get_result(timeout=timeout)
            if out is None:
                raise RuntimeError(f"continuous batching returned no result in {timeout:.0f} s "
                                   f"({len(results)} of {len(ids)} requests done).")
            if out.error is not None:
                raise BudgetError(f"request {out.request_id} failed: {out.error}")
            if out.is_finished():
                results[out.request_id] = out
    finally:
        manager.stop(block=True)
        manager.destroy()
    return [list(results[i].generated_tokens) for i in ids], ids, processor
