"""lm-eval, s1's command shape with 4 Waits: hf-s1's single pass vs s1's multi-call loop, side by side in one run.

Both are lm-eval models over one `vllm.LLM` (the embedded SmolLM2-135M-Instruct, fp32, greedy) and run the same
local task through `lm_eval.simple_evaluate` with the same `--gen_kwargs`:

- `hf-s1` (`hf_s1.harness.lm_eval.HfS1LM`): one engine pass per request (the s1 profile), resumed from the cut
  only where a row's rounds ran past the cap;
- `S1Rounds` (below): the loop of s1's lm-eval fork (`_model_generate`), batched per round as s1 batches it:
  every round is one `llm.generate` over the unfinished requests, which re-reads prompt + thinking so far; then
  the cut and one answer call.

Prints each wall time, the ratio, and how many responses are identical.

    python bench/bench_lm_eval_s1_loop.py --data ../shared/data/math500/test.jsonl --limit 32
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

from lm_eval.api.model import LM  # noqa: E402

from hf_s1.eval import load_benchmark  # noqa: E402
from hf_s1.formats import marker_tokens  # noqa: E402
from hf_s1.harness import from_gen_kwargs  # noqa: E402
from hf_s1.harness.lm_eval import HfS1LM  # noqa: E402

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "arithmetic.jsonl"


class S1Rounds(LM):
    """s1's fork's thinking loop on a `vllm.LLM`: rounds up to the cap that stop at an end token, "Wait" appended
    between rounds, the joined thinking cut to the cap, the cut form from the last round, then the answer."""

    def __init__(self, llm, fmt) -> None:
        super().__init__()
        self.llm, self.fmt = llm, fmt
        self.tok = llm.get_tokenizer()
        self.m = marker_tokens(self.tok, fmt)

    def apply_chat_template(self, chat_history, add_generation_prompt=True):
        return self.tok.apply_chat_template(chat_history, tokenize=False, add_generation_prompt=add_generation_prompt)

    @property
    def tokenizer_name(self):
        return "s1-rounds"

    def loglikelihood(self, requests):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError

    def generate_until(self, requests, disable_tqdm=False):
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        ask = from_gen_kwargs(requests[0].args[1], default_format=self.fmt)
        cap, n, m = ask.budget.max_thinking_tokens, ask.budget.num_waits, self.m
        wait = m.encode_budget_string(ask.budget.extrapolation[0], "extrapolation")
        ends = [m.think_end[0], *m.stop_ids]
        end_max = self.tok.encode(self.fmt.think_end + "\nFinal Answer:", add_special_tokens=False)
        newline = self.tok.encode("\n", add_special_tokens=False)
        prompts = [self.tok.encode(r.args[0], add_special_tokens=False) + list(m.think_start) for r in requests]
        joined = [[] for _ in requests]
        last = [[] for _ in requests]
        stopped = [False] * len(requests)
        active = list(range(len(requests)))
        for i in range(n + 1):  # one batched call per round over the rows still thinking
            sp = SamplingParams(max_tokens=cap, temperature=0.0, stop_token_ids=ends, min_tokens=1 if n else 0,
                                skip_special_tokens=False)
            outs = self.llm.generate([TokensPrompt(prompt_token_ids=prompts[j] + joined[j]) for j in active], sp,
                                     use_tqdm=False)
            still = []
            for j, o in zip(active, outs):
                out = list(o.outputs[0].token_ids)
                last[j], stopped[j] = out, bool(out) and out[-1] in ends
                if not stopped[j] or i == n:
                    joined[j] += out
                else:
                    joined[j] += out[:-1] + list(wait)
                    still.append(j)
            active = still
            if not active:
                break
        heads = []
        for j in range(len(requests)):
            kept = joined[j][:cap]
            if kept and kept[-1] in ends:
                kept = kept[:-1]
            if stopped[j]:
                cut = list(m.think_end)
            else:
                cut = ([] if last[j] and last[j][-1] in m.ends_with_before_end else list(newline)) + end_max
            heads.append(kept + cut)
        sp = SamplingParams(max_tokens=ask.max_gen_toks, temperature=0.0, stop_token_ids=list(m.stop_ids),
                            skip_special_tokens=False)
        answers = self.llm.generate([TokensPrompt(prompt_token_ids=p + h) for p, h in zip(prompts, heads)], sp,
                                    use_tqdm=False)
        out = []
        for h, a in zip(heads, answers):
            ids = h + [t for t in a.outputs[0].token_ids if t not in m.stop_set]
            out.append(self.fmt.think_start + self.tok.decode(ids, skip_special_tokens=False))
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(FIXTURE), help="a benchmark .jsonl")
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--max-thinking", type=int, default=128)
    parser.add_argument("--num-waits", type=int, default=4)
    parser.add_argument("--max-gen", type=int, default=64, help="max_gen_toks (s1: the answer call's allowance)")
    parser.add_argument("--prefix-caching", choices=("on", "off"), default="on",
                        help="vLLM's prefix caching for the shared engine: on (vLLM V1's default) or off (the "
                             "default of vLLM V0, which s1's fork ran on: every round re-reads prompt + thinking)")
    args = parser.parse_args()

    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    bench = load_benchmark("bench", data=args.data, limit=args.limit)
    ours = HfS1LM(engine="vllm", max_model_len=2048, enable_prefix_caching=args.prefix_caching == "on")
    loop = S1Rounds(ours.engine.llm, ours._format)
    tmp = Path(tempfile.mkdtemp(prefix="bench-lm-eval-s1-"))
    data = tmp / "questions.jsonl"
    data.write_text("".join(json.dumps({"prompt": q.prompt}) + "\n" for q in bench.questions))
    (tmp / "task.yaml").write_text(
        f"task: hf_s1_s1_loop\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
        "output_type: generate_until\ntest_split: test\ndoc_to_text: '{{prompt}}'\ndoc_to_target: ''\n"
        "generation_kwargs:\n  until: []\n  do_sample: false\n"
        "metric_list:\n  - metric: exact_match\nmetadata:\n  version: 0\n")
    gen_kwargs = (f"max_gen_toks={args.max_gen},max_tokens_thinking={args.max_thinking},"
                  f"thinking_n_ignore={args.num_waits},thinking_n_ignore_str=Wait")
    manager = TaskManager(include_path=str(tmp))

    def run(lm):
        start = time.perf_counter()
        out = simple_evaluate(model=lm, tasks=["hf_s1_s1_loop"], task_manager=manager, gen_kwargs=gen_kwargs,
                              apply_chat_template=True, log_samples=True)
        samples = sorted(out["samples"]["hf_s1_s1_loop"], key=lambda s: s["doc_id"])
        return time.perf_counter() - start, [s["resps"][0][0] for s in samples]

    run(ours)  # warm-up: first-call allocations, the task's data files (the loop shares the engine)
    t_loop, r_loop = run(loop)
    t_ours, r_ours = run(ours)
    n = len(bench)
    print(f"{n} questions from {args.data}; gen_kwargs {gen_kwargs}; vLLM fp32 greedy, one LLM for both, "
          f"prefix caching {args.prefix_caching}")
    print(f"s1's multi-call loop (batched rounds): {t_loop:7.2f} s")
    print(f"hf-s1 single pass:                    {t_ours:7.2f} s")
    print(f"ratio loop / single pass: {t_loop / t_ours:.2f}x; identical responses: "
          f"{sum(a == b for a, b in zip(r_loop, r_ours))}/{n}")


if __name__ == "__main__":
    main()
