"""The vLLM engine on the real vLLM (CPU build) and the real SmolLM2-135M-Instruct: parity with the transformers
engine, budget bounds, per-request validation, rows without a budget, and s1's multi-call loop."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from hf_s1 import BudgetError, ThinkingBudget

from vllm import SamplingParams
from vllm.exceptions import VLLMValidationError
from vllm.inputs import TokensPrompt

from hf_s1.engines import transformers as hf_engine
from hf_s1.engines import vllm as vllm_engine

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

TELEMETRY = ("token_ids", "text", "thinking", "answer", "thinking_tokens", "answer_tokens", "waits", "capped",
             "finish_reason", "kinds")


@pytest.fixture(scope="module")
def llm(default_model_dir):
    return vllm_engine.load_llm(default_model_dir, max_num_seqs=32, max_model_len=1024)


def test_parity_with_transformers_greedy_fp32(llm, model, tokenizer):
    # Mixed per-request budgets: an immediate answer, cuts, waits, a lower bound that forces extension.
    budgets = [
        ThinkingBudget(max_thinking_tokens=m, min_thinking_tokens=lo, num_waits=w, max_answer_tokens=6)
        for m, lo, w in [(0, 0, 0), (8, 0, 0), (24, 12, 1), (28, 0, 2), (16, 16, 0), (32, 0, 3), (20, 0, 0), (28, 20, 1)]
    ]
    got = vllm_engine.generate_with_budget(llm, QUESTIONS, budgets)
    want = hf_engine.generate_with_budget(model, tokenizer, QUESTIONS, budgets, batch_size=8)
    assert len(got) == len(want) == 8
    for g, w in zip(got, want):
        for name in TELEMETRY:
            assert getattr(g, name) == getattr(w, name), (name, g.prompt)
        assert g.budget == w.budget
    # The mix really exercised the machinery.
    assert sum(r.waits for r in got) >= 3
    assert any(r.capped for r in got) and any(not r.capped for r in got)
    assert got[0].thinking_tokens == 0 and "<|im_start|>answer\nFinal Answer:" in got[0].text


def test_telemetry_equals_transformers_where_the_model_writes_wait_itself(llm, model, tokenizer):
    """Minimums far above the natural length on a model that loops on "Wait" by itself: every telemetry field
    equals the transformers engine's, since both count the waits their processor injected (its log), not the
    "Wait"s in the text."""
    settings = [(200, 150, 3), (120, 100, 0), (160, 140, 2), (96, 64, 2)]
    budgets = [ThinkingBudget(max_thinking_tokens=m, min_thinking_tokens=lo, num_waits=w, max_answer_tokens=8)
               for m, lo, w in settings]
    prompts = [QUESTIONS[i] for i in (0, 1, 3, 6)]
    got = vllm_engine.generate_with_budget(llm, prompts, budgets)
    want = hf_engine.generate_with_budget(model, tokenizer, prompts, budgets, batch_size=4)
    for g, w in zip(got, want):
        for name in TELEMETRY:
            assert getattr(g, name) == getattr(w, name), (name, g.prompt)
    wait = tokenizer.encode("Wait", add_special_tokens=False)[0]
    written = [r.token_ids[: r.thinking_tokens].count(wait) - r.waits for r in got]
    assert max(written) > 0, written  # the model wrote "Wait"s the budget did not inject


@pytest.mark.parametrize("do_sample", [False, True], ids=["greedy", "sampled"])
def test_control_is_100_percent(llm, do_sample):
    # Lower bounds far beyond the model's natural thinking length (a few tokens), upper bound 0, tight windows.
    windows = [(0, 0), (24, 32), (16, 16), (0, 4), (12, 20), (28, 28), (0, 1), (5, 8)]
    budgets = [
        ThinkingBudget(max_thinking_tokens=hi, min_thinking_tokens=lo, max_answer_tokens=4)
        for _ in range(4) for lo, hi in windows
    ]
    prompts = [QUESTIONS[i % len(QUESTIONS)] for i in range(len(budgets))]
    out = vllm_engine.generate_with_budget(llm, prompts, budgets, do_sample=do_sample, temperature=1.0, seed=0)
    assert len(out) == 32
    inside = [b.min_thinking_tokens <= r.thinking_tokens <= b.max_thinking_tokens for r, b in zip(out, budgets)]
    assert all(inside), [(r.thinking_tokens, b.min_thinking_tokens, b.max_thinking_tokens) for r, b in zip(out, budgets)]
    assert all(r.finish_reason == "stop" and r.answer_tokens <= 4 for r in out)
    # Extension really happened: rows with a high minimum needed injected "Wait"s (a sampled row may also
    # simply think on past the minimum, so count over all such rows).
    assert sum(r.waits for r, b in zip(out, budgets) if b.min_thinking_tokens >= 24) >= 4


def test_sampled_rows_honour_num_waits_and_cap(llm):
    budget = ThinkingBudget(max_thinking_tokens=32, num_waits=2, max_answer_tokens=2)
    out = vllm_engine.generate_with_budget(llm, QUESTIONS, budget, do_sample=True, temperature=0.8, top_p=0.95,
                                           top_k=50, seed=1)
    for r in out:
        assert r.thinking_tokens <= 32
        # Either the cap came first, or the model's first two ends were replaced by "Wait".
        assert r.capped or r.waits == 2
        assert r.text.count("Wait") >= r.waits


def test_rows_without_budget_are_untouched(llm, model, tokenizer):
    text = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+3?"}], tokenize=False,
                                         add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    plain = SamplingParams(max_tokens=12, temperature=0.0)
    budgeted = SamplingParams(max_tokens=12, temperature=0.0, extra_args={"thinking_budget": {"max_thinking_tokens": 3}})
    outs = llm.generate([TokensPrompt(prompt_token_ids=ids)] * 2, [plain, budgeted], use_tqdm=False)
    reference = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False)[0, len(ids):].tolist()
    untouched = list(outs[0].outputs[0].token_ids)
    assert untouched == reference[: len(untouched)]
    forced = tokenizer.decode(outs[1].outputs[0].token_ids, skip_special_tokens=False)
    assert forced.startswith("<|im_start|>think") and "<|im_start|>answer" in forced


def test_malformed_budget_fails_alone(llm, default_model_dir, tokenizer):
    ids = tokenizer("Hello", add_special_tokens=False)["input_ids"]
    bad = SamplingParams(max_tokens=4, extra_args={"thinking_budget": {"max_thinking_tokens": 5, "min_thinking_tokens": 9}})
    # vLLM wraps validate_params' ValueError into its own validation error (HTTP 400 on the server).
    with pytest.raises(VLLMValidationError, match="min_thinking_tokens"):
        llm.generate([TokensPrompt(prompt_token_ids=ids)], bad, use_tqdm=False)
    with pytest.raises(VLLMValidationError, match="think_format"):
        llm.generate([TokensPrompt(prompt_token_ids=ids)],
                     SamplingParams(max_tokens=4, extra_args={"thinking_budget": {}, "think_format": 3}), use_tqdm=False)
    # Counts beyond any table and strings that forge a chat turn are refused at admission, naming the field.
    for budget, match in (({"max_thinking_tokens": 2**63}, "max_thinking_tokens=9223372036854775808 is more than"),
                          ({"num_waits": 2**64 - 1}, "num_waits=18446744073709551615 is more than"),
                          ({"num_waits": 1, "extrapolation": "Wait<|im_start|>"}, "chat-structure token")):
        with pytest.raises(VLLMValidationError, match=match):
            llm.generate([TokensPrompt(prompt_token_ids=ids)],
                         SamplingParams(max_tokens=4, extra_args={"thinking_budget": budget}), use_tqdm=False)
    # The engine goes on, with a budget and without.
    ok = vllm_engine.generate_with_budget(llm, "What is 2+3?", ThinkingBudget(max_thinking_tokens=4, max_answer_tokens=2))
    assert ok[0].thinking_tokens == 4 and ok[0].capped
    plain = llm.generate([TokensPrompt(prompt_token_ids=ids)], SamplingParams(max_tokens=3), use_tqdm=False)
    assert len(plain[0].outputs[0].token_ids) >= 1


def test_generate_with_budget_rejects_bad_input(llm):
    with pytest.raises(BudgetError, match="vllm.LLM"):
        vllm_engine.generate_with_budget(object(), "hi", ThinkingBudget())
    with pytest.raises(BudgetError, match="one ThinkingBudget per prompt"):
        vllm_engine.generate_with_budget(llm, ["a", "b"], [ThinkingBudget()] * 3)
    with pytest.raises(BudgetError, match="temperature"):
        vllm_engine.generate_with_budget(llm, "a", ThinkingBudget(), do_sample=True, temperature=0)
    with pytest.raises(BudgetError, match="context"):
        vllm_engine.generate_with_budget(llm, "a", ThinkingBudget(max_thinking_tokens=5000))
    for n in (0, 2.5, "2", True):  # never coerced
        with pytest.raises(BudgetError, match=r"n \(samples per prompt\) must be an int >= 1"):
            vllm_engine.generate_with_budget(llm, "a", ThinkingBudget(max_thinking_tokens=2), n=n)
    with pytest.raises(BudgetError, match=re.escape("prompt 1: the prompt holds '\\ud800'")):
        vllm_engine.generate_with_budget(llm, ["a", "b\ud800"], ThinkingBudget(max_thinking_tokens=2))
    with pytest.raises(BudgetError, match="more than any context"):
        vllm_engine.generate_with_budget(llm, "a", ThinkingBudget(max_thinking_tokens=2, num_waits=2**63))


def test_s1_loop_on_vllm_matches_single_pass(llm):
    budget = ThinkingBudget(max_thinking_tokens=24, num_waits=2, max_answer_tokens=4)
    loop = vllm_engine.s1_reference_generate(llm, QUESTIONS[:2], budget)
    single = vllm_engine.generate_with_budget(llm, QUESTIONS[:2], budget)
    for a, b in zip(loop, single):
        assert a.token_ids == b.token_ids
        assert (a.thinking_tokens, a.waits, a.capped) == (b.thinking_tokens, b.waits, b.capped)
    assert sum(r.waits for r in single) >= 2


def test_s1_profile_equals_the_multi_call_rules(llm):
    """24 greedy runs (4 prompts x caps 8/16 x 0/2/4 Waits) on vLLM: the one-pass s1 profile gives the ids of the
    multi-call implementation of s1's evaluation rules (vLLM's own min_tokens / stop ids per round), including
    runs whose Wait rounds run past the cap (resumed from the cut)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from s1_eval_reference import compare_profile

    def complete(ids, max_new, stop_ids, min_tokens):
        sp = SamplingParams(max_tokens=max_new, temperature=0.0, stop_token_ids=list(stop_ids), min_tokens=min_tokens,
                            skip_special_tokens=False)
        return list(llm.generate([TokensPrompt(prompt_token_ids=ids)], sp, use_tqdm=False)[0].outputs[0].token_ids)

    generate = lambda p, budget: vllm_engine.generate_with_budget(llm, p, budget)  # noqa: E731
    prompts = ["What is 17 * 23?", "What is 10/4?", "Is 221 prime?", "What is 2+3?"]
    matches, runs, classes = compare_profile(generate, complete, llm.get_tokenizer(), prompts, caps=(8, 16),
                                             waits=(0, 2, 4), answer_tokens=12)
    assert (matches, runs) == (24, 24)
    # Both cut forms after rounds that ran past the cap: the last round ended by itself (end marker alone), and
    # the last round hit its own limit (newline + end marker + "Final Answer:").
    assert classes[("stop", True)] >= 2 and classes[("length", True)] + classes[("length", False)] >= 2, classes


