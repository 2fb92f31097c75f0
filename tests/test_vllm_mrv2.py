"""The vLLM budget processor through vLLM's real Model Runner V2 classes (the GPU runner of vLLM >= 0.32), on CPU.

`tests/mrv2_harness.py` plays MRV2's model runner around vLLM's real `RequestState`, `Sampler` (its real stage
order), `LogitsContext` and MRV2 processor loader, with the real SmolLM2-135M-Instruct as the model; only the
Triton kernels on that path are replaced by torch ports (see the harness docstring). Every case is compared with
the transformers engine (greedy fp32), which equals the V1 vLLM path (tests/test_vllm_engine.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("vllm")

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: tests/ is not on sys.path
import mrv2_harness as H  # noqa: E402
from vllm import SamplingParams  # noqa: E402

from hf_s1 import BudgetError, ThinkingBudget  # noqa: E402
from hf_s1.budget import BudgetTracker  # noqa: E402
from hf_s1.engines import transformers as hf_engine  # noqa: E402
from hf_s1.engines.vllm import BudgetForcingLogitsProcessor  # noqa: E402
from hf_s1.budget import token_allowance  # noqa: E402
from hf_s1.prompts import prepare_requests  # noqa: E402

PROCESSOR = [BudgetForcingLogitsProcessor]
FQCN = "hf_s1.engines.vllm:BudgetForcingLogitsProcessor"

QUESTIONS = [
    "What is 2+3?",
    "Name a prime number larger than 10.",
    "What is the capital of France?",
    "Explain gravity briefly.",
    "How many legs does a spider have?",
    "What is 12*12?",
    "Is 17 prime?",
    "Say hello.",
]
# Mixed budgets (max, min, waits): an immediate answer, cuts, waits, lower bounds that force extension.
SETTINGS = [(0, 0, 0), (8, 0, 0), (24, 12, 1), (24, 0, 2), (16, 16, 0), (24, 0, 3), (16, 0, 1), (24, 20, 1)]
BUDGETS = [ThinkingBudget(max_thinking_tokens=m, min_thinking_tokens=lo, num_waits=w, max_answer_tokens=6)
           for m, lo, w in SETTINGS]
CONTEXT = 1024


def budget_params(budget: ThinkingBudget, markers, prompt_ids, **kwargs) -> SamplingParams:
    """What `hf_s1.engines.vllm.generate_with_budget` sends for one request."""
    settings = dict(max_tokens=token_allowance(budget, markers, len(prompt_ids), CONTEXT), temperature=0.0,
                    stop_token_ids=list(markers.stop_ids), skip_special_tokens=False,
                    extra_args={"thinking_budget": budget.to_dict(), "think_format": "s1"})
    settings.update(kwargs)
    return SamplingParams(**settings)


def generated(result: H.RunResult, stop_ids) -> list[list[int]]:
    """Output ids without the stop token vLLM keeps (the transformers engine's `token_ids`)."""
    return [out[:-1] if out and out[-1] in stop_ids else out for out in result.outputs]


# ---- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vllm_config(default_model_dir):
    return H.make_vllm_config(default_model_dir, max_model_len=CONTEXT)


@pytest.fixture(scope="module")
def oracle(model):
    return H.LogitsOracle(model)


@pytest.fixture(scope="module")
def case(tokenizer):
    req = prepare_requests(tokenizer, QUESTIONS, BUDGETS)
    params = [budget_params(b, req.markers, ids) for b, ids in zip(BUDGETS, req.input_ids)]
    return req, params


@pytest.fixture(scope="module")
def reference(model, tokenizer):
    out = hf_engine.generate_with_budget(model, tokenizer, QUESTIONS, BUDGETS, batch_size=8)
    # The mix really exercises the machinery.
    assert sum(r.waits for r in out) >= 3
    assert any(r.capped for r in out) and any(not r.capped for r in out)
    return out


@pytest.fixture(scope="module")
def want(reference):
    return [r.token_ids for r in reference]


@pytest.fixture(scope="module")
def run(vllm_config, oracle, case):
    req, params = case

    def go(config=None, prompts=None, sampling=None, **options) -> H.RunResult:
        options.setdefault("logits_processors", PROCESSOR)
        return H.run_mrv2(config or vllm_config, oracle, prompts or req.input_ids, sampling or params, **options)

    return go


@pytest.fixture(scope="module")
def baseline(run):
    """The plain MRV2 run (loader given the processor's "module:Class" name, like `--logits-processors`)."""
    return run(logits_processors=[FQCN])


# ---- the harness itself --------------------------------------------------------------------------------------


def test_count_host_syncs_counts_itself():
    x = torch.arange(6)
    with H.count_host_syncs() as c:
        y = x + 1
        torch.where(x > 2, x, y)
        x[1:3]
        x[torch.tensor([0, 2])]
        x.to(torch.long)
        x.to(x.device)  # the processor's own device: on this CPU harness that is the CPU (see count_host_syncs)
    assert c.count == 0, c.calls
    with H.count_host_syncs() as c:
        x.tolist()
    assert c.count == 1 and c.calls == ["tolist"]
    with H.count_host_syncs() as c:
        x[0].item()
        bool(x[1])
        int(x[2])
        x[x > 2]
        x[x > 4] = 0
        torch.where(x > 1)
        x.nonzero()
        x.to("cpu")
        x.repeat_interleave(x)
    assert c.calls == ["item", "__bool__", "__int__", "__getitem__", "__setitem__", "where", "nonzero", "to",
                       "repeat_interleave"]


def test_harness_matches_plain_greedy(vllm_config, oracle, model, tokenizer, default_model_dir):
    """Without any processor or budget, every harness path reproduces transformers' greedy generation, and the
    batch layout has MRV2's shape (chunk rows, resumed prefills, draft rows)."""
    req = prepare_requests(tokenizer, ["Say hello.", "What is 2+3?", "Explain gravity briefly.", "Is 17 prime?"],
                           ThinkingBudget())
    prompts = req.input_ids
    params = SamplingParams(max_tokens=24, temperature=0.0, stop_token_ids=[2], skip_special_tokens=False)
    expected = []
    for ids in prompts:
        with torch.inference_mode():
            out = model.generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False)[0, len(ids):].tolist()
        expected.append(out[: out.index(2) + 1] if 2 in out else out)
    assert any(len(e) == 24 for e in expected) and any(len(e) < 24 for e in expected)

    def check(result):
        assert result.outputs == expected
        return result

    plain = check(H.run_mrv2(vllm_config, oracle, prompts, params))
    assert all(len(s) == 1 for s in plain.slots)
    for step in plain.steps:
        for row in step.rows:
            assert row.seq_len_upper_bound == row.pos + 1  # exact without speculative decoding
            if row.pos + 1 < row.prefill_len:
                raise AssertionError("unchunked prefill has one row at the prompt's end")
            if row.pos >= row.prefill_len:  # decode rows: the last committed token is fed
                assert row.total_len == row.pos + 1

    chunked = check(H.run_mrv2(vllm_config, oracle, prompts, params, chunk_size=7, shuffle=3))
    chunk_rows = [row for step in chunked.steps for row in step.rows if row.chunked_prefill]
    assert chunk_rows, "no chunked prefill happened"
    for row in chunk_rows:  # MRV2: a chunk row is sampled and discarded; total_len is already prefill_len
        assert row.seq_len_upper_bound < row.prefill_len == row.total_len and row.seq_len_upper_bound == row.pos + 1

    preempted = check(H.run_mrv2(vllm_config, oracle, prompts, params, preempt={0: [5, 17], 2: [9]}, chunk_size=4,
                                 prefix_cache_block=16))
    assert len(preempted.slots[0]) == 3 and len(set(preempted.slots[0][:2])) == 2
    resumed = [row for step in preempted.steps for row in step.rows if row.prefill_len > row.prompt_len]
    assert resumed, "a resumed request re-prefills prompt + output"

    spec_config = H.make_vllm_config(default_model_dir, num_speculative_tokens=3, max_model_len=CONTEXT)
    oracle_spec = check(H.run_mrv2(spec_config, oracle, prompts, params, proposer=H.oracle_proposer(expected)))
    assert oracle_spec.rejected_drafts == 0 and oracle_spec.accepted_drafts > 20
    noisy = check(H.run_mrv2(spec_config, oracle, prompts, params, proposer=H.noisy_proposer(expected),
                             shuffle=5, async_scheduling=True))
    assert noisy.rejected_drafts > 5 and noisy.accepted_drafts > 5
    optimistic = 0
    for step in noisy.steps:
        for row in step.rows:
            if row.pos >= row.prefill_len:
                # rows of one request: consecutive positions after the committed tokens
                assert row.pos + 1 == row.total_len + row.local_pos
                assert row.seq_len_upper_bound >= row.pos + 1
                optimistic += row.seq_len_upper_bound > row.total_len + 3
    assert optimistic > 0, "async scheduling made no upper bound optimistic"
    # The oracle's cached, batched, KV-cached logits are the model's own.
    seq = prompts[2] + expected[2]
    for n in (len(prompts[2]), len(seq) - 1):
        got, ref = oracle.logits_for([seq[:n]])[0], oracle.reference_logits(seq[:n])
        assert torch.allclose(got, ref, atol=1e-3) and int(got.argmax()) == int(ref.argmax())


