"""Budget forcing for vLLM: a batch-level logits processor for `vllm.LLM` and `vllm serve`, plus
`generate_with_budget()` (same result type as the transformers engine) and a multi-call loop in s1's shape (hf-s1's rules) on vLLM.

One class, `BudgetForcingLogitsProcessor`, implements both logits-processor interfaces vLLM has:

- the V1 model runner's `vllm.v1.sample.logits_processor.LogitsProcessor` (`update_state(BatchUpdate)` +
  `apply(logits)`; used whenever Model Runner V2 is off: CPU builds without Triton, `VLLM_USE_V2_MODEL_RUNNER=0`),
- Model Runner V2's `vllm.v1.worker.gpu.sample.logits_processor.LogitsProcessor` (`add_request()` +
  `apply_staged_writes()` + `apply(logits, ctx)`; the default runner of vLLM on GPUs).

Modules, by job: `params` (what a request carries in `SamplingParams.extra_args`), `sampling` (the sampler
settings that decide how likely an end is), `processor` (the adapter onto `hf_s1.engines.batch_budget`),
`telemetry` (the processor's injection logs, collected from the workers for exact telemetry), `llm`
(`vllm.LLM` helpers).
"""

from .llm import generate_with_budget, load_llm, s1_reference_generate
from .params import BUDGET_KEY, DEFAULT_BUDGET_ENV, FORMAT_KEY, LOG_KEY, budget_from_params
from .processor import BudgetForcingLogitsProcessor
from .telemetry import WORKER_EXTENSION, collect_injection_logs, fetch_injection_logs

__all__ = [
    "BUDGET_KEY",
    "FORMAT_KEY",
    "LOG_KEY",
    "WORKER_EXTENSION",
    "DEFAULT_BUDGET_ENV",
    "BudgetForcingLogitsProcessor",
    "budget_from_params",
    "collect_injection_logs",
    "fetch_injection_logs",
    "load_llm",
    "generate_with_budget",
    "s1_reference_generate",
]
