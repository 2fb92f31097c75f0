"""GRPO with budget-forced rollouts: every rollout ends with an answer inside its thinking budget, and the tokens
the budget forced are left out of the policy loss (hf_s1.train.grpo).

    accelerate launch recipes/grpo_budget.py --config recipes/smollm2-135m/grpo_budget.yaml
    accelerate launch --multi_gpu --num_processes 2 recipes/grpo_budget.py --config recipes/smollm2-135m/grpo_budget.yaml

Every YAML key or `--flag` is a field of `GRPOBudgetArguments` (hf_s1.train.grpo), `trl.GRPOConfig` or
`trl.ModelConfig`; flags override the YAML. See docs/training.md.
"""

from trl import GRPOConfig, ModelConfig, TrlParser

from hf_s1.train.grpo import GRPOBudgetArguments, run_grpo


def main() -> None:
    parser = TrlParser((GRPOBudgetArguments, GRPOConfig, ModelConfig))
    script_args, training_args, model_args = parser.parse_args_and_config()
    run_grpo(script_args, training_args, model_args)


if __name__ == "__main__":
    main()