def test_harness_sampling_is_seeded(vllm_config, oracle, tokenizer):
    """Without any processor: a seeded sampled request draws the same tokens whatever the batch order, chunking
    or global RNG state (vLLM's counter-based Gumbel noise), and other seeds draw other tokens."""
    req = prepare_requests(tokenizer, ["Say hello.", "Explain gravity briefly.", "Name a color."], ThinkingBudget())

    def params(seeds):
        return [SamplingParams(max_tokens=20, temperature=0.8, top_p=0.95, seed=s, stop_token_ids=[2]) for s in seeds]

    torch.manual_seed(0)
    a = H.run_mrv2(vllm_config, oracle, req.input_ids, params([1, 2, 3]))
    torch.manual_seed(1)
    a2 = H.run_mrv2(vllm_config, oracle, req.input_ids, params([1, 2, 3]), shuffle=2, chunk_size=9)
    b = H.run_mrv2(vllm_config, oracle, req.input_ids, params([4, 5, 6]))
    assert a.outputs == a2.outputs
    assert a.outputs != b.outputs


# ---- the processor under Model Runner V2 --------------------------------------------------------------------


def test_matches_transformers_greedy(baseline, case, want):
    req, _ = case
    assert generated(baseline, req.markers.stop_ids) == want
    assert all(r == "stop" for r in baseline.finish_reasons)


