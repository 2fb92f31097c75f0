"""P4: SFT throughput of the s1K recipe on CPU, side by side in one run.

1. Recipe vs plain TRL: tokens/s of `hf_s1.train.sft` (training template + assistant-only loss) against a plain
   `SFTTrainer` on the same model, rows and settings (full-sequence loss, the model's own template).
2. Padding vs padding-free vs packing (BFD) on rows whose lengths follow s1K's trace-length spread (scaled down),
   plus what padding-free changes in the loss: the summed token loss of the same rows, padded vs padding-free.

    python bench/bench_sft.py [--model PATH] [--steps 4] [--rows 16] [--max-length 1024]

Prints one table; numbers are effective (non-pad) tokens per second of training.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Trace lengths (characters) of a 32-row s1K sample; rows here are scaled so the longest fits --max-length.
S1K_TRACE_CHARS = [10853, 14028, 11802, 11689, 13067, 8116, 9844, 3867, 10876, 4390, 9329, 13538, 14416, 13710, 13306,
                   11521, 13384, 3708, 5000, 11717, 8772, 8786, 10041, 12725, 11731, 10565, 10141, 17887, 10010, 3925,
                   15144, 15050]


def make_rows(n: int, max_tokens: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    words = "let us compute the sum then check each term again carefully".split()
    scale = 0.9 * max_tokens / max(S1K_TRACE_CHARS)  # one word ~ one token here
    rows = []
    for i in range(n):
        length = max(8, int(rng.choice(S1K_TRACE_CHARS) * scale))
        trace = " ".join(rng.choice(words) for _ in range(length))
        rows.append({"question": f"Question {i}: what is {i} + {i}?", "thinking_trajectories": [trace],
                     "attempt": f"{2 * i}"})
    return rows


def train(model_path: str, rows: list[dict], *, recipe: bool, steps: int, max_length: int, **extra) -> dict:
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from hf_s1.data import format_s1k
    from hf_s1.train.sft import prepare_tokenizer

    data = format_s1k(Dataset.from_list(rows))
    tokenizer = prepare_tokenizer(model_path) if recipe else AutoTokenizer.from_pretrained(model_path)
    args = SFTConfig(output_dir=tempfile.mkdtemp(), use_cpu=True, report_to="none", max_steps=steps,
                     per_device_train_batch_size=4, learning_rate=1e-5, logging_steps=1, save_strategy="no",
                     assistant_only_loss=recipe, max_length=max_length, seed=0, disable_tqdm=True, **extra)
    from transformers import TrainerCallback

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *_, **__):
            stamps.append(time.perf_counter())

    trainer = SFTTrainer(model=model_path, args=args, train_dataset=data, processing_class=tokenizer,
                         callbacks=[Clock()])
    trainer.train()
    logs = [e for e in trainer.state.log_history if "loss" in e]
    # Steady state: from the end of step 1 (warm-up, first allocations) to the end of the last step.
    tokens = logs[-1]["num_tokens"] - logs[0]["num_tokens"]
    seconds = stamps[-1] - stamps[0]
    return {"tokens": tokens, "seconds": seconds, "tok_s": tokens / seconds, "loss": logs[0]["loss"]}


def padding_free_loss_change(model_path: str, rows: list[dict], max_length: int) -> tuple[float, float]:
    """Summed token loss of the same rows: padded batches vs padding-free (position_ids) batches."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from hf_s1.data import to_messages
    from hf_s1.train.sft import prepare_tokenizer

    tokenizer = prepare_tokenizer(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    examples = []
    for r in rows:
        out = tokenizer.apply_chat_template(to_messages(r), tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
        ids = out["input_ids"][:max_length]
        labels = [t if m else -100 for t, m in zip(ids, out["assistant_masks"][:max_length])]
        examples.append({"input_ids": ids, "labels": labels})
    totals = []
    for padding_free in (False, True):
        collate = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=padding_free)
        total = 0.0
        with torch.no_grad():
            for i in range(0, len(examples), 4):
                batch = collate(examples[i : i + 4])
                labels = batch.pop("labels")
                logits = model(**batch).logits[:, :-1].float()
                target = labels[:, 1:]
                total += torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100,
                                                           reduction="sum").item()
        totals.append(total)
    return totals[0], totals[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=1024)
    args = parser.parse_args()
    from hf_s1 import default_model_path

    model = str(args.model or default_model_path())
    rows = make_rows(args.rows, args.max_length)
    runs = {
        "plain TRL SFTTrainer (padded)": dict(recipe=False),
        "hf-s1 recipe (padded)": dict(recipe=True),
        "hf-s1 recipe, padding_free": dict(recipe=True, padding_free=True, max_length=None),
        "hf-s1 recipe, packing (bfd)": dict(recipe=True, packing=True, packing_strategy="bfd"),
    }
    results = {}
    for name, kw in runs.items():
        kw = {"max_length": args.max_length, **kw}
        results[name] = train(model, rows, steps=args.steps, **kw)
    base = results["plain TRL SFTTrainer (padded)"]["tok_s"]
    padded = results["hf-s1 recipe (padded)"]["tok_s"]
    print(f"\nmodel {model}, {args.rows} rows, {args.steps} steps x batch 4, max_length {args.max_length}")
    print(f"{'run':<32}{'tokens':>8}{'s':>8}{'tok/s':>9}{'vs plain':>10}{'vs padded':>11}{'loss@1':>9}")
    for name, r in results.items():
        print(f"{name:<32}{r['tokens']:>8.0f}{r['seconds']:>8.1f}{r['tok_s']:>9.1f}{r['tok_s'] / base:>9.2f}x"
              f"{r['tok_s'] / padded:>10.2f}x{r['loss']:>9.4f}")
    padded_loss, free_loss = padding_free_loss_change(model, rows, args.max_length)
    print(f"summed token loss, padded {padded_loss:.3f} vs padding-free {free_loss:.3f} "
          f"(relative change {abs(free_loss - padded_loss) / padded_loss:.2e})")


if __name__ == "__main__":
    main()
