"""The s1K SFT recipe's building blocks: script arguments, dataset preparation and the training run (used by
`recipes/sft_s1k.py`)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from trl import ScriptArguments  # the `train` extra; this module is the TRL recipe's

from ..data.formatting import format_s1k
from ..data.loading import DataError, load_s1k
from ..errors import HfS1Error
from .chat_template import training_chat_template

__all__ = ["EMBEDDED_MODEL", "EMBEDDED_BASE_MODEL", "S1KScriptArguments", "StopAfterStepsCallback",
           "card_base_model", "card_dataset_name", "prepare_tokenizer", "build_train_dataset", "run_sft"]

logger = logging.getLogger(__name__)

# `model_name_or_path: embedded` trains the offline SmolLM2-135M-Instruct copy (hf_s1.default_model_path()).
EMBEDDED_MODEL = "embedded"
# The Hub id of that copy's weights: the base model the trained model's card names.
EMBEDDED_BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


@dataclass
class S1KScriptArguments(ScriptArguments):
    """Recipe arguments: `trl.ScriptArguments` (the same `dataset_*` keys as TRL's own scripts and YAML files)
    plus the s1 fields, next to TRL's `SFTConfig` and `ModelConfig` (parsed by `TrlParser` from YAML and flags).

    Args:
        dataset_name: `"s1k"` (default), `"s1k-1.1"`, a Hub data set id, or a local .jsonl/.parquet file or folder.
        dataset_config: the Hub data set's configuration name (`datasets.load_dataset(name=...)`).
        dataset_train_split: split to train on (TRL's name; earlier versions of this recipe called it
            `dataset_split`, a key TRL's parser now reports as unknown).
        dataset_test_split / ignore_bias_buffers: TRL's fields, unused by this recipe (it has no eval set).
        dataset_streaming: must stay False: the rows are formatted and selected in memory (s1K has 1,000 rows).
        trace: trace columns: `"s1k"`, `"gemini"`, `"deepseek"`, or None to detect from the columns.
        think_format: a preset name (`"s1"`, `"r1"`, `"qwen3"`, ...: `hf_s1.formats.PRESETS`): the markers the
            trained model writes (budget forcing reads the same from the model).
        system_prompt: system message of every example; None keeps the chat template's default.
        max_train_samples: train on the first N rows only (smoke runs).
        resume: continue from the last checkpoint in `output_dir` when there is one.
        stop_after_steps: end the run after this many optimizer steps with a checkpoint, as a preemption would
            (the schedule still follows `max_steps` / epochs, so a resumed run continues it unchanged).
        base_model: Hub id of the model being fine-tuned, named by the model card TRL writes (`base_model` and
            "fine-tuned version of ..."). Needed only when `model_name_or_path` is a local folder: a Hub id names
            itself and `embedded` names `EMBEDDED_BASE_MODEL`.

    Examples:

    ```python
    >>> from trl import ScriptArguments
    >>> from hf_s1.train.sft import S1KScriptArguments
    >>> args = S1KScriptArguments(dataset_train_split="train[:64]", think_format="r1")
    >>> isinstance(args, ScriptArguments), args.dataset_name, args.dataset_train_split
    (True, 's1k', 'train[:64]')

    ```
    """

    dataset_name: str | None = field(default="s1k",
                                     metadata={"help": "s1k, s1k-1.1, a Hub id, or a local jsonl/parquet"})
    trace: str | None = field(default=None, metadata={"help": "s1k, gemini or deepseek trace columns (default: detect)"})
    think_format: str = field(default="s1", metadata={"help": "think markers: a preset name (s1, r1, qwen3, ...)"})
    system_prompt: str | None = field(default=None, metadata={"help": "system message (default: the template's)"})
    max_train_samples: int | None = field(default=None, metadata={"help": "use only the first N rows"})
    resume: bool = field(default=True, metadata={"help": "resume from the last checkpoint in output_dir"})
    stop_after_steps: int | None = field(default=None, metadata={"help": "stop (with a checkpoint) after N steps"})
    base_model: str | None = field(
        default=None, metadata={"help": "Hub id the model card names as the base model (for a local model folder)"})

    def __post_init__(self) -> None:
        if hasattr(super(), "__post_init__"):  # TRL's own checks, in releases that have them
            super().__post_init__()
        if not self.dataset_name:
            raise DataError("set dataset_name: s1k, s1k-1.1, a Hub data set id or a local .jsonl/.parquet path.")
        from ..formats import get_format

        try:
            get_format(self.think_format)
        except HfS1Error as exc:
            raise DataError(f"think_format: {exc}") from None
        if self.dataset_streaming:
            raise DataError("dataset_streaming is not supported by the s1K recipe (rows are formatted in memory); "
                            "set it to false.")
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
    kwargs = {"name": script_args.dataset_config} if script_args.dataset_config else {}
    dataset = load_s1k(script_args.dataset_name, split=script_args.dataset_train_split, **kwargs)
    if script_args.max_train_samples is not None:
        dataset = dataset.select(range(min(script_args.max_train_samples, dataset.num_rows)))
    return format_s1k(dataset, think_format=script_args.think_format, trace=script_args.trace,
                      system_prompt=script_args.system_prompt)


def card_base_model(model_name_or_path: str | None, base_model: str | None = None) -> str | None:
    """The base model the trained model's card names: `base_model` when given, `EMBEDDED_BASE_MODEL` for
    `embedded`, a Hub id as is, None for a local folder (TRL's own rule).

    Examples:

    ```python
    >>> card_base_model("embedded"), card_base_model("Qwen/Qwen2.5-32B-Instruct")
    ('HuggingFaceTB/SmolLM2-135M-Instruct', 'Qwen/Qwen2.5-32B-Instruct')
    >>> card_base_model("/tmp", base_model="me/my-base"), card_base_model("/tmp")
    ('me/my-base', None)

    ```
    """
    if base_model:
        return base_model
    if not model_name_or_path:
        return None
    if model_name_or_path == EMBEDDED_MODEL:
        return EMBEDDED_BASE_MODEL
    return None if os.path.isdir(model_name_or_path) else model_name_or_path


def card_dataset_name(dataset_name: str | None) -> str | None:
    """The Hub data set id the model card names (`s1k` -> `simplescaling/s1K`); None for a local file or folder,
    which has no Hub page to link.

    Examples:

    ```python
    >>> card_dataset_name("s1k"), card_dataset_name("s1k-1.1"), card_dataset_name("./my_s1k.jsonl")
    ('simplescaling/s1K', 'simplescaling/s1K-1.1', None)

    ```
    """
    from ..data.loading import S1K_HUB_IDS

    if not dataset_name:
        return None
    name = S1K_HUB_IDS.get(dataset_name.lower(), dataset_name)
    if os.path.exists(os.path.expanduser(name)) or name.startswith((".", "/", "~")) or name.count("/") != 1:
        return None
    return name


def _card_trainer_class():
    from trl import SFTTrainer

    class S1KSFTTrainer(SFTTrainer):
        """`SFTTrainer` whose model cards (written with every checkpoint and on push) name the base model and the
        data set even when the model was loaded from a local folder: TRL takes the base model from the config's
        `_name_or_path` and leaves it out for a folder, which renders as "fine-tuned version of [None]"."""

        def __init__(self, *args: Any, card_base_model: str | None = None, card_dataset_name: str | None = None,
                     **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.card_base_model = card_base_model
            self.card_dataset_name = card_dataset_name

        def create_model_card(self, model_name: str | None = None, dataset_name: str | None = None,
                              tags: str | list[str] | None = None):
            dataset_name = dataset_name or self.card_dataset_name
            config = getattr(self.model, "config", None)
            if self.card_base_model is None or config is None:
                return super().create_model_card(model_name=model_name, dataset_name=dataset_name, tags=tags)
            # TRL reads the base model from the config (trl.trainer.utils.get_config_model_id): name it there for
            # the card only, then restore the loading path.
            loaded_from = getattr(config, "_name_or_path", "")
            config._name_or_path = self.card_base_model
            try:
                return super().create_model_card(model_name=model_name, dataset_name=dataset_name, tags=tags)
            finally:
                config._name_or_path = loaded_from

    return S1KSFTTrainer


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
    from trl import get_peft_config

    if not model_args.model_name_or_path:
        raise DataError("set model_name_or_path (a Hub id or a local folder) in the YAML config or on the command line.")
    base_model = card_base_model(model_args.model_name_or_path, script_args.base_model)
    if base_model is None:
        logger.warning("model_name_or_path is a local folder: set base_model (its Hub id) so the model card names "
                       "the model this one was fine-tuned from.")
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
    trainer = _card_trainer_class()(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=callbacks,
        card_base_model=base_model,
        card_dataset_name=card_dataset_name(script_args.dataset_name),
    )
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_state()
    interrupted = script_args.stop_after_steps is not None and trainer.state.global_step < trainer.state.max_steps
    if not interrupted:
        trainer.save_model(training_args.output_dir)
        if training_args.push_to_hub:
            trainer.push_to_hub(dataset_name=card_dataset_name(script_args.dataset_name))
    # Every rank reaches the teardown together: a rank that tears down early can leave the others blocked.
    trainer.accelerator.wait_for_everyone()
    if hasattr(trainer, "end"):  # transformers >= 5.18 tears down trackers and the process group here
        trainer.end()
    return trainer