@pytest.mark.parametrize("async_scheduling", [False, True], ids=["sync", "async"])
def test_rows_shuffled_between_steps(run, case, want, async_scheduling):
    req, _ = case
    result = run(shuffle=11, async_scheduling=async_scheduling)
    assert generated(result, req.markers.stop_ids) == want


def test_preemption_and_resume(run, case, want):
    req, _ = case
    i = 3  # max 24, two waits: long thinking, then an answer
    cut = want[i].index(req.markers.think_end[0])
    mid_thinking, mid_answer = 6, cut + 4
    assert mid_answer < len(want[i])
    result = run(preempt={i: [mid_thinking, mid_answer], 5: [10]}, prefix_cache_block=16)
    assert generated(result, req.markers.stop_ids) == want
    assert len(result.slots[i]) == 3 and result.slots[i][0] != result.slots[i][1], result.slots[i]
    assert any(row.prefill_len > row.prompt_len for step in result.steps for row in step.rows if row.request == i)


def _check_logs(result, logs, req, reference) -> None:
    """Each request's ids, and its telemetry replayed with its injection log, equal the transformers engine's."""
    for i, (ids, want) in enumerate(zip(generated(result, req.markers.stop_ids), reference)):
        tracker = BudgetTracker(BUDGETS[i], req.markers)
        tracker.start(req.input_ids[i])
        tracker.replay(ids, injected=set(logs[f"r{i}"]))
        tracker.finish(ids)
        got = (ids, tracker.stats.thinking_tokens, tracker.stats.answer_tokens, tracker.stats.waits,
               tracker.stats.capped)
        assert got == (want.token_ids, want.thinking_tokens, want.answer_tokens, want.waits, want.capped), i