def test_s1_profile_resumed_runs_keep_the_last_rounds_cut_form(llm):
    """Longer caps and more Waits, where rounds pass the cap on a model that loops on "Wait" by itself: the
    resumed answer must follow the cut form of the processor's own last round (its injection log), not one
    inferred from the ids."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from s1_eval_reference import compare_profile

    def complete(ids, max_new, stop_ids, min_tokens):
        sp = SamplingParams(max_tokens=max_new, temperature=0.0, stop_token_ids=list(stop_ids), min_tokens=min_tokens,
                            skip_special_tokens=False)
        return list(llm.generate([TokensPrompt(prompt_token_ids=ids)], sp, use_tqdm=False)[0].outputs[0].token_ids)

    prompts = [QUESTIONS[i] for i in (1, 4, 6, 7)]
    matches, runs, classes = compare_profile(lambda p, budget: vllm_engine.generate_with_budget(llm, p, budget),
                                             complete, llm.get_tokenizer(), prompts, caps=(24,), waits=(6,),
                                             answer_tokens=8)
    assert (matches, runs) == (4, 4), classes
    # Every class past the cap: the last round stopped by itself / hit its limit with Waits left / with none left.
    assert min(classes[("stop", True)], classes[("length", False)], classes[("length", True)]) >= 1, classes


def test_s1_profile_answer_gets_s1s_answer_allowance(llm):
    """No `max_answer_tokens`: s1's answer call writes at most `max_gen_toks` tokens; the single pass's rows may
    write far more (every round up to the cap), so the answer is cut where s1's call would stop."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from s1_eval_reference import compare_profile

    def complete(ids, max_new, stop_ids, min_tokens):
        sp = SamplingParams(max_tokens=max_new, temperature=0.0, stop_token_ids=list(stop_ids), min_tokens=min_tokens,
                            skip_special_tokens=False)
        return list(llm.generate([TokensPrompt(prompt_token_ids=ids)], sp, use_tqdm=False)[0].outputs[0].token_ids)

    ended = []

    def generate(prompts, budget):
        out = vllm_engine.generate_with_budget(llm, prompts, budget, max_new_tokens=6)
        ended.extend(r.finish_reason for r in out)
        return out

    prompts = ["Explain gravity briefly.", "What is 17 * 23?", "Say hello.", "Is 221 prime?"]
    matches, runs, classes = compare_profile(generate, complete, llm.get_tokenizer(), prompts, caps=(8,),
                                             waits=(0, 2), answer_tokens=6, answer_in_budget=False)
    assert (matches, runs) == (8, 8), classes
    assert "length" in ended, ended  # an answer really ran into s1's allowance


