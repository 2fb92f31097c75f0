"""Budget forcing on transformers' continuous batching (`hf_s1.engines.continuous`), on the embedded SmolLM2.

Greedy fp32 output equals static `generate` (one prompt per call: no padding) token for token, telemetry included,
with mixed budgets of both profiles and requests arriving while others run; Control holds over 64 queued requests;
a cancelled request frees its slot; a bad budget fails its request only, with the fix named.
"""

from __future__ import annotations

import time

import pytest
import torch
from transformers import ContinuousBatchingConfig, GenerationConfig

from hf_s1 import ThinkingBudget, generate_with_budget
from hf_s1.budget import BudgetError
from hf_s1.engines.base import load_engine
from hf_s1.engines.continuous import BudgetForcingCBProcessor, enable_budget_forcing
from hf_s1.prompts import prepare_requests

QUESTIONS = ["What is 2+3?", "Name a color.", "What is 7*6?", "Why is the sky blue?", "What is 12-5?", "Say hi."]
BUDGETS = [
    ThinkingBudget(max_thinking_tokens=8, max_answer_tokens=10, profile="hf-s1"),
    ThinkingBudget(num_waits=2, max_thinking_tokens=40, max_answer_tokens=10, profile="hf-s1"),
    ThinkingBudget(min_thinking_tokens=20, max_thinking_tokens=30, max_answer_tokens=10, profile="hf-s1"),
    ThinkingBudget(max_thinking_tokens=16, max_answer_tokens=8),
    ThinkingBudget(num_waits=1, max_thinking_tokens=12),
    ThinkingBudget(max_thinking_tokens=24, max_answer_tokens=12, profile="s1"),
]


