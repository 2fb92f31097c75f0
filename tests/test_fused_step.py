"""Differential tests: the fused step (`BatchBudget(fused=True)`: the step methods compiled by torch.compile /
inductor) takes the same decisions as the eager core, which `test_batch_budget.py` proves equal to
`BudgetTracker`. Two cores built from the same random requests run side by side on the same logits and tokens;
after every step the written logits, the tokens' kinds, the decisions and every stored tensor must agree.
"""

from __future__ import annotations

import random
import sys
import warnings
from dataclasses import fields
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: tests/ is not on sys.path

from test_batch_budget import VOCAB, _budget, _markers, _right_aligned, _setup, _token  # noqa: E402

from hf_s1.engines import fused as fused_module  # noqa: E402
from hf_s1.engines.batch_budget import BatchBudget, SlotSpec  # noqa: E402


def _same_logits(a: torch.Tensor, b: torch.Tensor, where: str) -> None:
    # A lifted forced id is max + 1e4 + 1e-2 |max|: compiled arithmetic may round it differently in the last bit.
    assert torch.equal(torch.isneginf(a), torch.isneginf(b)), where
    assert torch.equal(a.argmax(dim=-1), b.argmax(dim=-1)), where
    finite = torch.isfinite(a)
    assert torch.allclose(a[finite], b[finite], rtol=1e-6, atol=0), where


def _same_state(eager: BatchBudget, fused: BatchBudget, where: str) -> None:
    for f in fields(eager.state):
        assert torch.equal(getattr(eager.state, f.name), getattr(fused.state, f.name)), (where, f.name)
    for name in ("pending_hit", "pending_base", "injected"):
        assert torch.equal(getattr(eager, name), getattr(fused, name)), (where, name)


def _pair(seed: int, rows: int, markers=None, budget=None, sampled: bool = False):
    cores = []
    for fused in (False, True):
        core, slots, specs, prompts, _ = _setup(random.Random(seed), rows, markers, budget, fused=fused)
        if sampled:
            for r, spec in enumerate(specs):
                spec.greedy, spec.seed = False, 99 + r
            core.set_slots(slots, specs)
            core.start(slots, *_right_aligned(prompts))
        cores.append(core)
    return cores[0], cores[1], slots, specs