def test_s1_profile_and_auto_requests_need_a_client_that_resumes(llm):
    for budget, match in (({"profile": "s1", "max_thinking_tokens": 8}, "second call"),
                          ({"max_thinking_tokens": "auto"}, "whole batch")):
        with pytest.raises((BudgetError, ValueError), match=match):
            vllm_engine.BudgetForcingLogitsProcessor.validate_params(SamplingParams(extra_args={"thinking_budget": budget}))


def test_sampler_probabilities_match_transformers_warpers():
    from transformers import GenerationConfig

    torch.manual_seed(0)
    scores = torch.randn(3, 500) * 3
    settings = [(0.7, 0, 0.9), (1.3, 20, 1.0), (1.0, 5, 0.5)]
    from hf_s1.engines.vllm.sampling import SamplerSettings

    sampler = SamplerSettings(3, torch.device("cpu"))
    sampler.set([0, 1, 2], [SamplingParams(temperature=t, top_k=k, top_p=p) for t, k, p in settings])
    got = sampler.probabilities(scores.clone(), torch.arange(3), np.arange(3))
    for row, (t, k, p) in enumerate(settings):
        warpers = hf_engine.sampling_warpers(GenerationConfig(do_sample=True, temperature=t, top_k=k, top_p=p))
        want = torch.softmax(warpers(None, scores[row : row + 1].clone()), dim=-1)[0]
        torch.testing.assert_close(got[row], want, atol=1e-6, rtol=1e-5)


