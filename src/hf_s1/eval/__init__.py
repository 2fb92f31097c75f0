"""Test-time scaling evaluation: benchmarks, grading, methods, sweeps, the paper's metrics, reports.

```python
from hf_s1.eval import expand_runs, load_benchmark, load_engine, run_sweep, write_report

bench = load_benchmark("math500", data="math500/test.jsonl", limit=50)       # or from the Hub without data=
runs = expand_runs(["budget-forcing"], max_thinking=[512, 1024, 2048], num_waits=[0, 1])
run_sweep(load_engine("vllm", "simplescaling/s1.1-32B"), bench, runs, "runs/math500")
write_report("runs/math500")                                    # summary.md (Table 3 columns) + scaling.png
```
"""

from .benchmarks import BENCHMARKS, Benchmark, BenchmarkSpec, Question, load_benchmark, questions_from_rows
from .engines import ENGINES, GenerationEngine, TransformersEngine, VLLMEngine, load_engine
from .errors import EvalError
from .grading import Grade, extract_boxed, extract_choice, extract_math_answer, grade, grade_choice, grade_math
from .methods import METHODS, PASS_AT_1_METHODS, RunSpec, expand_runs, pass_at_1_name
from .metrics import control, majority_vote, pass_at_k, performance, scaling
from .plot import plot_scaling, scaling_figure
from .report import METRIC_DEFINITIONS, MethodSummary, RunPoint, Summary, render_markdown, summarize, write_report
from .sweep import read_manifest, read_samples, run_sweep

__all__ = [
    "BENCHMARKS", "Benchmark", "BenchmarkSpec", "Question", "load_benchmark", "questions_from_rows",
    "ENGINES", "GenerationEngine", "TransformersEngine", "VLLMEngine", "load_engine",
    "EvalError",
    "Grade", "extract_boxed", "extract_choice", "extract_math_answer", "grade", "grade_choice", "grade_math",
    "METHODS", "PASS_AT_1_METHODS", "RunSpec", "expand_runs", "pass_at_1_name",
    "control", "majority_vote", "pass_at_k", "performance", "scaling",
    "plot_scaling", "scaling_figure",
    "METRIC_DEFINITIONS", "MethodSummary", "RunPoint", "Summary", "render_markdown", "summarize", "write_report",
    "read_manifest", "read_samples", "run_sweep",
]
