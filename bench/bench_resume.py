"""A preempted request coming back with output: `BatchBudget.resume` (host replay by `BudgetTracker`, one write
per state field) vs catching up one `commit` per generated token (what the vLLM adapters did before), side by side.

Real SmolLM2 markers (s1 format), 8 requests at once, each coming back with `--tokens` generated tokens of thinking
that ran into the cut and an answer. Both paths must leave the slots in the same state (checked).

    python bench/bench_resume.py --tokens 1000 2000 4000
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from hf_s1.budget import BudgetTracker, ThinkingBudget  # noqa: E402
from hf_s1.engines.batch_budget import BatchBudget, SlotSpec  # noqa: E402
from hf_s1.formats import marker_tokens  # noqa: E402
from hf_s1.models import default_model_path  # noqa: E402


def _outputs(budget, markers, prompt, n, rows):
    """Token streams the budget itself would produce: free tokens are text, forced ones followed."""
    outs = []
    for r in range(rows):
        t = BudgetTracker(budget, markers)
        t.start(prompt)
        out = []
        for i in range(n):
            action = t.next_action()
            token = getattr(action, "token_id", None)
            out.append(token if token is not None else 1000 + (i * 7 + r) % 3000)
            t.observe(out[-1])
        outs.append(out)
    return outs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, nargs="+", default=[1000, 2000, 4000])
    parser.add_argument("--rows", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    markers = marker_tokens(tokenizer, "s1")
    prompt = tokenizer.encode("What is 2 + 2?") + list(markers.think_start)
    print(f"torch {torch.__version__}, 1 thread, {args.rows} requests, eager core on CPU")
    print(f"{'tokens':>7} {'commit per token':>17} {'resume':>9} {'ratio':>7}")
    for n in args.tokens:
        budget = ThinkingBudget(max_thinking_tokens=n - 64, num_waits=2)
        outs = _outputs(budget, markers, prompt, n, args.rows)
        slots = list(range(args.rows))
        cores = []
        for _ in range(2):
            core = BatchBudget(args.rows, log_injections=True, log_length=n + 8, fused=False)
            core.set_slots(slots, [SlotSpec(budget, markers)] * args.rows)
            cores.append(core)
        step, fast = cores
        start = time.perf_counter()
        step.start(slots, torch.tensor([prompt] * args.rows))
        slot = torch.tensor(slots)
        for i in range(n):
            step.commit(slot, torch.tensor([o[i] for o in outs]))
        t_step = time.perf_counter() - start
        start = time.perf_counter()
        fast.resume(slots, [prompt] * args.rows, outs)
        t_fast = time.perf_counter() - start
        assert step.stats(slots) == fast.stats(slots), "the two paths disagree"
        print(f"{n:>7} {t_step:>15.3f} s {t_fast:>7.3f} s {t_step / t_fast:>6.1f}x")


if __name__ == "__main__":
    main()
