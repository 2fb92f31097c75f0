"""The SFT recipe (recipes/sft_s1k.py) under accelerate: 2 processes, 2 machines on loopback, and resume.

Launches use a tiny random Llama built from SmolLM2's config and tokenizer so they stay fast; one short run trains
the real SmolLM2-135M-Instruct."""

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "sft_s1k.py"
CPU_CONFIG = ROOT / "recipes" / "smollm2-135m" / "s1k-cpu.yaml"
FIXTURE = ROOT / "tests" / "fixtures" / "s1k" / "s1k_rows.jsonl"
LAUNCH_TIMEOUT = 900  # generous: CI machines are shared


def _recipe_args(model, out, *extra):
    # 4 fixture rows, 2 per process x 2 processes (or 4 in one process): every step sees the same batch.
    return ["--config", str(CPU_CONFIG), "--model_name_or_path", str(model), "--dataset_name", str(FIXTURE),
            "--output_dir", str(out), "--max_steps", "4", "--gradient_accumulation_steps", "1",
            "--learning_rate", "1e-3", "--max_train_samples", "4", *extra]


def _launch(*launch_args, recipe_args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--mixed_precision", "no",
           "--dynamo_backend", "no", *launch_args, str(RECIPE), *recipe_args]
    # Own session, so a stuck launch can be ended with all of its workers.
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _finish(proc):
    try:
        out, _ = proc.communicate(timeout=LAUNCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"accelerate launch did not finish in {LAUNCH_TIMEOUT} s:\n{out[-4000:]}")
    assert proc.returncode == 0, out[-4000:]
    return out


def _losses(out_dir):
    state = json.loads((Path(out_dir) / "trainer_state.json").read_text())
    return [(e["step"], e["loss"], e["num_tokens"]) for e in state["log_history"] if "loss" in e]


def _fixture_tokens(model_dir):
    from hf_s1.data import load_s1k, to_messages
    from hf_s1.train.sft import prepare_tokenizer

    tokenizer = prepare_tokenizer(str(model_dir))
    return sum(len(tokenizer.apply_chat_template(to_messages(r), tokenize=True, return_dict=True)["input_ids"])
               for r in load_s1k(FIXTURE))


@pytest.fixture(scope="module")
def two_process_run(tiny_model_dir, tmp_path_factory, free_port):
    out = tmp_path_factory.mktemp("ddp")
    proc = _launch("--num_processes", "2", "--num_machines", "1", "--main_process_port", str(free_port()),
                   recipe_args=_recipe_args(tiny_model_dir, out))
    _finish(proc)
    return out


def test_two_processes_train_and_loss_goes_down(two_process_run, tiny_model_dir):
    losses = _losses(two_process_run)
    assert [s for s, _, _ in losses] == [1, 2, 3, 4]
    # Each step consumed all 4 rows: 2 per process on 2 processes (one process would see 2 per step).
    assert losses[0][2] == _fixture_tokens(tiny_model_dir)
    assert losses[-1][1] < losses[0][1] - 0.1, losses
    assert (Path(two_process_run) / "model.safetensors").exists()


def test_two_machines_rendezvous_on_loopback(two_process_run, tiny_model_dir, tmp_path, free_port):
    port = str(free_port())
    procs = [
        _launch("--num_processes", "2", "--num_machines", "2", "--machine_rank", str(rank),
                "--main_process_ip", "127.0.0.1", "--main_process_port", port,
                recipe_args=_recipe_args(tiny_model_dir, tmp_path))
        for rank in (0, 1)
    ]
    try:
        outs = [_finish(p) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    assert "loss" in outs[0]
    # Same data shards, same all-reduce: the two-machine run follows the one-machine run step for step.
    for (s1, l1, n1), (s2, l2, n2) in zip(_losses(tmp_path), _losses(two_process_run), strict=True):
        assert (s1, n1) == (s2, n2) and math.isclose(l1, l2, rel_tol=1e-4)


def _run_in_process(args):
    from trl import ModelConfig, SFTConfig, TrlParser

    from hf_s1.train.sft import S1KScriptArguments, run_sft

    parser = TrlParser((S1KScriptArguments, SFTConfig, ModelConfig))
    return run_sft(*parser.parse_args_and_config(args=args))


def test_resume_matches_an_uninterrupted_run(tiny_model_dir, tmp_path):
    extra = ("--per_device_train_batch_size", "4", "--save_steps", "2")
    full = _run_in_process(_recipe_args(tiny_model_dir, tmp_path / "full", *extra))
    stopped = _run_in_process(_recipe_args(tiny_model_dir, tmp_path / "resumed", *extra, "--stop_after_steps", "2"))
    assert stopped.state.global_step == 2 and (tmp_path / "resumed" / "checkpoint-2").is_dir()
    assert not (tmp_path / "resumed" / "model.safetensors").exists()  # an interrupted run saves no final model
    resumed = _run_in_process(_recipe_args(tiny_model_dir, tmp_path / "resumed", *extra))
    full_losses, resumed_losses = _losses(tmp_path / "full"), _losses(tmp_path / "resumed")
    assert resumed.state.global_step == 4 and [s for s, _, _ in resumed_losses] == [1, 2, 3, 4]
    assert full_losses[-1][1] > 0
    # (TRL restarts its num_tokens counter on resume, so only steps and losses are compared.)
    for (s1, l1, _), (s2, l2, _) in zip(full_losses, resumed_losses, strict=True):
        assert s1 == s2 and math.isclose(l1, l2, rel_tol=1e-5), (full_losses, resumed_losses)


def test_real_smollm2_short_run(default_model_dir, tmp_path):
    # `embedded`: the offline copy of SmolLM2-135M-Instruct (the same folder as default_model_dir).
    trainer = _run_in_process(_recipe_args("embedded", tmp_path, "--max_steps", "2", "--max_train_samples",
                                           "1", "--per_device_train_batch_size", "1", "--learning_rate", "1e-4",
                                           "--save_strategy", "no", "--warmup_steps", "0"))
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert losses[1] < losses[0]  # the same batch twice: the step lowered its loss
    # The saved model prompts exactly as the base model does, so budget forcing works on it unchanged.
    from transformers import AutoTokenizer

    from hf_s1.formats import S1_FORMAT
    from hf_s1.prompts import build_prompt

    saved, base = AutoTokenizer.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(default_model_dir)
    assert build_prompt(saved, "What is 2+3?", S1_FORMAT) == build_prompt(base, "What is 2+3?", S1_FORMAT)
    # TRL's model card (written with checkpoints and on push) names the embedded model's Hub id, not "[None]".
    trainer.create_model_card(model_name="s1-smollm2")
    card = (tmp_path / "README.md").read_text()
    assert "fine-tuned version of [HuggingFaceTB/SmolLM2-135M-Instruct]" in card and "[None]" not in card, card[:1500]
