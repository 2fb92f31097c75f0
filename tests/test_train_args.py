"""The recipe's arguments follow TRL's conventions (`trl.ScriptArguments` keys carry over), and the model card TRL
writes names the base model and the data set."""

import dataclasses
import math
from pathlib import Path

import pytest
from trl import ModelConfig, ScriptArguments, SFTConfig, TrlParser

from hf_s1.data import DataError
from hf_s1.train import sft
from hf_s1.train.sft import EMBEDDED_BASE_MODEL, S1KScriptArguments, card_base_model, card_dataset_name

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(p for p in (ROOT / "recipes").glob("*/*.yaml") if p.parent.name != "accelerate_configs")
FIXTURE = ROOT / "tests" / "fixtures" / "s1k" / "s1k_rows.jsonl"
CPU_CONFIG = ROOT / "recipes" / "smollm2-135m" / "s1k-cpu.yaml"


def _parser():
    return TrlParser((S1KScriptArguments, SFTConfig, ModelConfig))


def test_script_arguments_extend_trls_with_its_field_names_and_defaults():
    assert issubclass(S1KScriptArguments, ScriptArguments)
    ours = {f.name: f for f in dataclasses.fields(S1KScriptArguments)}
    for f in dataclasses.fields(ScriptArguments):
        assert f.name in ours, f.name
        if f.name != "dataset_name":  # ours defaults to s1K instead of None
            assert ours[f.name].default == f.default, f.name
    assert S1KScriptArguments().dataset_name == "s1k"
    assert "dataset_split" not in ours  # the pre-TRL name is gone


def test_a_trl_style_yaml_carries_over(tmp_path):
    config = tmp_path / "trl.yaml"
    config.write_text("model_name_or_path: Qwen/Qwen2.5-0.5B-Instruct\n"
                      "dataset_name: simplescaling/s1K\n"
                      "dataset_config: default\n"
                      "dataset_train_split: train[:64]\n"
                      "dataset_test_split: validation\n"
                      "dataset_streaming: false\n"
                      "output_dir: out\n"
                      "use_cpu: true\n"
                      "bf16: false\n"
                      "think_format: r1\n")
    script, train, model = _parser().parse_args_and_config(args=["--config", str(config)])
    assert (script.dataset_name, script.dataset_config, script.dataset_train_split, script.dataset_test_split) == (
        "simplescaling/s1K", "default", "train[:64]", "validation")
    assert script.think_format == "r1" and model.model_name_or_path == "Qwen/Qwen2.5-0.5B-Instruct"
    # Flags override the YAML under TRL's names too.
    script = _parser().parse_args_and_config(args=["--config", str(config), "--dataset_train_split", "train"])[0]
    assert script.dataset_train_split == "train"


def test_the_old_split_key_is_named_as_unknown(tmp_path):
    config = tmp_path / "old.yaml"
    config.write_text("model_name_or_path: x\ndataset_split: train\noutput_dir: out\nuse_cpu: true\nbf16: false\n")
    with pytest.raises(ValueError, match="dataset_split"):
        _parser().parse_args_and_config(args=["--config", str(config)])


def _grpo_parser():
    from trl import GRPOConfig

    from hf_s1.train.grpo import GRPOBudgetArguments

    return TrlParser((GRPOBudgetArguments, GRPOConfig, ModelConfig))


@pytest.mark.parametrize("config", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_recipe_parses_with_trls_keys(config):
    args = ["--config", str(config), "--bf16", "false", "--use_cpu", "true"]
    grpo = config.name.startswith("grpo")  # recipes/grpo_budget.py's configs; the others are recipes/sft_s1k.py's
    script = (_grpo_parser() if grpo else _parser()).parse_args_and_config(args=args)[0]
    # MATH-500 has a test split only; s1K trains on train.
    assert isinstance(script, ScriptArguments) and script.dataset_train_split == ("test" if grpo else "train")
    assert "dataset_train_split:" in config.read_text()


def test_streaming_and_bad_values_are_refused():
    with pytest.raises(DataError, match="dataset_streaming"):
        S1KScriptArguments(dataset_streaming=True)
    with pytest.raises(DataError, match="dataset_name"):
        S1KScriptArguments(dataset_name="")
    with pytest.raises(DataError, match="think_format"):
        S1KScriptArguments(think_format="r2")


def test_split_and_config_reach_the_loader(monkeypatch):
    calls = []

    def fake_load(source, *, split="train", **kwargs):
        calls.append((source, split, kwargs))
        raise RuntimeError("stop")

    monkeypatch.setattr(sft, "load_s1k", fake_load)
    for args in (S1KScriptArguments(dataset_name="org/set", dataset_train_split="train[:10]"),
                 S1KScriptArguments(dataset_name="org/set", dataset_config="hard")):
        with pytest.raises(RuntimeError, match="stop"):
            sft.build_train_dataset(args)
    assert calls == [("org/set", "train[:10]", {}), ("org/set", "train", {"name": "hard"})]


def test_card_names_the_base_model_and_the_hub_data_set(tmp_path):
    assert card_base_model("embedded") == EMBEDDED_BASE_MODEL == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card_base_model("Qwen/Qwen2.5-32B-Instruct") == "Qwen/Qwen2.5-32B-Instruct"
    assert card_base_model(str(tmp_path)) is None  # a folder names nothing by itself (TRL's rule) ...
    assert card_base_model(str(tmp_path), "me/base") == "me/base"  # ... unless base_model is set
    assert card_dataset_name("s1k") == "simplescaling/s1K" and card_dataset_name("S1K-1.1") == "simplescaling/s1K-1.1"
    assert card_dataset_name("simplescaling/s1K") == "simplescaling/s1K"
    assert card_dataset_name(str(FIXTURE)) is None and card_dataset_name("s1k-mine") is None


def test_checkpoint_card_of_a_folder_model_names_base_model(tiny_model_dir, tmp_path):
    """TRL writes README.md with every checkpoint; for a model loaded from a folder it named "[None]"."""
    args = ["--config", str(CPU_CONFIG), "--model_name_or_path", str(tiny_model_dir), "--dataset_name", str(FIXTURE),
            "--output_dir", str(tmp_path), "--max_steps", "1", "--max_train_samples", "2",
            "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--save_steps", "1",
            "--base_model", "HuggingFaceTB/SmolLM2-135M-Instruct"]
    trainer = sft.run_sft(*_parser().parse_args_and_config(args=args))
    card = (tmp_path / "README.md").read_text()
    assert "fine-tuned version of [HuggingFaceTB/SmolLM2-135M-Instruct]" in card, card[:1500]
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card
    assert "[None]" not in card
    # The card is named, the model is not renamed: its config still points where it was loaded from.
    assert trainer.model.config._name_or_path == str(tiny_model_dir)
    assert all(math.isfinite(e["loss"]) for e in trainer.state.log_history if "loss" in e)
