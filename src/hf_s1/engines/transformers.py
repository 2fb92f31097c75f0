"""Budget forcing for `transformers`: a logits processor for `model.generate` and `generate_with_budget()`."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Mapping, Sequence
from queue import Queue
from typing import Any, Union

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList
from transformers.generation import (
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.generation.streamers import BaseStreamer

from ..budget import (
    BudgetError,
    BudgetLike,
    BudgetStats,
    BudgetTracker,
    ThinkingBudget,
    TokenKind,
    answer_allowance,
    as_budgets,
    close_answer,
    s1_answer_cut,
    generation_allowance,
    token_allowance,
    validate,
)
from ..formats import ThinkFormat, get_format, marker_tokens
from ..models import context_length
from ..prompts import Prompt, check_sampling, prepare_requests
from ..results import BudgetedGeneration, result_from_tracker
from .batch_budget import BatchBudget, SlotSpec

__all__ = [
    "BudgetForcingLogitsProcessor",
    "generate_with_budget",
    "stream_with_budget",
    "BudgetStreamer",
    "ThoughtChunk",
    "sampling_warpers",
    "prepare_generate",
    "check_one_sequence",
    "s1_reference_generate",
]

def sampling_warpers(config: GenerationConfig | None) -> LogitsProcessorList:
    """The temperature / top-k / top-p / min-p warpers `generate` would apply for `config` (empty when greedy)."""
    out = LogitsProcessorList()
    if config is None or not config.do_sample:
        return out
    # Unset fields take generate()'s global defaults (e.g. top_k=50), as generate() itself resolves them.
    config = copy.deepcopy(config)
    defaults = getattr(GenerationConfig, "_get_default_generation_params", None)
    if defaults is not None:
        config.update(**defaults(), defaults_only=True)
    if config.temperature is not None and config.temperature != 1.0:
        out.append(TemperatureLogitsWarper(config.temperature))
    if config.top_k is not None and config.top_k != 0:
        out.append(TopKLogitsWarper(top_k=config.top_k, min_tokens_to_keep=1))
    if config.top_p is not None and config.top_p < 1.0:
        out.append(TopPLogitsWarper(top_p=config.top_p, min_tokens_to_keep=1))
    if getattr(config, "min_p", None) is not None:
        out.append(MinPLogitsWarper(min_p=config.min_p, min_tokens_to_keep=1))
    unsupported = {
        "typical_p": (getattr(config, "typical_p", None) or 1.0) < 1.0,
        "epsilon_cutoff": (getattr(config, "epsilon_cutoff", None) or 0.0) > 0.0,
        "eta_cutoff": (getattr(config, "eta_cutoff", None) or 0.0) > 0.0,
        "top_h": getattr(config, "top_h", None) is not None,
    }
    if any(unsupported.values()):
        names = [k for k, v in unsupported.items() if v]
        raise BudgetError(f"budget forcing computes end probabilities with temperature/top_k/top_p/min_p only; "
                          f"unset {names} or sample without them.")
    return out


class BudgetForcingLogitsProcessor(LogitsProcessor):
    r"""
    [`LogitsProcessor`] that enforces an s1 thinking budget (arXiv 2501.19393) in a single generation pass:
    at the upper bound it forces the end-of-thinking marker and an answer prefix; below the lower bound it
    replaces every attempt to end thinking by an extrapolation string such as "Wait".

    The processor keeps one state machine per batch row, created on the first call of a generation (a new
    call of `generate` resets it). Rows are independent: each may have its own budget. Left padding only.

    Greedy decoding treats the arg-max as "what the model would emit". With sampling, pass the
    `generation_config` you give to `generate`: an end is then attempted with exactly the probability the
    sampler (temperature, top-k, top-p, min-p) gives it, and otherwise banned. Without `generation_config`
    the processor uses greedy semantics. (`generate` applies its warpers after user processors, so with top-k /
    top-p the tokens left after a ban are re-truncated; `generate_with_budget` avoids that by running the warpers
    ahead of the processor, which makes the whole step exactly "sample, then replace an end".)

    Args:
        tokenizer (`PreTrainedTokenizerBase`):
            The model's tokenizer; the format's markers must round-trip through it.
        budget (`ThinkingBudget` or `list[ThinkingBudget]`):
            One budget for every row, or one per prompt. With `num_return_sequences=k`, a list of `n` budgets
            covers the `n * k` rows (each budget repeated `k` times, as `generate` expands prompts).
        think_format (`str` or `ThinkFormat`, *optional*):
            `"s1"`, `"r1"` or a custom `ThinkFormat`; detected from the tokenizer's chat template when omitted.
        generation_config (`GenerationConfig`, *optional*):
            The configuration `generate` samples with; only `do_sample`, `temperature`, `top_k`, `top_p` and
            `min_p` are read.
        fused (`bool`, *optional*):
            Run each step as one compiled graph (`torch.compile`, see `hf_s1.engines.fused`) instead of a few
            hundred eager torch ops; the same decisions either way. Default: the `HF_S1_FUSED` environment
            variable, else fused on CUDA and eager on CPU.

    Thinking starts after the think-start marker: when the prompt does not end inside an open thinking block,
    the processor writes the marker as the first generated tokens.

    A model published with `hf_s1.hub.push_model` stores its policy in `model.generation_config.thinking_budget`
    (`{"version", "budget", "think_format"}`). Plain `generate` and `pipeline` ignore that entry; pass the mapping
    as `budget`, or use `BudgetForcingLogitsProcessor.from_model(model, tokenizer)`, to apply it.

    With `pipeline("text-generation", ...)`, pass the processor as `logits_processor=LogitsProcessorList([...])`.
    The pipeline decodes with `skip_special_tokens=True` by default, which drops the s1 markers (`<|im_start|>`
    is a special token) and with them the border between thinking and answer. To get the two apart, call it with
    `skip_special_tokens=False, return_full_text=False` and split the text at `processor.think_format.think_end`
    (the thinking starts after `think_format.think_start`); `processor.stats(new_ids)` needs the token ids
    (`return_tensors=True`). `generate_with_budget` returns `thinking`, `answer` and the telemetry directly.

    Examples:

    ```python
    >>> from transformers import LogitsProcessorList
    >>> from hf_s1 import BudgetForcingLogitsProcessor, ThinkingBudget, load_default_model
    >>> model, tokenizer = load_default_model()
    >>> text = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+3?"}], tokenize=False,
    ...                                      add_generation_prompt=True) + "<|im_start|>think"
    >>> inputs = tokenizer(text, return_tensors="pt")
    >>> processor = BudgetForcingLogitsProcessor(tokenizer, ThinkingBudget(max_thinking_tokens=8))
    >>> out = model.generate(**inputs, logits_processor=LogitsProcessorList([processor]), max_new_tokens=40,
    ...                      do_sample=False)
    >>> stats = processor.stats(out[:, inputs["input_ids"].shape[1]:])[0]
    >>> stats.thinking_tokens, stats.capped
    (8, True)
    >>> "<|im_start|>answer\nFinal Answer:" in tokenizer.decode(out[0])
    True

    ```
    """

    def __init__(
        self,
        tokenizer: Any,
        budget: BudgetLike,
        think_format: str | ThinkFormat | None = None,
        generation_config: GenerationConfig | None = None,
        *,
        fused: bool | None = None,
    ) -> None:
        budget, think_format = _policy_parts(budget, think_format)
        budgets = as_budgets(budget)
        if generation_config is not None and not isinstance(generation_config, GenerationConfig):
            raise BudgetError(f"generation_config must be a transformers GenerationConfig, got {type(generation_config).__name__}.")
        self.think_format = get_format(think_format, tokenizer)
        self.markers = marker_tokens(tokenizer, self.think_format)
        # "auto" is resolved per generation from the allowance (generation_config.max_new_tokens) and the prompts.
        self._allowance = getattr(generation_config, "max_new_tokens", None)
        if any(b.is_auto for b in budgets) and self._allowance is None:
            raise BudgetError('max_thinking_tokens="auto" needs the generation allowance: pass generation_config='
                              "GenerationConfig(max_new_tokens=...) to the processor, or use generate_with_budget.")
        for b in budgets:  # tokenizes and validates the budget strings now, not mid-generation
            validate(b, self.markers)
        self.budgets = budgets
        self.pad_token_id = getattr(tokenizer, "pad_token_id", None)
        self.do_sample = bool(generation_config is not None and generation_config.do_sample)
        self.fused = fused
        self.warpers = sampling_warpers(generation_config)
        self.trackers: list[BudgetTracker] = []  # filled by stats(): each row's telemetry, replayed from its ids
        self._core: BatchBudget | None = None
        self._prompts: torch.Tensor | None = None
        self._streamed: dict[int, BudgetTracker] = {}
        self._length = -1
        self._last: torch.Tensor | None = None
        self._reordered: torch.Tensor | None = None
        # Set by generate_with_budget, which samples the returned scores with no warper after this processor.
        self._output_warped = False

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, *, think_format: str | ThinkFormat | None = None,
                   generation_config: GenerationConfig | None = None) -> BudgetForcingLogitsProcessor:
        """The processor for the policy stored with a model (`model.generation_config.thinking_budget`, written by
        `hf_s1.hub.push_model`): its budget, and its think format unless `think_format` is given. Plain `generate`
        and `pipeline` ignore that entry; this applies it:

        `model.generate(**inputs, logits_processor=[BudgetForcingLogitsProcessor.from_model(model, tokenizer)])`
        """
        from ..hub.policy import stored_policy

        policy = stored_policy(model)
        if policy is None:
            raise BudgetError("this model has no stored thinking budget (generation_config.thinking_budget): pass a "
                              "budget, BudgetForcingLogitsProcessor(tokenizer, ThinkingBudget(...)).")
        fmt = think_format if think_format is not None else policy.think_format
        return cls(tokenizer, policy.budget, fmt, generation_config)

    # -- generate() protocol ---------------------------------------------------------------------

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        batch, length = input_ids.shape
        core = self._core
        if core is not None and batch == core.num_slots and length == self._length + 1:
            # The next step of the same generation: commit the token sampled since the last call. Rows must
            # extend the sequences seen so far; a reordering (beam search) is detected on the device and
            # reported by stats(), so that no step waits for the device.
            # Eager: None commits every row without a select per state field; fused: one graph for both cases.
            token, committed = input_ids[:, -1], (self._all_rows if core.fused else None)
            self._reordered |= input_ids[:, -2] != self._last
        else:
            core = self._begin(input_ids)
            token, committed = input_ids[:, -1], self._no_rows  # the first step has no new token to commit
        self._last = input_ids[:, -1]
        self._length = length
        core.reserve_log(length - self._prompts.shape[1] + 1)
        probs = uniform = allowed = None
        if self.do_sample:
            warped = self.warpers(input_ids, scores)
            probs = torch.softmax(warped.float(), dim=-1)
            uniform = torch.rand(batch, device=scores.device)  # torch's RNG: set_seed makes runs reproducible
            if self._output_warped:
                # generate_with_budget samples these scores as they are: the step is then exactly "sample, then
                # replace an end". Only the stages before this one may forbid a forced token.
                scores, allowed = warped, scores
        # Commit and decide in one call (one compiled graph on the fused path; the same graph on every step).
        core.step(scores, self._slots, self._all_rows, token, committed, commit_slot=self._commit_slots, probs=probs,
                  uniform=uniform, allowed=allowed)
        return scores

    def _begin(self, input_ids: torch.LongTensor) -> BatchBudget:
        batch = input_ids.shape[0]
        if batch % len(self.budgets):
            raise BudgetError(
                f"{len(self.budgets)} budgets for a batch of {batch} rows: pass one budget per prompt, or one for all."
            )
        repeat = batch // len(self.budgets)
        if self.pad_token_id is not None and batch > 1:
            ends_with_pad = (input_ids[:, -1] == self.pad_token_id).tolist()
            if any(ends_with_pad) and not all(ends_with_pad):
                raise BudgetError("the batch is right-padded: set tokenizer.padding_side = 'left' before tokenizing.")
        core = BatchBudget(batch, input_ids.device, log_injections=True, fused=self.fused)
        budgets = [b.resolve(self.markers, allowance=self._allowance, longest_prompt=input_ids.shape[1]) if b.is_auto
                   else b for b in self.budgets]  # left padding: the width is the longest prompt
        specs = [SlotSpec(budgets[row // repeat], self.markers, greedy=not self.do_sample) for row in range(batch)]
        core.set_slots(range(batch), specs)
        core.start(range(batch), input_ids)
        self._core, self._prompts, self.trackers, self._streamed = core, input_ids, [], {}
        self._slots = core.whole()
        # The same slots as another tensor: with the fused step, vLLM and transformers then share one graph.
        self._commit_slots = self._slots if not core.fused else self._slots.clone()
        self._all_rows = torch.ones(batch, dtype=torch.bool, device=input_ids.device)
        self._no_rows = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        self._reordered = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        return core

    # -- results ---------------------------------------------------------------------------------

    def _tracker(self, row: int) -> BudgetTracker:
        tracker = BudgetTracker(self._core.specs[row].budget, self.markers)
        tracker.start(self._prompts[row].tolist())
        return tracker

    def stats(self, generated_ids: torch.LongTensor | Sequence[Sequence[int]]) -> list[BudgetStats]:
        """Telemetry per row of the last generation, rebuilt from `generated_ids` (the new tokens, prompt removed)
        with the exact record of where extrapolations were injected. Also sets `self.trackers`."""
        rows = generated_ids.tolist() if isinstance(generated_ids, torch.Tensor) else generated_ids
        if self._core is None or len(rows) != self._core.num_slots:
            raise BudgetError(f"stats() got {len(rows)} rows for a generation of "
                              f"{0 if self._core is None else self._core.num_slots}.")
        if bool(self._reordered.any()):
            raise BudgetError("batch rows were reordered between steps (beam search?): use num_beams=1.")
        self.trackers = []
        for row, ids in enumerate(rows):
            tracker = self._tracker(row)
            tracker.replay(ids, injected=self._core.injected_positions(row))
            tracker.finish(ids)
            self.trackers.append(tracker)
        return [t.stats for t in self.trackers]

    def observe_streamed(self, row: int, token_id: int) -> TokenKind:
        """Classify a token as soon as it is sampled (used by `BudgetStreamer`, which runs before the next call)."""
        tracker = self._streamed.get(row)
        if tracker is None:
            tracker = self._streamed[row] = self._tracker(row)
        tracker.replay([token_id], injected=_InjectionLog(self._core, row))
        return tracker.kinds[-1]

    def live_stats(self, row: int = 0) -> BudgetStats | None:
        """Telemetry of a streamed row so far (None before its first token)."""
        tracker = self._streamed.get(row)
        return None if tracker is None else tracker.stats


def _policy_parts(budget: Any, think_format: Any) -> tuple[Any, Any]:
    """A stored policy (`{"version", "budget", "think_format"}`, as in `generation_config.thinking_budget`, or a
    `BudgetPolicy`) as its budget and format; any other budget is returned as it is."""
    if (isinstance(budget, Mapping) and "budget" in budget) or (
            hasattr(budget, "budget") and hasattr(budget, "think_format")):
        from ..hub.policy import BudgetPolicy

        policy = BudgetPolicy.from_dict(budget)
        return policy.budget, think_format if think_format is not None else policy.think_format
    return budget, think_format


class _InjectionLog:
    """`position in log`: whether the core injected an extrapolation at that generated position of `row`."""

    def __init__(self, core: BatchBudget, row: int) -> None:
        self._core, self._row = core, row

    def __contains__(self, position: object) -> bool:
        log = self._core.injected
        return isinstance(position, int) and position < log.shape[1] - 1 and bool(log[self._row, position])


# ---- helpers -----------------------------------------------------------------------------------------


def _sampling_config(do_sample: bool, temperature: float, top_p: float, top_k: int, min_p: float | None):
    if not do_sample:  # check_sampling has validated the values
        return None
    return GenerationConfig(do_sample=True, temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p)


def generate_with_budget(
    model: Any,
    tokenizer: Any,
    prompts: Union[Prompt, Sequence[Prompt]],
    budget: BudgetLike,
    *,
    think_format: str | ThinkFormat | None = None,
    system_prompt: str | None = None,
    chat_template: bool = True,
    chat_template_kwargs: Mapping[str, Any] | None = None,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    min_p: float | None = None,
    streamer: BaseStreamer | None = None,
    continuous_batching: Any = False,
    **generate_kwargs: Any,
) -> list[BudgetedGeneration]:
    """Generate with s1 budget forcing in one pass per batch and return one `BudgetedGeneration` per prompt.

    Args:
        model: a causal LM.
        tokenizer: its tokenizer (left padding is set for the call).
        prompts: a question, a chat (list of messages), or a list of either.
        budget: one `ThinkingBudget` (or dict) for all prompts, or one per prompt.
        think_format: a preset name (`"s1"`, `"qwen3"`, `"gpt-oss"`, ...: `hf_s1.formats.PRESETS`), a
            `ThinkFormat`, or None: read from the model (`hf_s1.formats.resolve_format`; an error when it cannot be).
        system_prompt: prepended as a system message when a prompt has none.
        chat_template: `False` uses prompts as plain text followed by the think-start marker.
        chat_template_kwargs: keywords for the chat template (`{"enable_thinking": False}`, `reasoning_effort`,
            ...), as `apply_chat_template` takes them. A prompt the template renders with thinking switched off is
            answered without thinking (`thinking_tokens == 0`), never re-opened.
        batch_size: prompts per `generate` call.
        max_new_tokens: per-batch token limit; by default what the budget needs (start marker + thinking cap +
            cut + answer allowance), or the rest of the context without a cap. Rows that hit it report
            `finish_reason="length"`.
        do_sample, temperature, top_p, top_k, min_p: sampling settings. Sampled runs follow s1's semantics
            exactly: the warpers run *before* the budget processor, so an end is replaced by "Wait" with the
            probability the sampler gives it.
        streamer: a `BudgetStreamer` (marks thoughts, waits and the cut) or any transformers streamer;
            batch of one prompt only, as in `generate`.
        continuous_batching: `True` (or a `ContinuousBatchingConfig`) runs every prompt as its own request on
            transformers' continuous batching (`hf_s1.engines.continuous`): each request stops at its own end instead
            of waiting for the longest row of its batch, and `batch_size` does not apply. The s1 profile's second
            call (rows whose rounds ran past the cap) runs on `generate`.
        generate_kwargs: passed to `model.generate` (e.g. `repetition_penalty`); not with continuous batching.

    Examples:

    ```python
    >>> from hf_s1 import ThinkingBudget, generate_with_budget, load_default_model
    >>> model, tokenizer = load_default_model()
    >>> out = generate_with_budget(model, tokenizer, ["What is 2+3?", "What is 7*6?"],
    ...                            ThinkingBudget(min_thinking_tokens=12, max_thinking_tokens=24, max_answer_tokens=16))
    >>> [12 <= o.thinking_tokens <= 24 for o in out]
    [True, True]
    >>> out[0].finish_reason in ("stop", "length")
    True

    ```
    """
    req = prepare_requests(tokenizer, prompts, budget, think_format=think_format, system_prompt=system_prompt,
                           chat_template=chat_template, chat_template_kwargs=chat_template_kwargs)
    context = context_length(model)
    limits = req.token_limits(context, max_new_tokens)  # resolves "auto" budgets for the whole call
    prompt_list, texts, budgets, fmt, markers = req.prompts, req.texts, req.budgets, req.think_format, req.markers
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise BudgetError(f"batch_size must be a positive int, got {batch_size!r}.")
    if streamer is not None and len(prompt_list) > 1:
        raise BudgetError("a streamer follows one sequence: pass a single prompt with streamer=.")
    if streamer is not None and budgets[0].profile == "s1":
        raise BudgetError("a streamer follows one pass, and the s1 profile may answer in a second call (when its "
                          "rounds run past the cap): stream with profile='hf-s1', or call without a streamer.")
    if generate_kwargs.get("num_return_sequences", 1) != 1:
        raise BudgetError("num_return_sequences is not supported here: repeat the prompt in the list instead "
                          "(e.g. prompts * k), each copy gets its own result.")
    check_one_sequence(generate_kwargs.get("num_beams", 1))
    check_sampling(do_sample, temperature, top_p, top_k, min_p, generate_kwargs)
    sampling = _sampling_config(do_sample, temperature, top_p, top_k, min_p)
    user_processors = LogitsProcessorList(generate_kwargs.pop("logits_processor", None) or [])
    device = getattr(model, "device", torch.device("cpu"))

    results: list[BudgetedGeneration] = []
    pad_id = _pad_token_id(tokenizer, markers)

    def run_static(start: int, chunk: list[list[int]], chunk_budgets: list[ThinkingBudget]):
        enc = _left_pad(chunk, pad_id, device)
        prompt_len = enc["input_ids"].shape[1]
        limit = max(limits[start : start + len(chunk)])
        if context is not None:  # left padding widens the shorter prompts
            limit = min(limit, max(context - prompt_len, 1))
        processor = BudgetForcingLogitsProcessor(tokenizer, chunk_budgets, fmt, sampling)
        # The processor applies the sampler's warpers itself, decides on the real distribution and returns
        # warped scores; generate then samples at temperature 1 with no further truncation.
        processor._output_warped = True
        if isinstance(streamer, BudgetStreamer):
            streamer.attach(processor)
        processors = LogitsProcessorList([*user_processors, processor])
        out = model.generate(
            **enc,
            logits_processor=processors,
            max_new_tokens=limit,
            do_sample=bool(sampling),
            temperature=1.0 if sampling else None,
            top_k=0 if sampling else None,
            top_p=1.0 if sampling else None,
            min_p=None,
            pad_token_id=pad_id,
            eos_token_id=list(markers.stop_ids),
            streamer=streamer,
            **generate_kwargs,
        )
        return out[:, prompt_len:].tolist(), lambda new: (processor.stats(new), processor.trackers)[1]

    def run_continuous(start: int, chunk: list[list[int]], chunk_budgets: list[ThinkingBudget]):
        from .continuous import run_requests

        config = GenerationConfig(do_sample=bool(sampling), eos_token_id=list(markers.stop_ids), pad_token_id=pad_id,
                                  max_new_tokens=max(limits), **(dict(temperature=temperature, top_p=top_p,
                                  top_k=top_k, min_p=min_p) if sampling else {}))
        new, ids, processor = run_requests(
            model, tokenizer, chunk, chunk_budgets, limits, think_format=fmt, generation_config=config,
            continuous_batching_config=None if continuous_batching is True else continuous_batching)

        def trackers(rows: list[list[int]]) -> list[BudgetTracker]:
            found = [processor.tracker(i, r) for i, r in zip(ids, rows)]
            for t, r in zip(found, rows):
                t.finish(r)
            return found

        return new, trackers

    from transformers import ContinuousBatchingConfig

    if not isinstance(continuous_batching, (bool, type(None), ContinuousBatchingConfig)):
        raise BudgetError(f"continuous_batching must be True, False or a transformers ContinuousBatchingConfig, got "
                          f"{continuous_batching!r}.")
    if continuous_batching is not False and continuous_batching is not None:
        if streamer is not None or user_processors or generate_kwargs:
            # The manager drops the processors it does not support (repetition_penalty...) with only a warning.
            extra = sorted(generate_kwargs) + (["streamer"] if streamer is not None else []) + (
                ["logits_processor"] if user_processors else [])
            raise BudgetError(f"continuous batching takes no streamer, no logits_processor and no other generate "
                              f"keywords (got {', '.join(extra)}): call without them, or with continuous_batching=False.")
        chunks, run = [(0, len(texts))], run_continuous
    else:
        chunks, run = [(s, min(s + batch_size, len(texts))) for s in range(0, len(texts), batch_size)], run_static
    try:
        for start, stop in chunks:
            chunk = req.input_ids[start:stop]
            chunk_budgets = budgets[start:stop]
            new, trackers_of = run(start, chunk, chunk_budgets)
            trackers = trackers_of(new)
            # s1 profile: an answer within s1's answer allowance (the single pass has no per-answer limit).
            cut = [ids if t.stats.overrun else s1_answer_cut(t, ids, len(row), context, max_new_tokens)
                   for ids, t, row in zip(new, trackers, chunk)]
            if any(len(c) < len(ids) for c, ids in zip(cut, new)):
                new = cut
                trackers = trackers_of(new)
            resumed = [i for i, t in enumerate(trackers) if t.stats.overrun]
            if resumed:  # s1 profile: rounds ran past the cap; answer from the cut thinking, as s1 does
                heads = [trackers[i].resume() for i in resumed]
                answers = _answer_calls(model, [chunk[i] + h for i, h in zip(resumed, heads)],
                                        [chunk_budgets[i] for i in resumed], context, max_new_tokens, markers,
                                        pad_id, sampling, generate_kwargs)
                for i, head, answer in zip(resumed, heads, answers):
                    new[i] = head + answer
            decode = lambda t: tokenizer.decode(t, skip_special_tokens=False)  # noqa: E731
            results.extend(result_from_tracker(prompt_list[start + i], ids, trackers[i], decode)
                           for i, ids in enumerate(new))
    finally:
        if isinstance(streamer, BudgetStreamer):
            streamer.attach(None)
    return results


def _answer_calls(model: Any, rows: list[list[int]], budgets: list[ThinkingBudget], context: int | None,
                  max_new_tokens: int | None, markers: Any, pad_id: int, sampling: GenerationConfig | None,
                  generate_kwargs: dict) -> list[list[int]]:
    """Plain generation of the answers of resumed rows (after the cut no budget rule applies but the answer cap)."""
    limits = [answer_allowance(b, context, max_new_tokens, prompt_len=len(r)) for b, r in zip(budgets, rows)]
    if max(limits) < 1:
        return [close_answer([], b, markers) for b in budgets]
    enc = _left_pad(rows, pad_id, model.device)
    width = enc["input_ids"].shape[1]
    settings = dict(do_sample=False) if sampling is None else dict(
        do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k,
        min_p=sampling.min_p)
    out = model.generate(**enc, max_new_tokens=max(limits), pad_token_id=pad_id,
                         eos_token_id=list(markers.stop_ids), **settings, **generate_kwargs)
    return [close_answer(row[:limit], b, markers) for row, limit, b in zip(out[:, width:].tolist(), limits, budgets)]


def check_one_sequence(num_beams: int | None) -> None:
    """Budget forcing follows one sequence per row: refuse beam search."""
    if num_beams not in (None, 1):
        raise BudgetError("budget forcing runs one sequence per row: beam search is not supported (num_beams=1).")


def _pad_token_id(tokenizer: Any, markers: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else markers.stop_ids[0]


def prepare_generate(
    model: Any,
    tokenizer: Any,
    budget: Union[ThinkingBudget, Mapping[str, Any]],
    /,
    *,
    think_format: str | ThinkFormat | None = None,
    generation_config: GenerationConfig | None = None,
    prompt_ids: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[BudgetForcingLogitsProcessor, dict[str, Any]]:
    """Everything a plain `model.generate` call needs for budget forcing: the processor (deciding on the
    distribution the call really samples from: `generation_config` and the sampling keywords over the model's
    configuration) and the call's keywords completed with what the budget needs: `max_new_tokens` (the allowance,
    when neither it nor `max_length` is set), the end-of-sequence ids and a pad id. `"auto"` caps are resolved
    from the allowance and the width of `prompt_ids` (the call's `inputs` / `input_ids`). Used by `hf_s1.hub.budget_forcing_generate` (`custom_generate`).

    `model`, `tokenizer` and `budget` are positional, so `kwargs` may hold `generate`'s own `tokenizer=`.

    Returns:
        `(processor, kwargs)`: put the processor in `logits_processor` and pass `kwargs` on to `generate`.
    """
    fmt = get_format(think_format, tokenizer)
    markers = marker_tokens(tokenizer, fmt)
    if generation_config is not None and not isinstance(generation_config, GenerationConfig):
        raise BudgetError(f"generation_config must be a GenerationConfig, got {type(generation_config).__name__}.")
    # The configuration generate() will really sample with: the call's over the model's.
    effective = copy.deepcopy(generation_config if generation_config is not None else model.generation_config)
    effective.update(**{k: v for k, v in kwargs.items() if hasattr(GenerationConfig(), k)})
    check_one_sequence(getattr(effective, "num_beams", 1))
    prompt_len = 0 if prompt_ids is None else int(prompt_ids.shape[-1])
    context = context_length(model)
    budget = ThinkingBudget.from_dict(budget).resolve(
        markers, allowance=generation_allowance(context, effective.max_new_tokens), longest_prompt=prompt_len)
    processor = BudgetForcingLogitsProcessor(tokenizer, budget, fmt,
                                             generation_config=effective if effective.do_sample else None)
    if effective.max_new_tokens is None and kwargs.get("max_length") is None and prompt_ids is not None:
        kwargs["max_new_tokens"] = token_allowance(budget, markers, prompt_len, context)
    kwargs.setdefault("eos_token_id", list(markers.stop_ids))
    if kwargs.get("pad_token_id") is None and effective.pad_token_id is None:
        kwargs["pad_token_id"] = _pad_token_id(tokenizer, markers)
    return processor, kwargs


def _left_pad(rows: Sequence[Sequence[int]], pad_id: int, device: Any) -> dict[str, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r):] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


# ---- streaming -----------------------------------------------------------------------------------------


class ThoughtChunk(str):
    """A piece of streamed text (a `str`, so it drops into code written for `TextIteratorStreamer`) that
    also says what it is: `kind` is a `TokenKind` value ("thinking", "extrapolation", "cut", "marker",
    "answer")."""

    kind: str

    def __new__(cls, text: str, kind: str) -> ThoughtChunk:
        obj = super().__new__(cls, text)
        obj.kind = kind
        return obj

    def __repr__(self) -> str:
        return f"ThoughtChunk({str(self)!r}, kind={self.kind!r})"


class BudgetStreamer(BaseStreamer):
    """A streamer for budget-forced generation: iterate it (from another thread, like `TextIteratorStreamer`)
    to receive `ThoughtChunk`s, each a `str` tagged with what it is, so a UI can show injected "Wait"s and
    the forced cut. Give it to `generate_with_budget(..., streamer=...)`, or use `stream_with_budget`.

    Args:
        tokenizer: the tokenizer used for decoding.
        timeout (`float`, *optional*): seconds to wait for the next chunk before `queue.Empty` is raised.
    """

    _END = object()

    def __init__(self, tokenizer: Any, timeout: float | None = None) -> None:
        self.tokenizer = tokenizer
        self.timeout = timeout
        self.queue: Queue = Queue()
        self.processor: BudgetForcingLogitsProcessor | None = None
        self._prompt_seen = False
        self._ids: list[int] = []
        self._kind: str | None = None
        self._sent = 0
        # stream_with_budget closes the stream itself, after the result is built (so its errors still arrive).
        self.close_on_end = True

    def attach(self, processor: BudgetForcingLogitsProcessor | None) -> None:
        """Follow `processor`'s row 0 (a new generation: the streamer can be reused)."""
        self.processor = processor
        self._prompt_seen, self._ids, self._kind, self._sent = False, [], None, 0

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first sends the prompt
            self._prompt_seen = True
            return
        if self.processor is None:
            raise BudgetError("BudgetStreamer needs its processor: use it through generate_with_budget().")
        if value.dim() > 1 and value.shape[0] > 1:
            raise BudgetError("BudgetStreamer follows one sequence: generate with a single prompt.")
        for token in value.reshape(-1).tolist():
            kind = self.processor.observe_streamed(0, token).value
            if kind in (TokenKind.STOP.value, TokenKind.AFTER_STOP.value):
                continue
            if kind != self._kind:
                self._flush(final=True)
                self._ids, self._kind, self._sent = [], kind, 0
            self._ids.append(token)
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._ids:
            return
        text = self.tokenizer.decode(self._ids, skip_special_tokens=False)
        if not final and text.endswith("\ufffd"):  # a multi-byte character is still incomplete
            return
        if len(text) > self._sent:
            self.queue.put(ThoughtChunk(text[self._sent :], self._kind))
            self._sent = len(text)

    def live_stats(self) -> BudgetStats | None:
        """Telemetry of the followed sequence so far, counting every chunk already sent (None before the first)."""
        return None if self.processor is None else self.processor.live_stats(0)

    def end(self) -> None:
        self._flush(final=True)
        if self.close_on_end:
            self.queue.put(self._END)

    def __iter__(self) -> Iterator[ThoughtChunk]:
        while True:
            item = self.queue.get(timeout=self.timeout)
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


def stream_with_budget(
    model: Any, tokenizer: Any, prompt: Prompt, budget: ThinkingBudget, **kwargs: Any
) -> Iterator[ThoughtChunk]:
    """Stream one budget-forced generation as `ThoughtChunk`s. Takes `generate_with_budget`'s keyword
    arguments, plus `timeout` (seconds to wait for a chunk) and `thread_name` (of the generating thread).
    While streaming, the iterator's `live_stats()` is the telemetry so far; after the stream ends, its `result`
    attribute holds the `BudgetedGeneration`. An error of the generation is raised by the iterator."""
    streamer = BudgetStreamer(tokenizer, timeout=kwargs.pop("timeout", None))
    thread_name = kwargs.pop("thread_name", "hf-s1-generate")
    streamer.close_on_end = False
    holder: dict[str, Any] = {}

    def run() -> None:
        try:
            holder["result"] = generate_with_budget(model, tokenizer, prompt, budget, streamer=streamer, **kwargs)[0]
        except BaseException as exc:  # surface errors to the consumer instead of hanging it
            streamer.queue.put(exc)
        finally:
            streamer.queue.put(BudgetStreamer._END)

    thread = threading.Thread(target=run, daemon=True, name=thread_name)
    thread.start()
    return _Stream(streamer, thread, holder)


class _Stream:
    def __init__(self, streamer: BudgetStreamer, thread: threading.Thread, holder: dict) -> None:
        self._streamer = streamer
        self._it = iter(streamer)
        self._thread = thread
        self._holder = holder

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> ThoughtChunk:
        try:
            return next(self._it)
        except StopIteration:
            self._thread.join()
            raise

    def live_stats(self) -> BudgetStats | None:
        """Telemetry of the generation so far (None before its first token)."""
        return self._streamer.live_stats()

    @property
    def result(self) -> BudgetedGeneration | None:
        return self._holder.get("result")


# ---- a multi-call loop in s1's shape (hf-s1's rules), for comparison ---------------------------------------------------------------


def s1_reference_generate(model: Any, tokenizer: Any, prompts: Sequence[Prompt], budget: BudgetLike, *,
                          answer_tokens: int = 512, **request: Any) -> list[BudgetedGeneration]:
    """Budget forcing the way s1's reference runs it: one prompt at a time, one greedy `generate` call per
    round, each re-reading prompt + thinking. For comparison and benchmarks only; greedy decoding yields the
    same token ids as `generate_with_budget`. `request`: `think_format`, `system_prompt`, `chat_template`,
    `chat_template_kwargs`, as in
    `generate_with_budget` (`hf_s1.prompts.prepare_requests`)."""
    from ..reference import s1_loop_result

    req = prepare_requests(tokenizer, prompts, budget, **request)
    markers = req.markers
    device = getattr(model, "device", torch.device("cpu"))

    def complete(ids: list[int], max_new: int, stop: Sequence[int]) -> list[int]:
        out = model.generate(
            torch.tensor([ids], device=device), attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=device),
            max_new_tokens=max_new, do_sample=False, eos_token_id=list(stop), pad_token_id=markers.stop_ids[0],
        )
        return out[0, len(ids):].tolist()

    decode = lambda t: tokenizer.decode(t, skip_special_tokens=False)  # noqa: E731
    results = []
    for prompt, text, b in zip(req.prompts, req.texts, req.budgets):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        results.append(s1_loop_result(complete, prompt, ids, b, markers, answer_tokens=answer_tokens, decode=decode))
    return results
