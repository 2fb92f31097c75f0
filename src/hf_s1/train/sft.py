"""The s1K SFT recipe's building blocks: script arguments, dataset preparation and the training run (used by
`recipes/sft_s1k.py`)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from ..data.formatting import format_s1k
from ..data.loading import DataError, load_s1k
from .chat_template import training_chat_template

__all__ = ["EMBEDDED_MODEL", "S1KScriptArguments", "StopAfterStepsCallback", "prepare_tokenizer", "build_train_dataset", "run_sft"]

logger = logging.getLogger(__name__)

# `model_name_or_path: embedded` trains the offline SmolLM2-135M-Instruct copy (hf_s1.default_model_path()).
EMBEDDED_MODEL = "embedded"


@dataclass
class S1KScriptArguments:
    """Recipe arguments next to TRL's `SFTConfig` and `ModelConfig` (parsed by `TrlParser` from YAML and flags).

    Args:
        dataset_name: `"s1k"`, `"s1k-1.1"`, a Hub data set id, or a local .jsonl/.parquet file or folder.
        dataset_split: split to train on.
        trace: trace columns: `"s1k"`, `"gemini"`, `"deepseek"`, or None to detect from the columns.
        think_format: `"s1"` or `"r1"`: the markers the trained model writes (budget forcing needs the same).
        system_prompt: system message of every example; None keeps the chat template's default.
        max_train_samples: train on the first N rows only (smoke runs).
        resume: continue from the last checkpoint in `output_dir` when there is one.
        stop_after_steps: end the run after this many optimizer steps with a checkpoint, as a preemption would
            (the schedule still follows `max_steps` / epochs, so a resumed run continues it unchanged).
    """

    dataset_name: str = field(default="s1k", metadata={"help": "s1k, s1k-1.1, a Hub id, or a local jsonl/parquet"})
    dataset_split: str = field(default="train", metadata={"help": "split to train on"})
    trace: str | None = field(default=None, metadata={"help": "s1k, gemini or deepseek trace columns (default: detect)"})
    think_format: str = field(default="s1", metadata={"help": "s1 or r1 think markers"})
    system_prompt: str | None = field(default=None, metadata={"help": "system message (default: the template's)"})
    max_train_samples: int | None = field(default=None, metadata={"help": "use only the first N rows"})
    resume: bool = field(default=True, metadata={"help": "resume from the last checkpoint in output_dir"})
    stop_after_steps: int | None = field(default=None, metadata={"help": "stop (with a checkpoint) after N steps"})

    def __post_init__(self) -> None:
        if self.think_format not in ("s1", "r1"):
            raise DataError(f"think_format must be 's1' or 'r1', got {self.think_format!r}.")
        for name in ("max_train_samples", "stop_after_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise DataError(f"{name} must be a positive int or None, got {value!r}.")


def _stop_callback_class():
    from transformers import TrainerCallback

    class StopAfterStepsCallback(TrainerCallback):
        """Save a checkpoint and stop after `steps` optimizer steps, leaving the LR schedule untouched."""

        def __init__(self, steps: int) -> None:
            self.steps = steps

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= self.steps:
                control.should_save = True
                control.should_training_stop = True
            return control

    return StopAfterStepsCallback


def __getattr__(name: str) -> Any:
    # transformers is imported lazily so `hf_s1.train` stays light to import.
    if name == "StopAfterStepsCallback":
        return _stop_callback_class()
    raise AttributeError(name)


def prepare_tokenizer(model_name_or_path: str, **kwargs: Any):
    """Load the tokenizer and give it the training chat template (generation markers) and a pad token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, **kwargs)
    tokenizer.chat_template = training_chat_template(tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_train_dataset(script_args: S1KScriptArguments):
    """Load and format the training rows as conversations (`messages` column) in the chosen think format."""
    dataset = load_s1k(script_args.dataset_name, split=script_args.dataset_split)
    if script_args.max_train_samples is not None:
        dataset = dataset.select(range(min(script_args.max_train_samples, dataset.num_rows)))
    return format_s1k(dataset, think_format=script_args.think_format, trace=script_args.trace,
                      system_prompt=script_args.system_prompt)


def _trust_remote_code(training_args: Any, model_args: Any) -> bool:
    # TRL 1.x keeps this flag on SFTConfig; older releases kept it on ModelConfig.
    return bool(getattr(training_args, "trust_remote_code", False) or getattr(model_args, "trust_remote_code", False))


def run_sft(script_args: S1KScriptArguments, training_args: Any, model_args: Any):
    """Train with TRL's `SFTTrainer`, loss on the assistant turn (think + answer + end-of-turn) only.

    Args:
        script_args: the recipe's `S1KScriptArguments`.
        training_args: a `trl.SFTConfig` (the YAML's trainer settings).
        model_args: a `trl.ModelConfig` (model id or path, dtype, attention implementation).

    Returns:
        The `SFTTrainer` after training (its `state.log_history` holds the losses).
    """
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTTrainer, get_peft_config

    if not model_args.model_name_or_path:
        raise DataError("set model_name_or_path (a Hub id or a local folder) in the YAML config or on the command line.")
    if model_args.model_name_or_path == EMBEDDED_MODEL:
        from ..models import default_model_path

        model_args.model_name_or_path = str(default_model_path())
    if not training_args.assistant_only_loss:
        logger.warning("assistant_only_loss is off: the loss also covers the system and user turns (s1 trains "
                       "on the assistant turn only).")
    init_kwargs = dict(revision=model_args.model_revision, attn_implementation=model_args.attn_implementation,
                       dtype=model_args.dtype, trust_remote_code=_trust_remote_code(training_args, model_args))
    training_args.model_init_kwargs = {**{k: v for k, v in init_kwargs.items() if v is not None},
                                       **(training_args.model_init_kwargs or {})}
    tokenizer = prepare_tokenizer(model_args.model_name_or_path, revision=model_args.model_revision,
                                  trust_remote_code=_trust_remote_code(training_args, model_args))
    train_dataset = build_train_dataset(script_args)

    checkpoint = training_args.resume_from_checkpoint
    if checkpoint is None and script_args.resume and os.path.isdir(training_args.output_dir):
        checkpoint = get_last_checkpoint(training_args.output_dir)
        if checkpoint is not None:
            logger.info("resuming from %s", checkpoint)

    callbacks = [_stop_callback_class()(script_args.stop_after_steps)] if script_args.stop_after_steps else None
    trainer = SFTTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=callbacks,
    )
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_state()
    interrupted = script_args.stop_after_steps is not None and trainer.state.global_step < trainer.state.max_steps
    if not interrupted:
        trainer.save_model(training_args.output_dir)
        if training_args.push_to_hub:
            trainer.push_to_hub(dataset_name=script_args.dataset_name)
    # Every rank reaches the teardown together: a rank that tears down early can leave the others blocked.
    trainer.accelerator.wait_for_everyone()
    if hasattr(trainer, "end"):  # transformers >= 5.18 tears down trackers and the process group here
        trainer.end()
    return trainer