@pytest.mark.parametrize("async_scheduling", [False, True], ids=["sync", "async"])
def test_injection_logs_give_the_transformers_telemetry(run, case, reference, async_scheduling):
    """Named requests (`budget_log`), preempted mid-thinking and mid-answer, slots reused: the processor's logs
    replayed over the output ids give every telemetry field of the transformers engine."""
    req, params = case
    named = [p.clone() for p in params]
    for i, p in enumerate(named):
        p.extra_args = {**p.extra_args, "budget_log": f"r{i}"}
    result = run(sampling=named, preempt={3: [6, 20], 5: [10], 7: [3]}, max_num_reqs=5, shuffle=4,
                 async_scheduling=async_scheduling)
    assert len(result.slots[3]) == 3 and len(result.slots[7]) == 2  # really preempted and resumed
    processor = next(p for p in result.processors if isinstance(p, BudgetForcingLogitsProcessor))
    logs = processor.pop_injection_logs([f"r{i}" for i in range(len(named))])
    assert sorted(logs) == sorted(f"r{i}" for i in range(len(named)))
    _check_logs(result, logs, req, reference)
    # A log holds every replaced end: an extrapolation (a wait), or the end marker written for an end of sequence.
    for i, r in enumerate(reference):
        kinds = [r.kinds[pos] for pos in logs[f"r{i}"]]
        assert kinds.count("extrapolation") == r.waits and set(kinds) <= {"extrapolation", "marker", "stop"}, kinds
    assert sum(r.waits for r in reference) >= 3


def test_reused_slots_second_wave(run, case, want):
    req, _ = case
    result = run(max_num_reqs=3)
    assert generated(result, req.markers.stop_ids) == want
    owners: dict[int, set[int]] = {}
    for i, slots in enumerate(result.slots):
        for s in slots:
            owners.setdefault(s, set()).add(i)
    assert any(len(v) > 1 for v in owners.values()), owners


@pytest.mark.parametrize("prefix_cache_block", [None, 16], ids=["cold", "prefix-cached"])
def test_chunked_prefill_equals_unchunked(run, case, want, baseline, prefix_cache_block):
    req, _ = case
    result = run(chunk_size=7, prefix_cache_block=prefix_cache_block)
    assert any(row.chunked_prefill for step in result.steps for row in step.rows)
    start = list(req.markers.think_start)
    for out in result.outputs:
        assert out[: len(start)] != start, "the think-start marker was written twice"
    assert result.outputs == baseline.outputs
    assert generated(result, req.markers.stop_ids) == want


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("drafts", ["oracle", "noisy"])
def test_speculative_decoding(run, case, want, baseline, default_model_dir, k, drafts):
    req, _ = case
    config = H.make_vllm_config(default_model_dir, num_speculative_tokens=k, max_model_len=CONTEXT)
    reference_outputs = baseline.outputs
    if drafts == "oracle":
        result = run(config=config, proposer=H.oracle_proposer(reference_outputs))
        assert result.rejected_drafts == 0, "a draft equal to the non-speculative output was rejected"
    else:  # rejected drafts; async scheduling: the scheduler's optimistic seq_lens_upper_bound
        result = run(config=config, proposer=H.noisy_proposer(reference_outputs, seed=k), shuffle=k,
                     async_scheduling=True)
        assert result.rejected_drafts > 0
    assert result.accepted_drafts > 0
    assert result.outputs == reference_outputs
    assert generated(result, req.markers.stop_ids) == want


