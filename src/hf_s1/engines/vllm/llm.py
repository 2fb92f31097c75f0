"""`vllm.LLM` helpers: an engine with the budget processor registered, `generate_with_budget()` (the transformers
engine's result type) and a multi-call loop in s1's shape
(hf-s1's rules) on vLLM, for comparison."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from ...budget import BudgetError, BudgetLike, BudgetTracker, answer_allowance, close_answer, s1_answer_cut
from ...formats import ThinkFormat
from ...prompts import Prompt, check_sampling, prepare_requests
from ...reference import s1_loop_result
from ...results import BudgetedGeneration, result_from_tracker
from .params import BUDGET_KEY, FORMAT_KEY, LOG_KEY, RESUME_KEY
from .processor import KEPT_LOGS, BudgetForcingLogitsProcessor
from .telemetry import WORKER_EXTENSION, collect_injection_logs

if TYPE_CHECKING:
    from vllm import LLM

__all__ = ["load_llm", "generate_with_budget", "s1_reference_generate"]

_CPU_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "2",  # GiB
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    # In-process engine: loads in seconds on small machines.
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
}

def load_llm(path_or_id: str | os.PathLike | None = None, **llm_kwargs: Any) -> LLM:
    """A `vllm.LLM` with `BudgetForcingLogitsProcessor` registered, set up for small CPU machines.

    Sets (unless already set) `VLLM_CPU_KVCACHE_SPACE=2`, `VLLM_CPU_NUM_OF_RESERVED_CPU=0` and
    `VLLM_ENABLE_V1_MULTIPROCESSING=0` (an in-process engine, quick to load), then builds the engine with `dtype="float32"`, `enforce_eager=True`,
    `max_model_len=2048`, `max_num_seqs=32` and the worker extension that hands the processor's injection logs
    to `generate_with_budget` (`hf_s1.engines.vllm.telemetry`); any keyword argument overrides these.

    Args:
        path_or_id: a local model folder or Hub id; by default the embedded SmolLM2-135M-Instruct
            (`hf_s1.default_model_path()`).
        llm_kwargs: passed to `vllm.LLM`.
    """
    for name, value in _CPU_ENV.items():
        os.environ.setdefault(name, value)
    from vllm import LLM

    from ...models import check_model_source, default_model_path

    path_or_id = default_model_path() if path_or_id is None else check_model_source(path_or_id)
    settings: dict[str, Any] = dict(dtype="float32", enforce_eager=True, max_model_len=2048, max_num_seqs=32,
                                    worker_extension_cls=WORKER_EXTENSION)
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


def _prepare(llm: Any, prompts: Union[Prompt, Sequence[Prompt]], budget: BudgetLike, *,
             max_new_tokens: int | None = None, **request: Any):
    tokenizer = llm.get_tokenizer()
    req = prepare_requests(tokenizer, prompts, budget, **request)
    limits = req.token_limits(getattr(_model_config(llm), "max_model_len", None), max_new_tokens)  # resolves "auto"
    ids = req.input_ids
    prompt_list, fmt, markers, budgets = req.prompts, req.think_format, req.markers, req.budgets
    return prompt_list, tokenizer, fmt, markers, budgets, ids, limits


def generate_with_budget(
    llm: LLM,
    prompts: Union[Prompt, Sequence[Prompt]],
    budget: BudgetLike,
    *,
    think_format: str | ThinkFormat | None = None,
    system_prompt: str | None = None,
    chat_template: bool = True,
    chat_template_kwargs: Mapping[str, Any] | None = None,
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
    (the transformers engine's result type and fields); with `n=k` among `sampling_kwargs`, `k` per prompt, in
    prompt order. Telemetry is exact: each sample's output ids replayed with the processor's own record of where
    it injected an extrapolation (`hf_s1.engines.vllm.telemetry`), so a "Wait" the model wrote is thinking, not
    a wait. With `n=k`, the `k` samples go to vLLM as `k` requests (seeds `seed`, `seed + 1`, ... as vLLM gives
    its own samples).

    All prompts go to vLLM at once (it batches them). The LLM must have `BudgetForcingLogitsProcessor` among
    its logits processors (`load_llm()` registers it).

    Args:
        llm: a `vllm.LLM` built with `logits_processors=[BudgetForcingLogitsProcessor]`.
        prompts: a question, a chat (list of messages), or a list of either.
        budget: one `ThinkingBudget` (or dict) for all prompts, or one per prompt.
        think_format: a preset name, a `ThinkFormat`, or None: read from the model (`hf_s1.formats.resolve_format`).
            Each request carries the format's fields (`extra_args[FORMAT_KEY]`).
        system_prompt: prepended as a system message when a prompt has none.
        chat_template_kwargs: keywords for the chat template (`{"enable_thinking": False}`, ...).
        chat_template: `False` uses prompts as plain text followed by the think-start marker.
        max_new_tokens: token limit per row; by default what each row's budget needs (start marker + thinking cap
            + cut + answer allowance), or the rest of the context without a cap.
        do_sample, temperature, top_p, top_k, min_p: sampling settings (greedy unless `do_sample`). An end of
            thinking is replaced with exactly the probability the sampler gives it.
        seed: per-request sampling seed.
        use_tqdm: show vLLM's progress bar.
        sampling_kwargs: more `vllm.SamplingParams` fields (e.g. `repetition_penalty`, `n`).

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
    check_sampling(do_sample, temperature, top_p, top_k, min_p, sampling_kwargs)
    if "extra_args" in sampling_kwargs or "logits_processors" in sampling_kwargs:
        raise BudgetError("generate_with_budget sets extra_args itself: pass the budget as `budget`.")
    prompt_list, tokenizer, fmt, markers, budgets, prompt_ids, limits = _prepare(
        llm, prompts, budget, think_format=think_format, system_prompt=system_prompt, chat_template=chat_template,
        chat_template_kwargs=chat_template_kwargs, max_new_tokens=max_new_tokens)
    context = getattr(config, "max_model_len", None)
    settings = dict(temperature=temperature if do_sample else 0.0, top_p=top_p if do_sample else 1.0,
                    top_k=top_k if do_sample else 0, min_p=(min_p or 0.0) if do_sample else 0.0, seed=seed,
                    stop_token_ids=list(markers.stop_ids), skip_special_tokens=False)
    n = sampling_kwargs.pop("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise BudgetError(f"n (samples per prompt) must be an int >= 1, got {n!r}.")
    call = uuid.uuid4().hex
    requests, params = [], []  # n > 1: one request per sample, so that each has its own injection log
    for i, (ids, b, limit) in enumerate(zip(prompt_ids, budgets, limits)):
        for k in range(n):
            extra = {BUDGET_KEY: b.to_dict(), FORMAT_KEY: fmt.to_dict(), RESUME_KEY: True, LOG_KEY: f"{call}-{i}-{k}"}
            sample = dict(settings, seed=None if seed is None else seed + k)
            params.append(SamplingParams(max_tokens=limit, extra_args=extra, **sample, **sampling_kwargs))
            requests.append(TokensPrompt(prompt_token_ids=ids))
    outputs, logs = [], {}
    for start in range(0, len(requests), KEPT_LOGS):  # collect before the processor would drop uncollected logs
        part = params[start : start + KEPT_LOGS]
        outputs += llm.generate(requests[start : start + KEPT_LOGS], part, use_tqdm=use_tqdm)
        logs.update(collect_injection_logs(llm, [p.extra_args[LOG_KEY] for p in part]))
    rows = []  # (prompt, prompt ids, budget, generated ids, tracker, seed): every sample its own row
    for j, (out, sp) in enumerate(zip(outputs, params)):
        prompt, ids, b = prompt_list[j // n], prompt_ids[j // n], budgets[j // n]
        generated = list(out.outputs[0].token_ids)
        injected = logs.get(sp.extra_args[LOG_KEY])
        if injected is None:
            raise BudgetError("the budget processor kept no injection log for a request; was the LLM built with "
                              "several budget processors or is another client collecting logs?")
        tracker = _replayed(b, markers, ids, generated, set(injected))
        if not tracker.stats.overrun:  # s1 profile: the answer within s1's answer allowance
            cut = s1_answer_cut(tracker, generated, len(ids), context, max_new_tokens)
            if len(cut) < len(generated):
                generated, tracker = cut, _replayed(b, markers, ids, cut, set(injected))
        rows.append([prompt, ids, b, generated, tracker, sp.seed])
    resumed = [row for row in rows if row[4].stats.overrun]
    if resumed:  # s1 profile: rounds ran past the cap; answer from the cut thinking, as s1 does
        heads = [row[4].resume() for row in resumed]
        answer_params = []
        for (_, ids, b, _, _, sample_seed), head in zip(resumed, heads):
            limit = answer_allowance(b, context, max_new_tokens, prompt_len=len(ids) + len(head))
            answer_params.append(SamplingParams(max_tokens=max(limit, 1), **dict(settings, seed=sample_seed),
                                                **sampling_kwargs))
        answers = llm.generate([TokensPrompt(prompt_token_ids=row[1] + head) for row, head in zip(resumed, heads)],
                               answer_params, use_tqdm=use_tqdm)
        for row, head, out, sp in zip(resumed, heads, answers, answer_params):
            row[3] = head + close_answer(out.outputs[0].token_ids, row[2], markers)
    decode = lambda t: tokenizer.decode(t, skip_special_tokens=False)  # noqa: E731
    return [result_from_tracker(prompt, generated, tracker, decode) for prompt, _, _, generated, tracker, _ in rows]


def _replayed(budget: Any, markers: Any, prompt_ids: Sequence[int], generated: list[int],
              injected: set[int]) -> BudgetTracker:
    """A tracker over a request's output ids and its injection log (exact telemetry)."""
    tracker = BudgetTracker(budget, markers)
    tracker.start(prompt_ids)
    tracker.replay(generated, injected=injected)
    tracker.finish(generated)
    return tracker


