"""Engine adapters: `transformers` (a logits processor for `generate`) and `vllm` (a logits processor for vLLM's
model runners), both thin layers over `batch_budget.BatchBudget`, the batch form of `hf_s1.budget`.
Nothing is imported here, so `import hf_s1` never loads an engine."""