def test_grammar_mask_is_never_raised(run, oracle, tokenizer, model, default_model_dir):
    """An earlier stage (vLLM's bad words) forbids exactly the token the budget forces at the cap: the processor
    must not raise that -inf; the forced token is not forced, the row keeps the earlier stage's logits, and the
    cut is retried at the next step."""
    budget = ThinkingBudget(max_thinking_tokens=12, max_answer_tokens=6)
    questions = ["Explain gravity briefly.", "Say hello."]
    free = hf_engine.generate_with_budget(model, tokenizer, questions, budget)
    assert free[0].capped and free[0].thinking_tokens == 12
    req = prepare_requests(tokenizer, questions, budget)
    markers, ids = req.markers, free[0].token_ids
    cap = 12  # the prompt ends with the think-start marker: ids[:cap] is the thinking
    last, forced = ids[cap - 1], ids[cap]  # the cut's first token follows the last thinking token
    # A bad word [last, forced]: the forced token is masked exactly where the budget forces it.
    masked = budget_params(budget, markers, req.input_ids[0], bad_words=[tokenizer.decode([last, forced])])
    from vllm.tokenizers import get_tokenizer

    masked.update_from_tokenizer(get_tokenizer(str(default_model_dir)))  # what vLLM's input processor does
    if [last, forced] not in (masked.bad_words_token_ids or []):
        masked._bad_words_token_ids = [[last, forced]]  # the tokenizer split the text differently
    params = [masked, budget_params(budget, markers, req.input_ids[1])]
    guard = H.MaskGuard()
    result = run(prompts=req.input_ids, sampling=params, apply_wrapper=guard)
    assert guard.calls > 0
    assert guard.violations == [], f"the processor raised logits an earlier stage set to -inf: {guard.violations[:5]}"
    assert all(r in ("stop", "length") for r in result.finish_reasons)
    assert generated(result, markers.stop_ids)[1] == free[1].token_ids  # the other row is untouched
    out = result.outputs[0]
    assert out[:cap] == ids[:cap]
    # At the cap the row keeps the bad-words stage's logits: the model's own choice without `forced`.
    logits = oracle.logits_for([req.input_ids[0] + ids[:cap]])[0].clone()
    logits[forced] = -float("inf")
    free_choice = int(logits.argmax())
    assert out[cap] == free_choice != forced
    # ... and the cut comes at the next step.
    prefix = markers.encode_budget_string(budget.answer_prefix, "answer_prefix")
    cut = markers.cut_ids(free_choice, prefix)
    assert out[cap + 1 : cap + 1 + len(cut)] == cut, tokenizer.decode(out)


SAMPLED_BUDGET = ThinkingBudget(min_thinking_tokens=32, max_thinking_tokens=40, max_answer_tokens=8)


def _sampled_params(req, seeds, **kwargs):
    budget = SAMPLED_BUDGET
    return [budget_params(budget, req.markers, ids, temperature=0.8, top_p=0.95, seed=s, **kwargs)
            for ids, s in zip(req.input_ids, seeds)]


@pytest.fixture(scope="module")
def sampled_case(tokenizer):
    return prepare_requests(tokenizer, QUESTIONS[:4], SAMPLED_BUDGET)


def test_sampled_requests_follow_their_seed(run, sampled_case):
    req = sampled_case
    seeds_a, seeds_b = [101, 102, 103, 104], [201, 202, 203, 204]
    torch.manual_seed(0)
    a = run(prompts=req.input_ids, sampling=_sampled_params(req, seeds_a))
    torch.manual_seed(12345)  # another global RNG state and another batch order: a seed alone decides
    a2 = run(prompts=req.input_ids, sampling=_sampled_params(req, seeds_a), shuffle=7)
    b = run(prompts=req.input_ids, sampling=_sampled_params(req, seeds_b))
    assert a.outputs == a2.outputs, "a seeded request drew other tokens in another batch order / global RNG state"
    assert sum(x != y for x, y in zip(a.outputs, b.outputs)) >= 2
    for ids, out in zip(req.input_ids * 2, a.outputs + b.outputs):  # still budget-forced, and long runs
        tracker = BudgetTracker(SAMPLED_BUDGET, req.markers)
        tracker.start(ids)
        tracker.replay(out)
        stats = tracker.finish(out)
        assert 32 <= stats.thinking_tokens <= 40 and len(out) >= 36, (stats, len(out))