@pytest.fixture(scope="module")
def reference(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    return generate_with_budget(model, tokenizer, QUESTIONS, BUDGETS, batch_size=1)


def _summary(g):
    return g.token_ids, g.thinking_tokens, g.answer_tokens, g.waits, g.capped, g.finish_reason, g.kinds


def test_generate_with_budget_on_continuous_batching_equals_generate(model_and_tokenizer, reference):
    model, tokenizer = model_and_tokenizer
    out = generate_with_budget(model, tokenizer, QUESTIONS, BUDGETS, continuous_batching=True)
    assert [_summary(g) for g in out] == [_summary(g) for g in reference]
    assert sum(g.waits for g in out) >= 3 and sum(g.capped for g in out) >= 2  # both bounds were exercised
    # The model is left as it was for static generate (the manager restores its attention).
    again = generate_with_budget(model, tokenizer, QUESTIONS[:1], BUDGETS[:1], batch_size=1)
    assert again[0].token_ids == reference[0].token_ids


def _manager(model, tokenizer, budget=None, *, num_slots=64, blocks=64):
    config = GenerationConfig(do_sample=False, eos_token_id=[tokenizer.eos_token_id], max_new_tokens=128,
                              pad_token_id=tokenizer.pad_token_id)
    manager = model.init_continuous_batching(config, ContinuousBatchingConfig(
        num_blocks=blocks, page_size=64, max_batch_tokens=512, use_cuda_graph=False))
    processor = enable_budget_forcing(manager, BudgetForcingCBProcessor(tokenizer, budget, "s1",
                                                                        num_slots=num_slots))
    return manager, processor


def _prompt_ids(tokenizer, questions, budgets):
    req = prepare_requests(tokenizer, questions, budgets, think_format="s1")
    limits = req.token_limits(None, None)
    return req.input_ids, limits


def _collect(manager, ids, timeout=300):
    done, deadline = {}, time.time() + timeout
    while len(done) < len(ids) and time.time() < deadline:
        out = manager.get_result(timeout=5)
        if out is not None and out.is_finished():
            done[out.request_id] = out
    assert len(done) == len(ids), f"{len(done)} of {len(ids)} requests finished"
    return done


def test_requests_arriving_while_others_run(model_and_tokenizer, reference):
    model, tokenizer = model_and_tokenizer
    rows, limits = _prompt_ids(tokenizer, QUESTIONS, BUDGETS)
    manager, processor = _manager(model, tokenizer)
    manager.start()
    try:
        first = [manager.add_request(rows[i], max_new_tokens=limits[i], thinking_budget=BUDGETS[i],
                                     resumes_overrun=True, streaming=True) for i in range(3)]
        # Wait until the first wave decodes, then add the second while it runs.
        partial = manager.get_result(timeout=120)
        assert partial is not None and partial.error is None and not partial.is_finished()
        second = [manager.add_request(rows[i], max_new_tokens=limits[i], thinking_budget=BUDGETS[i],
                                      resumes_overrun=True) for i in range(3, 6)]
        done = _collect(manager, first + second)
    finally:
        manager.stop(block=True)
        manager.destroy()
    for rid, ref in zip(first + second, reference):
        tokens = done[rid].generated_tokens
        tracker = processor.tracker(rid, tokens)
        stats = tracker.finish(tokens)
        # The manager returns the end-of-sequence token, which a BudgetedGeneration leaves out.
        assert tokens[:len(ref.token_ids)] == ref.token_ids, rid
        assert tokens[len(ref.token_ids):] in ([], [tokenizer.eos_token_id]), rid
        assert (stats.thinking_tokens, stats.waits, stats.capped) == (ref.thinking_tokens, ref.waits, ref.capped)


def test_control_over_64_queued_requests_and_slots_are_reused(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    caps = [ThinkingBudget(max_thinking_tokens=m, max_answer_tokens=4, profile="hf-s1") for m in (4, 8, 16)]
    caps += [ThinkingBudget(min_thinking_tokens=10, max_thinking_tokens=14, max_answer_tokens=4, profile="hf-s1")]
    budgets = [caps[i % len(caps)] for i in range(64)]
    questions = [f"What is {i} + {i % 7}?" for i in range(64)]
    rows, limits = _prompt_ids(tokenizer, questions, budgets)
    # Fewer slots than requests: the state grows while they run, then finished requests free their slots.
    manager, processor = _manager(model, tokenizer, num_slots=8, blocks=96)
    manager.start()
    try:
        ids = [manager.add_request(r, max_new_tokens=n, thinking_budget=b) for r, n, b in zip(rows, limits, budgets)]
        done = _collect(manager, ids, timeout=600)
        stats = [processor.stats(i, done[i].generated_tokens) for i in ids]
    finally:
        manager.stop(block=True)
        manager.destroy()
    assert processor._core.num_slots > 9  # it grew past the 8 it started with
    inside = [b.min_thinking_tokens <= s.thinking_tokens <= b.max_thinking_tokens for s, b in zip(stats, budgets)]
    assert all(inside), [(s.thinking_tokens, b) for s, b, ok in zip(stats, budgets, inside) if not ok]
    answer = tokenizer("<|im_start|>answer", add_special_tokens=False)["input_ids"]
    for i in ids:
        toks = done[i].generated_tokens
        assert any(toks[k:k + len(answer)] == answer for k in range(len(toks))), tokenizer.decode(toks)


def test_cancelled_request_frees_its_slot(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    long = ThinkingBudget(min_thinking_tokens=400, max_thinking_tokens=500, profile="hf-s1")
    rows, _ = _prompt_ids(tokenizer, ["Explain gravity.", "What is 2+3?"], [long, BUDGETS[0]])
    manager, processor = _manager(model, tokenizer, num_slots=4)
    manager.start()
    try:
        rid = manager.add_request(rows[0], max_new_tokens=520, thinking_budget=long, streaming=True)
        for _ in range(3):  # a few streamed tokens: it holds a slot now
            assert manager.get_result(rid, timeout=120) is not None
        slot = processor._slot_of[rid]
        manager.cancel_request(rid)
        other = manager.add_request(rows[1], max_new_tokens=64, thinking_budget=BUDGETS[0])
        out = manager.request_id_iter(other)
        final = [o for o in out if o.is_finished()][0]
    finally:
        manager.stop(block=True)
        manager.destroy()
    assert rid not in processor._slot_of and slot in processor._free  # freed when it left the scheduler
    assert processor.stats(other, final.generated_tokens).capped


def test_bad_budget_fails_its_request_only(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    rows, limits = _prompt_ids(tokenizer, QUESTIONS[:1], BUDGETS[:1])
    manager, processor = _manager(model, tokenizer)
    with pytest.raises(BudgetError, match="already has a budget processor"):
        enable_budget_forcing(manager, BudgetForcingCBProcessor(tokenizer))
    manager.start()
    try:
        with pytest.raises(BudgetError, match="before manager.start"):
            enable_budget_forcing(manager, BudgetForcingCBProcessor(tokenizer))
        bad = manager.add_request(rows[0], max_new_tokens=32, thinking_budget={"max_thinking_tokens": -1})
        huge = manager.add_request(rows[0], max_new_tokens=32, thinking_budget={"num_waits": 2**64 - 1})
        unknown = manager.add_request(rows[0], max_new_tokens=32, thinking_budget={"waits": 2})
        s1 = manager.add_request(rows[0], max_new_tokens=32, thinking_budget={"profile": "s1"})
        good = manager.add_request(rows[0], max_new_tokens=limits[0], thinking_budget=BUDGETS[0])
        free = manager.add_request(rows[0], max_new_tokens=limits[0])  # no key, no default budget: left alone
        done = _collect(manager, [bad, huge, unknown, s1, good, free])
    finally:
        manager.stop(block=True)
        manager.destroy()
    assert "max_thinking_tokens must be >= 0" in done[bad].error
    assert "num_waits=18446744073709551615 is more than any context" in done[huge].error
    assert "waits" in done[unknown].error
    assert "resumes_overrun=True" in done[s1].error
    assert done[good].error is None and processor.stats(good, done[good].generated_tokens).capped
    assert done[free].error is None and processor.stats(free, done[free].generated_tokens) is None
    # the same prompt ran free next to the budgeted one: it did not get the cut the budget forced
    assert done[free].generated_tokens[:12] != done[good].generated_tokens[:12]


def test_sampled_runs_repeat_with_a_seed_and_the_engine_has_a_name(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    engine = load_engine("transformers-cb")
    assert engine.name == "transformers-cb"
    runs = []
    for _ in range(2):
        runs.append([g.token_ids for g in engine.generate(QUESTIONS[:3], BUDGETS[:3], do_sample=True,
                                                          temperature=0.8, top_p=0.9, seed=7)])
    assert runs[0] == runs[1]
    out = engine.generate(QUESTIONS[:3], BUDGETS[:3], do_sample=True, temperature=0.8, top_p=0.9, seed=7)
    assert all(b.min_thinking_tokens <= g.thinking_tokens <= b.max_thinking_tokens for g, b in zip(out, BUDGETS))
    with pytest.raises(BudgetError, match="no streamer, no logits_processor.*logits_processor"):
        generate_with_budget(*model_and_tokenizer, QUESTIONS[:1], BUDGETS[:1], continuous_batching=True,
                             logits_processor=[lambda i, s: s])
    with pytest.raises(BudgetError, match="repetition_penalty"):
        generate_with_budget(*model_and_tokenizer, QUESTIONS[:1], BUDGETS[:1], continuous_batching=True,
                             repetition_penalty=1.2)
    assert torch.is_grad_enabled()
