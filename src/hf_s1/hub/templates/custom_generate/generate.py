"""s1 budget forcing for `model.generate(custom_generate=...)` (arXiv 2501.19393).

Written by `hf_s1.hub.export_custom_generate`. The logic lives in the `hf-s1` package
(`hf_s1.hub.custom_generate.budget_forcing_generate`); this file only carries the repository's default policy.

    out = model.generate(**inputs, custom_generate="<this repo>", trust_remote_code=True, tokenizer=tokenizer,
                         thinking_budget={"max_thinking_tokens": 1024, "num_waits": 1})   # optional override
"""

from hf_s1.hub.custom_generate import budget_forcing_generate

# The repository's thinking-budget policy (hf_s1.hub.BudgetPolicy.to_dict()); used when neither the call
# (thinking_budget=...) nor the model's generation_config.thinking_budget gives one.
DEFAULT_POLICY = None


def generate(model, *args, **kwargs):
    """`GenerationMixin.generate` with s1 budget forcing; takes `generate`'s arguments plus `thinking_budget`,
    `think_format` and `tokenizer`."""
    kwargs.setdefault("default_policy", DEFAULT_POLICY)
    return budget_forcing_generate(model, *args, **kwargs)
