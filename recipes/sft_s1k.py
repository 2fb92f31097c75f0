"""Supervised fine-tuning on s1K in the s1 think format (loss on the assistant turn only).

    accelerate launch --config_file recipes/accelerate_configs/fsdp2.yaml recipes/sft_s1k.py \
        --config recipes/qwen2.5-32b-instruct/s1k.yaml
    accelerate launch recipes/sft_s1k.py --config recipes/smollm2-135m/s1k-cpu.yaml

Every YAML key or `--flag` is a field of `S1KScriptArguments` (hf_s1.train.sft), `trl.SFTConfig` or
`trl.ModelConfig`; flags override the YAML. See recipes/README.md.
"""

from trl import ModelConfig, SFTConfig, TrlParser

from hf_s1.train.sft import S1KScriptArguments, run_sft


def main() -> None:
    parser = TrlParser((S1KScriptArguments, SFTConfig, ModelConfig))
    script_args, training_args, model_args = parser.parse_args_and_config()
    run_sft(script_args, training_args, model_args)


if __name__ == "__main__":
    main()
