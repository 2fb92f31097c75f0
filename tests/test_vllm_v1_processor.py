"""The vLLM processor on the V1 model runner's interface, driven through vLLM's own `BatchUpdate`: async
placeholders are never read, rows that move keep their state, and a preempted request resumes where it was."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality

from hf_s1 import ThinkingBudget
from hf_s1.engines.vllm import BudgetForcingLogitsProcessor
from hf_s1.formats import marker_tokens
from hf_s1.prompts import prepare_requests

VOCAB = 49152


def _processor(model_dir, slots=8):
    config = SimpleNamespace(model_config=SimpleNamespace(tokenizer=str(model_dir)), speculative_config=None,
                             scheduler_config=SimpleNamespace(max_num_seqs=slots))
    return BudgetForcingLogitsProcessor(config, torch.device("cpu"), False)


def _params(budget):
    return SamplingParams(temperature=0.0, extra_args={"thinking_budget": budget.to_dict()})


def _step(processor, batch, end_ids):
    """Logits where an end of thinking is the arg-max of every row; returns each row's arg-max after the processor."""
    logits = torch.zeros(batch, VOCAB)
    logits[:, end_ids] = 5.0
    return processor.apply(logits).argmax(dim=-1).tolist()


def test_placeholders_are_never_read_and_moves_keep_state(default_model_dir, tokenizer):
    budget = ThinkingBudget(min_thinking_tokens=3, max_thinking_tokens=6)
    m = marker_tokens(tokenizer, "s1")
    prompt = prepare_requests(tokenizer, "What is 2+3?", budget).input_ids[0]
    wait = m.encode("Wait")[0]
    proc = _processor(default_model_dir)
    a, b = [], []
    proc.update_state(BatchUpdate(batch_size=2, removed=[], moved=[],
                                  added=[(0, _params(budget), prompt, a), (1, _params(budget), prompt, b)]))
    assert _step(proc, 2, [m.stop_ids[0]]) == [wait, wait]  # below the minimum: the end becomes "Wait"
    a.append(wait)
    b.extend([wait, -1])  # async scheduling: the second row's newest id is still a placeholder
    got = _step(proc, 2, [m.stop_ids[0]])
    assert got == [wait, wait]
    b[-1] = 100  # the placeholder is resolved; the rows swap places in the persistent batch
    proc.update_state(BatchUpdate(batch_size=2, removed=[], added=[], moved=[(0, 1, MoveDirectionality.SWAP)]))
    a.append(100)
    # Both rows now hold 2 thinking tokens: one more is needed before an end is allowed.
    assert _step(proc, 2, [m.stop_ids[0]]) == [wait, wait]
    for out in (a, b):
        out.extend([wait, 101, 102, 103])  # 6 thinking tokens: the cap
    assert _step(proc, 2, [m.stop_ids[0]]) == [m.cut_ids(103, ())[0]] * 2  # the cut starts


def test_preempted_request_resumes_where_it_was(default_model_dir, tokenizer):
    budget = ThinkingBudget(num_waits=2, max_thinking_tokens=10)
    m = marker_tokens(tokenizer, "s1")
    prompt = prepare_requests(tokenizer, "What is 2+3?", budget).input_ids[0]
    wait = m.encode("Wait")[0]
    proc = _processor(default_model_dir)
    out: list[int] = []
    proc.update_state(BatchUpdate(batch_size=1, removed=[], moved=[], added=[(0, _params(budget), prompt, out)]))
    assert _step(proc, 1, [m.think_end[0]]) == [wait]  # first wait
    out.extend([wait, 100])
    proc.apply(torch.zeros(1, VOCAB))
    # Preempted, then re-added (another index) with what it generated so far: one wait is spent, one is left.
    proc.update_state(BatchUpdate(batch_size=0, removed=[0], moved=[], added=[]))
    proc.update_state(BatchUpdate(batch_size=2, removed=[], moved=[], added=[(1, _params(budget), prompt, out)]))
    got = proc.apply(torch.cat([torch.zeros(1, VOCAB), _end_row(m.think_end[0])]))
    assert got[1].argmax().item() == wait and torch.equal(got[0], torch.zeros(VOCAB))  # row 0 has no request
    out.extend([wait, 101])
    got = proc.apply(torch.cat([torch.zeros(1, VOCAB), _end_row(m.think_end[0])]))
    assert got[1].argmax().item() == m.think_end[0]  # both waits spent: the end is allowed


def test_a_named_request_resumes_from_its_injection_log(default_model_dir, tokenizer):
    """A request named with `budget_log` keeps the record of its decisions across preemption: a "Wait" the model
    wrote itself stays thinking (inferring from the ids would count it as a spent wait), and its client gets the
    positions of the waits the processor injected."""
    budget = ThinkingBudget(num_waits=2, max_thinking_tokens=20)
    m = marker_tokens(tokenizer, "s1")
    prompt = prepare_requests(tokenizer, "What is 2+3?", budget).input_ids[0]
    wait = m.encode("Wait")[0]
    params = SamplingParams(temperature=0.0, extra_args={"thinking_budget": budget.to_dict(), "budget_log": "req-7"})
    proc = _processor(default_model_dir)
    out: list[int] = []
    proc.update_state(BatchUpdate(batch_size=1, removed=[], moved=[], added=[(0, params, prompt, out)]))
    assert _step(proc, 1, [m.think_end[0]]) == [wait]  # position 0: injected
    out.extend([wait, 100])
    proc.apply(torch.zeros(1, VOCAB))
    assert _step(proc, 1, [wait]) == [wait]  # position 2: the model's own "Wait" (an end was never attempted)
    out.append(wait)
    proc.update_state(BatchUpdate(batch_size=0, removed=[0], moved=[], added=[]))  # preempted
    proc.update_state(BatchUpdate(batch_size=1, removed=[], moved=[], added=[(0, params, prompt, out)]))
    assert _step(proc, 1, [m.think_end[0]]) == [wait]  # one wait was spent, so one is left
    out.extend([wait, 101])
    assert _step(proc, 1, [m.think_end[0]]) == [m.think_end[0]]  # both spent: the end is allowed
    out.append(m.think_end[0])
    proc.update_state(BatchUpdate(batch_size=0, removed=[0], moved=[], added=[]))  # finished
    assert proc.pop_injection_logs(["req-7", "unknown"]) == {"req-7": [0, 3]}
    assert proc.pop_injection_logs(["req-7"]) == {}  # handed over once


def _end_row(end_id):
    row = torch.zeros(1, VOCAB)
    row[0, end_id] = 5.0
    return row


def test_a_bad_log_name_is_refused_at_admission():
    import pytest

    from hf_s1 import BudgetError

    for bad in (5, "", ["a"]):
        params = SamplingParams(extra_args={"thinking_budget": {}, "budget_log": bad})
        with pytest.raises(BudgetError, match="budget_log.*non-empty string"):
            BudgetForcingLogitsProcessor.validate_params(params)
    BudgetForcingLogitsProcessor.validate_params(SamplingParams(extra_args={"thinking_budget": {}, "budget_log": "a"}))
