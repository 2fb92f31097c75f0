"""Host time of one budget-forcing decode step, against an argmax over the same logits, measured side by side.

An argmax over the batch's logits is the least a greedy end-attempt decision must read. Every row is intercepted
(a minimum no row reaches, so each step checks every row for an attempted end and bans the end ids), greedy.

- transformers: `BudgetForcingLogitsProcessor.__call__` (commit the newest token, decide, write the mask);
- vLLM V1: the vLLM processor's `apply` over a batch tracked through `update_state` (with `--vllm`).

Each path runs with the eager batch core and with the fused step (`HF_S1_FUSED`, `--fused 0 1`). For each it
prints the torch ops one step launches, counted with `torch.profiler` (top-level `aten::` ops, plus one per call
of a compiled graph), and the first step's time (compiling, on the fused path). `--vary` also runs the vLLM
processor over batch sizes that change every step and reports how many graphs were compiled.

    python bench/bench_processor_step.py [--batch 8 64 256] [--vocab 49152 151936] [--steps 50] [--device cpu]
                                         [--fused 0 1] [--vllm] [--vary]

Runs with one torch thread on CPU unless `--threads` says otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from hf_s1 import ThinkingBudget
from hf_s1.formats import get_format, marker_tokens
from hf_s1.prompts import build_prompt


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def count_ops(fn) -> int:
    """Torch ops one call of `fn` launches: top-level `aten::` ops, plus one per compiled-graph call."""
    from torch.profiler import profile

    with profile() as prof:
        fn()
    top = [e.name for e in prof.events() if e.cpu_parent is None]
    return sum(name.startswith("aten::") or name.startswith("Torch-Compiled Region") for name in top)


def _time(fn, baseline, steps: int, device: torch.device) -> tuple[float, float]:
    """Median seconds per call of `fn` and of `baseline`, interleaved (load drifts hit both), after warm-up."""
    fn(), fn(), baseline()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(steps):
        for f, out in ((fn, times[0]), (baseline, times[1])):
            _sync(device)
            t = time.perf_counter()
            f()
            _sync(device)
            out.append(time.perf_counter() - t)
    return statistics.median(times[0]), statistics.median(times[1])


def bench_transformers(tokenizer, batch: int, vocab: int, steps: int, device: torch.device) -> tuple[float, float]:
    from hf_s1.engines.transformers import BudgetForcingLogitsProcessor

    markers = marker_tokens(tokenizer, "s1")
    prompt = tokenizer(build_prompt(tokenizer, "What is 17 * 23?", get_format("s1")), add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt] * batch, device=device)
    text = tokenizer.encode(" the", add_special_tokens=False)[0]
    logits = torch.randn(batch, vocab, device=device)
    logits[:, list(markers.stop_ids) + [markers.think_end[0]]] -= 10  # never the arg-max: every row stays intercepted
    processor = BudgetForcingLogitsProcessor(tokenizer, ThinkingBudget(min_thinking_tokens=10**6))
    first = _first(lambda: processor(ids, logits.clone()), device)
    # Pre-build the growing inputs so that only the processor is timed.
    column = torch.full((batch, 1), text, device=device)
    grown = [ids]
    for _ in range(steps + 6):
        grown.append(torch.cat([grown[-1], column], dim=1))
    state = {"i": 1}

    def step():
        processor(grown[state["i"]], logits)
        state["i"] += 1

    ops = count_ops(step)
    return (*_time(step, lambda: logits.argmax(dim=-1), steps, device), ops, first)


def _first(step, device: torch.device) -> float:
    """Seconds of the first decode step (on the fused path: compiling, or loading the compiled code)."""
    _sync(device)
    t = time.perf_counter()
    step()
    _sync(device)
    return time.perf_counter() - t


def bench_vllm_v1(tokenizer_dir: str, tokenizer, batch: int, vocab: int, steps: int,
                  device: torch.device) -> tuple[float, float]:
    from vllm import SamplingParams
    from vllm.v1.sample.logits_processor import BatchUpdate

    from hf_s1.engines.vllm import BudgetForcingLogitsProcessor

    config = SimpleNamespace(model_config=SimpleNamespace(tokenizer=tokenizer_dir), speculative_config=None,
                             scheduler_config=SimpleNamespace(max_num_seqs=batch))
    processor = BudgetForcingLogitsProcessor(config, device, False)
    markers = marker_tokens(tokenizer, "s1")
    prompt = tokenizer(build_prompt(tokenizer, "What is 17 * 23?", get_format("s1")), add_special_tokens=False)["input_ids"]
    params = SamplingParams(temperature=0.0, extra_args={"thinking_budget": {"min_thinking_tokens": 10**6}})
    outputs = [[] for _ in range(batch)]
    processor.update_state(BatchUpdate(batch_size=batch, removed=[], moved=[],
                                       added=[(i, params, prompt, outputs[i]) for i in range(batch)]))
    text = tokenizer.encode(" the", add_special_tokens=False)[0]
    logits = torch.randn(batch, vocab, device=device)
    logits[:, list(markers.stop_ids) + [markers.think_end[0]]] -= 10

    def step():
        for out in outputs:
            out.append(text)
        processor.apply(logits)

    first = _first(lambda: processor.apply(logits), device)  # the prefill step: nothing to commit yet
    ops = count_ops(step)
    return (*_time(step, lambda: logits.argmax(dim=-1), steps, device), ops, first)


def vary_vllm_v1(tokenizer_dir: str, tokenizer, most: int, vocab: int, steps: int, device: torch.device) -> dict:
    """The vLLM processor with requests arriving and leaving so that the batch size changes every step
    (1 .. `most`): the graphs compiled along the way and the slowest step."""
    import random

    from vllm import SamplingParams
    from vllm.v1.sample.logits_processor import BatchUpdate

    from hf_s1.engines.vllm import BudgetForcingLogitsProcessor

    config = SimpleNamespace(model_config=SimpleNamespace(tokenizer=tokenizer_dir), speculative_config=None,
                             scheduler_config=SimpleNamespace(max_num_seqs=most))
    processor = BudgetForcingLogitsProcessor(config, device, False)
    prompt = tokenizer(build_prompt(tokenizer, "What is 17 * 23?", get_format("s1")), add_special_tokens=False)["input_ids"]
    params = SamplingParams(temperature=0.0, extra_args={"thinking_budget": {"min_thinking_tokens": 10**6}})
    text = tokenizer.encode(" the", add_special_tokens=False)[0]
    rng = random.Random(0)
    outputs: list[list[int]] = []
    before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    sizes, times = [], []
    for _ in range(steps):
        target = rng.randint(1, most)
        removed = list(range(target, len(outputs)))
        added = [(i, params, prompt, []) for i in range(len(outputs), target)]
        outputs = outputs[:target] + [a[3] for a in added]
        processor.update_state(BatchUpdate(batch_size=target, removed=removed, moved=[], added=added))
        for out in outputs:
            out.append(text)
        logits = torch.randn(target, vocab, device=device)
        t = time.perf_counter()
        processor.apply(logits)
        _sync(device)
        times.append(time.perf_counter() - t)
        sizes.append(target)
    return dict(graphs=torch._dynamo.utils.counters["stats"]["unique_graphs"] - before, sizes=len(set(sizes)),
                slowest=max(times), median=statistics.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument("--vocab", type=int, nargs="+", default=[49152, 151936])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--vllm", action="store_true", help="also the vLLM V1 processor (needs vLLM)")
    parser.add_argument("--tokenizer", default=None, help="a tokenizer folder (default: the embedded model's)")
    parser.add_argument("--fused", nargs="+", default=["0", "1"], help="HF_S1_FUSED values to run (0 eager, 1 fused)")
    parser.add_argument("--vary", action="store_true", help="vLLM processor over a batch size that changes every step")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from transformers import AutoTokenizer

    if args.tokenizer is None:
        from hf_s1 import default_model_path

        args.tokenizer = str(default_model_path())
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, device {device}, "
          f"{torch.get_num_threads()} thread(s), median of {args.steps} steps")
    print("| engine | step | batch | vocab | ops / step | first step (s) | step (ms) | argmax (ms) | step / argmax |")
    print("|---|---|---|---|---|---|---|---|---|")
    engines = [("transformers", lambda b, v: bench_transformers(tokenizer, b, v, args.steps, device))]
    if args.vllm:
        engines.append(("vLLM V1", lambda b, v: bench_vllm_v1(args.tokenizer, tokenizer, b, v, args.steps, device)))
    for name, run in engines:
        for vocab in args.vocab:
            for batch in args.batch:
                for flag in args.fused:
                    os.environ["HF_S1_FUSED"] = flag
                    forced, argmax, ops, first = run(batch, vocab)
                    print(f"| {name} | {'fused' if flag == '1' else 'eager'} | {batch} | {vocab} | {ops} | {first:.2f} | "
                          f"{forced * 1e3:.3f} | {argmax * 1e3:.3f} | {forced / argmax:.2f} |", flush=True)
    if args.vary:
        os.environ["HF_S1_FUSED"] = "1"
        most = max(args.batch)
        got = vary_vllm_v1(args.tokenizer, tokenizer, most, args.vocab[0], 4 * args.steps, device)
        print(f"\nvLLM V1, fused, batch size drawn from 1..{most} every step, {4 * args.steps} steps "
              f"({got['sizes']} distinct sizes): {got['graphs']} graph(s) compiled, slowest step "
              f"{got['slowest']:.2f} s, median {got['median'] * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