def test_seeded_sampling_is_reproducible(llm):
    # The inject-or-ban draw comes from the request's seed and the token's position, as vLLM's own sampling does:
    # the same seed twice gives the same tokens; without a budget that already held, now it holds with one.
    budget = ThinkingBudget(min_thinking_tokens=24, max_thinking_tokens=40, max_answer_tokens=8)
    runs = [vllm_engine.generate_with_budget(llm, QUESTIONS[:3], budget, do_sample=True, temperature=1.2, seed=seed)
            for seed in (1234, 1234, 99)]
    assert [r.token_ids for r in runs[0]] == [r.token_ids for r in runs[1]]
    assert [r.token_ids for r in runs[0]] != [r.token_ids for r in runs[2]]
    assert sum(r.waits for run in runs for r in run) > 0  # the draws really decided something


def test_every_sample_of_n_has_its_own_telemetry(llm):
    """`n=3` gives vLLM's own three samples (as `SamplingParams(n=3, seed=7)` draws them), each with the
    telemetry of its own injection log, equal to the sample run alone with its seed."""
    budget = ThinkingBudget(min_thinking_tokens=8, max_thinking_tokens=30, num_waits=1, max_answer_tokens=6)
    out = vllm_engine.generate_with_budget(llm, QUESTIONS[:2], budget, do_sample=True, temperature=1.0, seed=7, n=3)
    assert len(out) == 6 and [o.prompt for o in out] == [QUESTIONS[0]] * 3 + [QUESTIONS[1]] * 3
    assert len({tuple(o.token_ids) for o in out[:3]}) > 1  # the samples differ
    from hf_s1.prompts import prepare_requests

    req = prepare_requests(llm.get_tokenizer(), QUESTIONS[:2], budget)
    native = llm.generate(
        [TokensPrompt(prompt_token_ids=ids) for ids in req.input_ids],
        SamplingParams(n=3, seed=7, temperature=1.0, max_tokens=512, stop_token_ids=list(req.markers.stop_ids),
                       skip_special_tokens=False, extra_args={"thinking_budget": budget.to_dict()}), use_tqdm=False)
    samples = [[t for t in s.token_ids if t not in req.markers.stop_set] for o in native for s in o.outputs]
    assert samples == [o.token_ids for o in out]
    for k in range(3):
        alone = vllm_engine.generate_with_budget(llm, QUESTIONS[:2], budget, do_sample=True, temperature=1.0,
                                                 seed=7 + k)
        for i, a in enumerate(alone):
            for name in TELEMETRY:
                assert getattr(out[3 * i + k], name) == getattr(a, name), (name, i, k)
        assert all(8 <= a.thinking_tokens <= 30 for a in alone)


