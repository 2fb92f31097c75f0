"""recipes/slurm/train.slurm derives machine ranks and the rendezvous address from Slurm's environment.

Slurm's commands are replaced by small scripts that behave like them on a 2-node allocation: `srun` starts the
task once per node with that node's SLURM_NODEID, `accelerate` records its arguments."""

import os
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "recipes" / "slurm" / "train.slurm"


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_slurm_launcher_ranks_and_main_address(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "launches.txt"
    _stub(bin_dir / "scontrol", 'echo gpu-node-07; echo gpu-node-08\n')
    _stub(bin_dir / "nvidia-smi", 'for i in 0 1 2 3 4 5 6 7; do echo "GPU $i: H100"; done\n')
    # srun: drop its own options, run the task once per node with that node's id.
    _stub(bin_dir / "srun", 'while [[ "$1" == --* ]]; do shift; done\n'
                            'for id in $(seq 0 $((SLURM_NNODES - 1))); do SLURM_NODEID=$id "$@"; done\n')
    _stub(bin_dir / "accelerate", f'echo "$@" >> {log}\n')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_NNODES": "2",
           "SLURM_JOB_NODELIST": "gpu-node-[07-08]", "SLURM_SUBMIT_DIR": str(ROOT)}
    out = subprocess.run(["bash", str(SCRIPT), "qwen2.5-32b-instruct/s1k.yaml", "fsdp2", "--save_steps", "25"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    launches = log.read_text().splitlines()
    assert len(launches) == 2
    for rank, line in enumerate(launches):
        args = line.split()
        value = lambda flag: args[args.index(flag) + 1]  # noqa: E731
        assert value("--machine_rank") == str(rank)
        assert value("--main_process_ip") == "gpu-node-07"
        assert (value("--num_machines"), value("--num_processes")) == ("2", "16")
        assert value("--config_file") == "recipes/accelerate_configs/fsdp2.yaml"
        assert Path(ROOT / value("--config")).is_file() and (ROOT / value("--config_file")).is_file()
        assert args[-2:] == ["--save_steps", "25"] and "recipes/sft_s1k.py" in args


def test_paper_config_parses_with_the_paper_hyperparameters():
    from trl import ModelConfig, SFTConfig, TrlParser

    from hf_s1.train.sft import S1KScriptArguments

    parser = TrlParser((S1KScriptArguments, SFTConfig, ModelConfig))
    script, train, model = parser.parse_args_and_config(
        args=["--config", str(ROOT / "recipes" / "qwen2.5-32b-instruct" / "s1k.yaml"), "--bf16", "false"])
    assert model.model_name_or_path == "Qwen/Qwen2.5-32B-Instruct" and script.think_format == "s1"
    assert (train.learning_rate, train.num_train_epochs, train.weight_decay) == (1e-5, 5, 1e-4)
    assert (train.adam_beta1, train.adam_beta2, train.warmup_steps) == (0.9, 0.95, 0.05)
    assert train.lr_scheduler_type == "cosine" and train.max_length == 32768 and train.gradient_checkpointing
    assert train.assistant_only_loss and train.per_device_train_batch_size * train.gradient_accumulation_steps * 16 == 16
    s11 = parser.parse_args_and_config(
        args=["--config", str(ROOT / "recipes" / "qwen2.5-32b-instruct" / "s1.1k.yaml"), "--bf16", "false"])[0]
    assert (s11.dataset_name, s11.trace) == ("simplescaling/s1K-1.1", "deepseek")
