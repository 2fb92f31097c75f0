"""lm-eval with `--model hf-s1` vs `hf-s1 eval`: the same questions, budget and engine, side by side in one run.

Both sides share one vLLM engine (the embedded SmolLM2-135M-Instruct, fp32, greedy). lm-eval reads a local task
whose prompts are hf-s1's own for the same questions, so both send the same contexts; the script prints each
side's wall time, their ratio, and on how many questions the two extracted answers (hf-s1's grading, on the
answer part) and thinking-token counts agree.

    python bench/bench_lm_eval.py --data ../shared/data/math500/test.jsonl --limit 32
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hf_s1.eval import expand_runs, load_benchmark, read_samples, run_sweep  # noqa: E402
from hf_s1.eval.engines import VLLMEngine  # noqa: E402
from hf_s1.eval.grading import grade  # noqa: E402
from hf_s1.harness.lm_eval import HfS1LM  # noqa: E402

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "arithmetic.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(FIXTURE), help="a benchmark .jsonl")
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--max-thinking", type=int, default=64)
    parser.add_argument("--num-waits", type=int, default=1)
    parser.add_argument("--max-answer", type=int, default=32)
    args = parser.parse_args()

    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    bench = load_benchmark("bench", data=args.data, limit=args.limit)
    lm = HfS1LM(engine="vllm", max_model_len=2048)
    engine = VLLMEngine(lm.engine.llm)
    runs = expand_runs(["budget-forcing"], max_thinking=[args.max_thinking], num_waits=[args.num_waits],
                       max_answer_tokens=args.max_answer)

    tmp = Path(tempfile.mkdtemp(prefix="bench-lm-eval-"))
    data = tmp / "questions.jsonl"
    data.write_text("".join(json.dumps({"id": q.id, "prompt": q.prompt}) + "\n" for q in bench.questions))
    (tmp / "bench_task.yaml").write_text(
        f"task: hf_s1_bench\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
        "output_type: generate_until\ntest_split: test\ndoc_to_text: '{{prompt}}'\ndoc_to_target: ''\n"
        "generation_kwargs:\n  until: []\n  do_sample: false\n"
        "metric_list:\n  - metric: exact_match\nmetadata:\n  version: 0\n")
    gen_kwargs = (f"max_thinking_tokens={args.max_thinking},num_waits={args.num_waits},"
                  f"max_answer_tokens={args.max_answer},max_gen_toks=2048")
    manager = TaskManager(include_path=str(tmp))

    def lm_eval_run():
        out = simple_evaluate(model=lm, tasks=["hf_s1_bench"], task_manager=manager, gen_kwargs=gen_kwargs,
                              apply_chat_template=True, log_samples=True)
        return sorted(out["samples"]["hf_s1_bench"], key=lambda s: s["doc_id"])

    def hf_s1_run():
        folder = tempfile.mkdtemp(prefix="bench-hf-s1-eval-")
        run_sweep(engine, bench, runs, folder, progress=False)
        return read_samples(folder)

    small = load_benchmark("warm", data=args.data, limit=2)  # warm the engine outside the timings
    run_sweep(engine, small, runs, tempfile.mkdtemp(), progress=False)

    start = time.perf_counter()
    ours = hf_s1_run()
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    theirs = lm_eval_run()
    t_theirs = time.perf_counter() - start

    by_id = {r["id"]: r for r in ours}
    same_answer = same_tokens = 0
    for q, sample in zip(bench.questions, theirs):
        response = sample["resps"][0][0]
        answer = response.split("<|im_start|>answer", 1)[-1]
        record = sample["arguments"][0][1]["hf_s1"][0]
        same_answer += grade(answer, q.answer, q.kind).extracted == by_id[q.id]["extracted"]
        same_tokens += record["thinking_tokens"] == by_id[q.id]["thinking_tokens"]
    n = len(bench)
    print(f"{n} questions from {args.data}, budget max={args.max_thinking} waits={args.num_waits} "
          f"answer<={args.max_answer}, vLLM fp32 greedy")
    print(f"hf-s1 eval:           {t_ours:7.2f} s")
    print(f"lm-eval --model hf-s1: {t_theirs:7.2f} s")
    print(f"ratio lm-eval / hf-s1 eval (wall time): {t_theirs / t_ours:.2f}x")
    print(f"identical extracted answers: {same_answer}/{n}; identical thinking tokens: {same_tokens}/{n}")


if __name__ == "__main__":
    main()
