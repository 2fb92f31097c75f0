"""Budget-forced GRPO rollouts for TRL's `GRPOTrainer`, through its `rollout_func` hook.

A reasoning-RL run that only truncates rollouts at `max_completion_length` loses every rollout that ran out of
room: no answer, no reward. Budget-forced rollouts always end with an answer inside the budget (the cap forces the
end of thinking and the answer prefix). But the tokens the budget forced (the cut, injected "Wait"s, the rest of an
end marker the model began, an end-of-sequence at the answer cap) were not sampled by the policy: left in the
policy loss they would be trained as if the policy had chosen them, and their log-probability under the sampler
(forced: about 0) disagrees with the policy's, which corrupts the importance ratio. `BudgetRollout` returns them
masked out through TRL's `env_mask` (tokens the model did not write: TRL multiplies it into the loss mask), and
reports per-rollout telemetry to TRL's metrics and to the reward functions.

Generation runs on `generate_with_budget`: static `generate`, or transformers' continuous batching
(`continuous_batching=True`), so every rollout has the same budget semantics as evaluation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..budget import BudgetError, ThinkingBudget
from ..formats import ThinkFormat

__all__ = ["BudgetRollout", "GRPOBudgetArguments", "answer_reward", "completion_mask", "run_grpo"]

METRIC_PREFIX = "budget/"


def completion_mask(generation: Any, *, mask_forced: bool = True) -> tuple[list[int], list[int]]:
    """A `BudgetedGeneration` as a GRPO completion: its token ids (the end-of-sequence token included when the
    row stopped, as TRL expects) and its `env_mask` (1: the policy sampled the token; 0: the budget forced it).

    Examples:

    ```python
    >>> from hf_s1.results import BudgetedGeneration
    >>> from hf_s1.budget import ThinkingBudget
    >>> g = BudgetedGeneration(prompt="q", text="", thinking="", answer="", token_ids=[5, 6, 7], thinking_tokens=1,
    ...     answer_tokens=1, waits=0, capped=True, finish_reason="stop", budget=ThinkingBudget(),
    ...     forced=[False, True, False], stop_id=2, stop_forced=True)
    >>> completion_mask(g)
    ([5, 6, 7, 2], [1, 0, 1, 0])
    >>> completion_mask(g, mask_forced=False)[1]
    [1, 1, 1, 1]

    ```
    """
    ids = list(generation.token_ids)
    forced = list(generation.forced)
    if len(forced) != len(ids):
        raise BudgetError(f"the generation has {len(forced)} forced flags for {len(ids)} tokens: build it with "
                          f"hf_s1's generate_with_budget (results.result_from_tracker).")
    if generation.stop_id is not None:
        ids.append(int(generation.stop_id))
        forced.append(bool(generation.stop_forced))
    mask = [0 if f and mask_forced else 1 for f in forced]
    return ids, mask


def sampling_settings(args: Any) -> dict[str, Any]:
    """The trainer's sampling settings, read exactly: `temperature=0` is greedy (every rollout of a prompt the same),
    `None` leaves a setting off as in transformers' `GenerationConfig` (temperature 1, top_p 1, top_k 0, no min_p);
    a value budget forcing cannot honour is a `BudgetError` naming the argument."""
    from ..prompts import check_sampling

    def read(name: str, unset: Any) -> Any:
        value = getattr(args, name, None)
        return unset if value is None else value

    temperature, top_p, top_k, min_p = read("temperature", 1.0), read("top_p", 1.0), read("top_k", 0), read("min_p", None)
    greedy = not isinstance(temperature, bool) and isinstance(temperature, (int, float)) and temperature == 0
    try:
        check_sampling(not greedy, temperature, top_p, top_k, min_p)
    except BudgetError as exc:
        raise BudgetError(f"GRPO arguments (temperature={temperature!r}, top_p={top_p!r}, top_k={top_k!r}, "
                          f"min_p={min_p!r}): {exc}") from None
    if greedy:
        return {"do_sample": False}
    return {"do_sample": True, "temperature": float(temperature), "top_p": float(top_p), "top_k": top_k,
            "min_p": min_p}


class BudgetRollout:
    r"""A `rollout_func` for `trl.GRPOTrainer` whose completions are budget-forced.

    Args:
        budget (`ThinkingBudget` or `dict`):
            The thinking budget of every rollout (`profile="hf-s1"` keeps each rollout one pass; the s1 profile's
            second call for rounds past the cap also works, its answer tokens counted as the policy's).
        think_format (`str` or `ThinkFormat`, *optional*):
            A preset name or a `ThinkFormat`; by default read from the model (`hf_s1.formats.resolve_format`).
        chat_template_kwargs (`dict`, *optional*):
            Keywords for the chat template (`{"enable_thinking": True}`).
        continuous_batching (`bool`, *optional*, defaults to `False`):
            Generate on transformers' continuous batching instead of static `generate`.
        mask_forced (`bool`, *optional*, defaults to `True`):
            Leave forced tokens out of the policy loss (`env_mask`). `False` trains on them as if sampled.
        batch_size (`int`, *optional*, defaults to 8):
            Prompts per `generate` call (static batching).
        system_prompt (`str`, *optional*):
            System message of every prompt.

    The trainer's sampling settings apply, read exactly (`sampling_settings`: `temperature=0` is greedy), with
    `max_completion_length` as the token limit. Reward functions receive, per completion, `budget_answer` (the answer text),
    `thinking_tokens`, `waits`, `capped` and `forced_tokens`; TRL's logs get their means under `budget/`.

    Examples:

    ```python
    >>> from hf_s1.train.grpo import BudgetRollout
    >>> rollout = BudgetRollout({"max_thinking_tokens": 64, "max_answer_tokens": 32})
    >>> rollout.budget.max_thinking_tokens, rollout.mask_forced
    (64, True)

    ```
    Use it as `GRPOTrainer(..., rollout_func=rollout)`; `recipes/grpo_budget.py` builds the whole run.
    """

    def __init__(self, budget: ThinkingBudget | Mapping[str, Any], *, think_format: str | ThinkFormat | None = None,
                 continuous_batching: bool = False, mask_forced: bool = True, batch_size: int = 8,
                 system_prompt: str | None = None, chat_template_kwargs: Mapping[str, Any] | None = None) -> None:
        from ..prompts import check_template_kwargs

        self.budget = ThinkingBudget.from_dict(budget)
        self.think_format = think_format
        self.chat_template_kwargs = check_template_kwargs(chat_template_kwargs)
        for name, value in (("continuous_batching", continuous_batching), ("mask_forced", mask_forced)):
            if not isinstance(value, bool):
                raise BudgetError(f"{name} must be True or False, got {value!r}.")
        self.continuous_batching = continuous_batching
        self.mask_forced = mask_forced
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise BudgetError(f"batch_size must be a positive int, got {batch_size!r}.")
        self.batch_size = batch_size
        self.system_prompt = system_prompt

    def generate(self, model: Any, tokenizer: Any, prompts: Sequence[Any], args: Any) -> tuple[list, list]:
        """The rollouts of `prompts` (one each) as `BudgetedGeneration`s, with their prompt ids."""
        from ..engines.transformers import generate_with_budget
        from ..prompts import prepare_requests

        req = prepare_requests(tokenizer, list(prompts), self.budget, think_format=self.think_format,
                               system_prompt=self.system_prompt, chat_template_kwargs=self.chat_template_kwargs)
        out = generate_with_budget(
            model, tokenizer, list(prompts), self.budget, think_format=req.think_format,
            system_prompt=self.system_prompt, chat_template_kwargs=self.chat_template_kwargs, batch_size=self.batch_size,
            max_new_tokens=getattr(args, "max_completion_length", None), continuous_batching=self.continuous_batching,
            **sampling_settings(args))
        return out, [list(ids) for ids in req.input_ids]

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        import torch
        from trl.models.utils import unwrap_model_for_generation

        args = trainer.args
        mode = "train" if trainer.model.training else "eval"
        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                         gather_deepspeed3_params=args.ds3_gather_for_generation) as model, \
                torch.no_grad():
            training = model.training
            with _plain_forward(model) if self.continuous_batching else contextlib.nullcontext():
                out, prompt_ids = self.generate(model, trainer.processing_class, prompts, args)
            model.train(training)  # continuous batching leaves the model in eval mode
        completions = [completion_mask(g, mask_forced=self.mask_forced) for g in out]
        telemetry = {
            "thinking_tokens": [g.thinking_tokens for g in out],
            "waits": [g.waits for g in out],
            "capped": [g.capped for g in out],
            "forced_tokens": [sum(g.forced) + int(g.stop_forced) for g in out],
        }
        device = trainer.accelerator.device
        for name, values in telemetry.items():
            gathered = trainer.accelerator.gather(torch.tensor(values, dtype=torch.float32, device=device))
            trainer._metrics[mode][METRIC_PREFIX + name].append(gathered.mean().item())
        return {
            "prompt_ids": prompt_ids,
            "completion_ids": [ids for ids, _ in completions],
            "logprobs": None,  # the trainer computes the policy's own; no sampler correction (no vLLM here)
            "env_mask": [mask for _, mask in completions],
            "budget_answer": [g.answer for g in out],
            **telemetry,
        }


@contextlib.contextmanager
def _plain_forward(model: Any):
    """The model without accelerate's mixed-precision forward wrapper, for the duration of a continuous-batching
    generation: the manager's paged cache takes the weights' dtype, and an autocast forward would write another
    dtype into it."""
    wrapped, original = model.__dict__.get("forward"), model.__dict__.get("_original_forward")
    if wrapped is None or original is None:
        yield model
        return
    model.forward = original
    try:
        yield model
    finally:
        model.forward = wrapped


def answer_reward(completions: list[Any], answer: list[Any], budget_answer: list[str] | None = None,
                  **kwargs: Any) -> list[float]:
    """GRPO reward: 1.0 when the rollout's answer equals the gold `answer` column (math-verify), else 0.0. Reads the
    answer part the rollout reports (`budget_answer`) when there is one, else the completion text."""
    from ..eval.grading import grade_math

    texts = budget_answer if budget_answer is not None else [
        c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [1.0 if grade_math(t, str(gold)).correct else 0.0 for t, gold in zip(texts, answer)]


def _script_arguments() -> type:
    from trl import ScriptArguments

    return ScriptArguments


@dataclass
class GRPOBudgetArguments(_script_arguments()):
    """The recipe's arguments: `trl.ScriptArguments` (TRL's `dataset_*` keys) plus the rollouts' budget, next to
    `trl.GRPOConfig` and `trl.ModelConfig` (parsed by `TrlParser`).

    Args:
        dataset_name: a local .jsonl / .json / .parquet file, or a Hub data set id, with `problem` and `answer`
            columns (MATH-500's layout).
        dataset_config / dataset_train_split: the Hub data set's configuration and the split to train on.
        max_train_samples: train on the first N rows only (smoke runs).
        max_thinking_tokens / min_thinking_tokens / num_waits / extrapolation / answer_prefix / max_answer_tokens /
            profile: the rollouts' `ThinkingBudget` (every field of it: `tests/test_budget_fields.py`).
        think_format: a preset name (`hf_s1.formats.PRESETS`), or None: read from the model.
        continuous_batching: roll out on transformers' continuous batching.
        mask_forced: leave forced tokens out of the policy loss.
        system_prompt: system message of every prompt.
    """

    max_train_samples: int | None = None
    max_thinking_tokens: int | None = 64
    min_thinking_tokens: int = 0
    num_waits: int = 0
    extrapolation: list[str] | None = None
    answer_prefix: str = "Final Answer:"
    max_answer_tokens: int | None = 32
    profile: str = "hf-s1"
    think_format: str | None = None
    continuous_batching: bool = False
    mask_forced: bool = True
    system_prompt: str | None = None

    def budget(self) -> ThinkingBudget:
        return ThinkingBudget(max_thinking_tokens=self.max_thinking_tokens, min_thinking_tokens=self.min_thinking_tokens,
                              num_waits=self.num_waits, extrapolation=self.extrapolation or "Wait",
                              answer_prefix=self.answer_prefix, max_answer_tokens=self.max_answer_tokens,
                              profile=self.profile)


def _dataset(script_args: GRPOBudgetArguments) -> Any:
    import os

    from datasets import load_dataset

    from ..errors import DataError

    name = script_args.dataset_name
    if not name:
        raise DataError("set dataset_name: a .jsonl file or Hub data set with `problem` and `answer` columns.")
    if os.path.isfile(name):
        kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}.get(os.path.splitext(name)[1])
        if kind is None:
            raise DataError(f"{name}: use a .jsonl, .json or .parquet file.")
        data = load_dataset(kind, data_files=name, split="train")
    else:
        data = load_dataset(name, script_args.dataset_config, split=script_args.dataset_train_split)
    missing = {"problem", "answer"} - set(data.column_names)
    if missing:
        raise DataError(f"{name} lacks the column(s) {sorted(missing)}: GRPO rollouts need `problem` and `answer`.")
    if script_args.max_train_samples is not None:
        data = data.select(range(min(script_args.max_train_samples, len(data))))
    return data.map(lambda row: {"prompt": [{"role": "user", "content": row["problem"]}],
                                 "answer": str(row["answer"])})


def run_grpo(script_args: GRPOBudgetArguments, training_args: Any, model_args: Any) -> Any:
    """GRPO with budget-forced rollouts (`BudgetRollout`) and the `answer_reward`; returns the trainer after
    training (its `state.log_history` holds the loss and the `budget/` metrics)."""
    from trl import GRPOTrainer, get_peft_config

    from ..errors import DataError
    from .sft import EMBEDDED_MODEL, card_dataset_name, prepare_tokenizer

    if not model_args.model_name_or_path:
        raise DataError("set model_name_or_path (a Hub id or a local folder) in the YAML config or on the command line.")
    if model_args.model_name_or_path == EMBEDDED_MODEL:
        from ..models import default_model_path

        model_args.model_name_or_path = str(default_model_path())
    if model_args.dtype is not None:
        training_args.model_init_kwargs = {"dtype": model_args.dtype, **(training_args.model_init_kwargs or {})}
    tokenizer = prepare_tokenizer(model_args.model_name_or_path, revision=model_args.model_revision)
    tokenizer.padding_side = "left"
    rollout = BudgetRollout(script_args.budget(), think_format=script_args.think_format,
                            continuous_batching=script_args.continuous_batching, mask_forced=script_args.mask_forced,
                            system_prompt=script_args.system_prompt)
    trainer = GRPOTrainer(model=model_args.model_name_or_path, reward_funcs=[answer_reward], args=training_args,
                          train_dataset=_dataset(script_args), processing_class=tokenizer, rollout_func=rollout,
                          peft_config=get_peft_config(model_args))
    trainer.train()
    trainer.save_state()
    # As TRL's own scripts/grpo.py and hf-s1's SFT recipe end: the model in output_dir, then the Hub when asked.
    trainer.save_model(training_args.output_dir)
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=card_dataset_name(script_args.dataset_name))
    trainer.accelerator.wait_for_everyone()
    if hasattr(trainer, "end"):
        trainer.end()
    return trainer