def _run(seed: int, batches: int, *, markers=None, budget=None, vocab: int = VOCAB, steps: int = 45) -> int:
    """Random batches through `step`, eager vs fused; greedy and seeded-sampled batches alternate. Returns the
    number of decisions that forced or banned (so that a test can check the suite exercised them)."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    acted = 0
    for b in range(batches):
        rows = 6
        sampled = b % 2 == 1
        eager, fused, slots, specs = _pair(rng.randrange(10**9), rows, markers, budget, sampled)
        slot = torch.tensor(slots)
        commit_slot = slot.clone()  # another tensor, as the engines pass (the graph they use)
        active = torch.ones(rows, dtype=torch.bool)
        tokens = torch.zeros(rows, dtype=torch.long)
        committed = torch.zeros(rows, dtype=torch.bool)  # the first step has nothing to commit
        for step in range(steps):
            for core in (eager, fused):
                core.reserve_log(step + 1)
            logits = torch.randn(rows, vocab, generator=gen) * 3
            logits[:, :10] += torch.rand(rows, 10, generator=gen) * 4  # ends are likely
            probs = torch.softmax(logits, dim=-1) if sampled else None
            out = []
            for core in (eager, fused):
                written = logits.clone()
                kinds, hit = core.step(written, slot, active, tokens, committed, commit_slot=commit_slot, probs=probs)
                out.append((written, kinds, hit))
            where = f"batch {b} step {step}"
            _same_logits(out[0][0], out[1][0], where)
            assert torch.equal(out[0][1][committed], out[1][1][committed]), where
            assert torch.equal(out[0][2], out[1][2]), where
            _same_state(eager, fused, where)
            written = out[0][0]
            acted += int((written.max(dim=-1).values > logits.max(dim=-1).values + 1).sum())
            acted += int(torch.isneginf(written).any(dim=-1).sum())
            if sampled:
                tokens = torch.multinomial(torch.softmax(written, dim=-1), 1, generator=gen).squeeze(1)
            else:
                tokens = written.argmax(dim=-1)
            for r in range(rows):  # sometimes something downstream overrides the decision
                if rng.random() < 0.05:
                    tokens[r] = _token(rng, specs[r].markers, None, vocab)
            committed = torch.ones(rows, dtype=torch.bool)
            # Rows that leave early, as a finished request does.
            if rng.random() < 0.05:
                committed[rng.randrange(rows)] = False
    return acted


@pytest.mark.parametrize("chunk", range(4))
def test_fused_step_equals_eager_on_random_requests(chunk):
    """1,200 random sequences (4 chunks x 50 batches x 6 rows, 45 steps), both profiles, three marker shapes,
    greedy and seeded sampling."""
    acted = _run(3000 + chunk, batches=50)
    assert acted > 1000
    assert not fused_module._failed and fused_module._compiled, fused_module._failed  # the compiled step ran


def test_a_new_core_and_a_new_batch_size_do_not_compile_again():
    """Compiled code is shared by every core; batch sizes past 1 share one graph (dynamic shapes)."""
    torch._dynamo.utils.counters.clear()
    rng = random.Random(5)
    m = _markers(rng)
    for rows in (6, 3, 9, 6):
        core = BatchBudget(rows + 2, log_injections=True, fused=True)
        slots = list(range(1, rows + 1))
        core.set_slots(slots, [SlotSpec(_budget(rng), m) for _ in slots])
        core.start(slots, torch.tensor([list(m.think_start)] * rows))
        slot = torch.tensor(slots)
        core.step(torch.randn(rows, VOCAB), slot, torch.ones(rows, dtype=torch.bool),
                  torch.zeros(rows, dtype=torch.long), torch.zeros(rows, dtype=torch.bool), commit_slot=slot.clone())
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] <= 1


def test_a_failed_compile_falls_back_to_the_eager_step_with_one_warning(monkeypatch):
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no compiler here")

    torch._dynamo.reset()  # forget graphs compiled by earlier tests (dynamo keeps them on the method's code)
    monkeypatch.setattr(fused_module, "BACKEND", broken_backend)
    monkeypatch.setattr(fused_module, "_compiled", {})
    monkeypatch.setattr(fused_module, "_failed", [])
    rng = random.Random(11)
    eager, fused, slots, _ = _pair(rng.randrange(10**9), 6)
    slot, active = torch.tensor(slots), torch.ones(6, dtype=torch.bool)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(3):
            logits = torch.randn(6, VOCAB)
            tokens = logits.argmax(dim=-1)
            a, b = logits.clone(), logits.clone()
            eager.step(a, slot, active, tokens, torch.full((6,), step > 0))
            fused.step(b, slot, active, tokens, torch.full((6,), step > 0))
            assert torch.equal(a, b)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "eager step" in messages[0] and "HF_S1_FUSED=0" in messages[0]
    _same_state(eager, fused, "after the fallback")
    torch._dynamo.reset()  # nothing compiled by the broken backend may serve a later test


def test_fused_default_follows_the_environment(monkeypatch):
    monkeypatch.delenv(fused_module.ENV_VAR, raising=False)
    assert fused_module.fused_by_default(torch.device("cpu")) is False
    assert fused_module.fused_by_default(torch.device("cuda")) is True
    monkeypatch.setenv(fused_module.ENV_VAR, "1")
    assert BatchBudget(2).fused is True
    monkeypatch.setenv(fused_module.ENV_VAR, "0")
    assert BatchBudget(2, "cuda" if torch.cuda.is_available() else "cpu").fused is False
    monkeypatch.setenv(fused_module.ENV_VAR, "maybe")
    with pytest.raises(ValueError, match="HF_S1_FUSED"):
        BatchBudget(2)