def test_no_host_syncs_in_apply_on_decode_steps(run, case, sampled_case):
    req, params = case
    sampled = _sampled_params(sampled_case, [101, 102, 103, 104])
    prompts = req.input_ids[:4] + sampled_case.input_ids
    probe = H.SyncProbe(decode_only=True)
    result = run(prompts=prompts, sampling=params[:4] + sampled, apply_wrapper=probe)
    assert len(result.outputs) == 8
    assert len(probe.per_step) >= 10, "too few decode-only steps were observed"
    busy = [(step, n, calls) for step, n, calls in probe.per_step if n]
    assert probe.total == 0, f"host syncs in apply() on decode steps (step, count, calls): {busy[:5]}"


def test_refuses_both_budget_kinds():
    ours = {"thinking_budget": {"max_thinking_tokens": 16}, "think_format": "s1"}
    BudgetForcingLogitsProcessor.validate_params(SamplingParams(extra_args=ours))
    BudgetForcingLogitsProcessor.validate_params(SamplingParams(thinking_token_budget=16))
    with pytest.raises(ValueError, match="thinking_token_budget") as err:
        BudgetForcingLogitsProcessor.validate_params(SamplingParams(thinking_token_budget=16, extra_args=ours))
    assert isinstance(err.value, BudgetError)
    assert "thinking_budget" in str(err.value).replace("thinking_token_budget", "")


# ---- the fused step (BatchBudget's step compiled by torch.compile) under Model Runner V2 ---------------------


def test_fused_step_gives_the_same_run(run, case, reference, baseline, default_model_dir, monkeypatch):
    """With HF_S1_FUSED=1: rows shuffled, chunked prefill, named requests preempted mid-thinking and mid-answer
    with async scheduling and reused slots, then drafts with rejections: the same tokens and telemetry as
    transformers (and as the eager core), from a core that really ran its compiled graphs: no eager fallback
    (inductor's kernels compile at -O0 in tests, tests/conftest.py; at -O3 gcc 12.2 stops on the table steps'
    kernel with an internal compiler error, and the step would fall back to eager)."""
    from hf_s1.engines import fused as fused_module

    req, params = case
    monkeypatch.setenv("HF_S1_FUSED", "1")
    monkeypatch.setattr(fused_module, "_compiled", {})
    monkeypatch.setattr(fused_module, "_failed", [])
    named = [p.clone() for p in params]
    for i, p in enumerate(named):
        p.extra_args = {**p.extra_args, "budget_log": f"r{i}"}
    result = run(sampling=named, preempt={3: [6, 20], 5: [10]}, max_num_reqs=5, shuffle=4, chunk_size=9,
                 async_scheduling=True)
    processor = next(p for p in result.processors if isinstance(p, BudgetForcingLogitsProcessor))
    assert processor._core.fused
    logs = processor.pop_injection_logs([f"r{i}" for i in range(len(named))])
    _check_logs(result, logs, req, reference)
    config = H.make_vllm_config(default_model_dir, num_speculative_tokens=2, max_model_len=CONTEXT)
    drafted = run(config=config, proposer=H.noisy_proposer(baseline.outputs, seed=2), shuffle=2)
    assert drafted.rejected_drafts > 0 and drafted.accepted_drafts > 0
    assert drafted.outputs == baseline.outputs
    assert not fused_module._failed and len(fused_module._compiled) >= 2, fused_module._failed  # no eager fallback
