"""hf-s1 inside the evaluation harnesses people publish with: their tasks, prompts, answer extraction, metrics and
result files, with hf-s1's budget forcing as the model backend.

- `gen_kwargs`: a harness request's generation settings (s1's names or hf-s1's) as a `ThinkingBudget`;
- `lm_eval`: the lm-evaluation-harness model `hf-s1` (`hf-s1-lm-eval ...`; needs the `[lm-eval]` extra).

Harness modules are imported on demand (`import hf_s1.harness.lm_eval`): each needs its harness installed.
"""

from .gen_kwargs import HarnessRequest, from_gen_kwargs

__all__ = ["HarnessRequest", "from_gen_kwargs"]