def s1_reference_generate(llm: LLM, prompts: Union[Prompt, Sequence[Prompt]], budget: BudgetLike, *,
                          answer_tokens: int = 512, **request: Any) -> list[BudgetedGeneration]:
    """Budget forcing in s1's multi-call shape (hf-s1's rules) on vLLM, for comparison: per prompt, repeated
    greedy `llm.generate` calls that stop at an end of thinking, append "Wait" and call again (re-reading prompt
    + thinking each time).

    Uses `hf_s1.reference.s1_loop`; the budget processor is not involved (no budget in the requests).

    Args:
        llm: a `vllm.LLM`.
        prompts, budget: as in `generate_with_budget`.
        answer_tokens: answer allowance when the budget sets no `max_answer_tokens`.
        request: `think_format`, `system_prompt`, `chat_template`, `chat_template_kwargs`, as in `generate_with_budget`
            (`hf_s1.prompts.prepare_requests`).
    """
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    prompt_list, tokenizer, fmt, markers, budgets, prompt_ids, _ = _prepare(llm, prompts, budget, **request)

    def complete(ids: list[int], max_new: int, stop_ids: Sequence[int]) -> list[int]:
        sp = SamplingParams(max_tokens=max_new, temperature=0.0, stop_token_ids=list(stop_ids), skip_special_tokens=False)
        out = llm.generate([TokensPrompt(prompt_token_ids=ids)], sp, use_tqdm=False)[0].outputs[0]
        return list(out.token_ids)  # vLLM keeps the stop id that ended the call, as s1_loop expects

    results = []
    for prompt, ids, b in zip(prompt_list, prompt_ids, budgets):
        results.append(s1_loop_result(complete, prompt, ids, b, markers, answer_tokens=answer_tokens,
                                      decode=lambda t: tokenizer.decode(t, skip_special_tokens=False)))
    return results