def test_calls_larger_than_the_kept_logs_are_collected_in_parts(llm, monkeypatch):
    """The processor keeps at most KEPT_LOGS uncollected logs (a server's memory bound); a bigger call goes to the
    engine in parts, each collected before the next, so no request loses its log."""
    from hf_s1.engines.vllm import llm as llm_module, processor as processor_module

    budget = ThinkingBudget(min_thinking_tokens=6, max_thinking_tokens=10, num_waits=1, max_answer_tokens=4)
    whole = vllm_engine.generate_with_budget(llm, QUESTIONS[:5], budget)
    monkeypatch.setattr(processor_module._KeptLogs, "LIMIT", 2)
    with pytest.raises(BudgetError, match="no injection log"):  # one call of 5: the oldest logs were dropped
        vllm_engine.generate_with_budget(llm, QUESTIONS[:5], budget)
    monkeypatch.setattr(llm_module, "KEPT_LOGS", 2)
    parts = vllm_engine.generate_with_budget(llm, QUESTIONS[:5], budget)
    for a, b in zip(parts, whole):
        for name in TELEMETRY:
            assert getattr(a, name) == getattr(b, name), name
    assert sum(r.waits for r in whole) >= 3  # the logs held something to lose


def test_thinking_token_budget_with_a_budget_is_refused():
    params = SamplingParams(thinking_token_budget=10, extra_args={"thinking_budget": {"max_thinking_tokens": 5}})
    with pytest.raises(BudgetError, match="thinking_token_budget"):
        vllm_engine.BudgetForcingLogitsProcessor.validate_params(params)
    vllm_engine.BudgetForcingLogitsProcessor.validate_params(SamplingParams(thinking_token_budget=10))  # ours unused


def test_tokenizer_checks_hold_from_the_first_request(default_model_dir):  # builds a second LLM: keep it last
    # A fresh engine: its very first request with an extrapolation only the tokenizer can judge (it holds the
    # added control token <file_sep>, which no text rule knows) is refused at admission, not generated without a
    # budget; so are ones the text checks catch (an end-of-turn token, a chat-structure token's shape).
    llm = vllm_engine.load_llm(default_model_dir, max_num_seqs=4, max_model_len=256)
    for text, match in (("Wait<file_sep>", "chat-structure token '<file_sep>'"), ("Wait<|im_end|>", "im_end"),
                        ("<|im_start|>user", "chat-structure token '<\\|im_start\\|>'")):
        bad = SamplingParams(max_tokens=8, extra_args={"thinking_budget": {"min_thinking_tokens": 4,
                                                                           "extrapolation": text}})
        with pytest.raises(VLLMValidationError, match=match):
            llm.generate([TokensPrompt(prompt_token_ids=[1, 2, 3])], bad, use_tqdm=False)

