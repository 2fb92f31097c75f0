"""The `s1` profile (s1's evaluation rules) in one pass equals a multi-call implementation of the same rules
(`tests/s1_eval_reference.py`): on random token streams from a deterministic toy model (every rule, many shapes),
then on the real SmolLM2 with both engines. Also: "auto" budgets and the answer room."""

from __future__ import annotations

import collections
import hashlib
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: tests/ is not on sys.path

from s1_eval_reference import s1_eval_loop  # noqa: E402

from hf_s1.budget import (  # noqa: E402
    Ban, BudgetError, BudgetTracker, Force, Intercept, MarkerTokens, ThinkingBudget, TokenKind, token_allowance,
)

VOCAB = 30
WORDS = {"Wait": (20,), "Hmm": (21, 22), "Final Answer:": (26, 27)}
# s1-like toy format: the end marker shares its first token (3) with the start marker; 6 is "\n"; 0 and 1 stop.
MARKERS = MarkerTokens(think_start=(3, 4), think_end=(3, 5), before_end=(6,), after_end=(6,), stop_ids=(0, 1),
                       ends_with_before_end=frozenset({6, 17}), encode=lambda s: list(WORDS[s]))
ENDS = (0, 1, 3)


class ToyModel:
    """Greedy next token = a fixed function of the whole context (so one pass and repeated calls agree exactly)."""

    def __init__(self, seed: int, end_rate: float) -> None:
        self.seed, self.end_rate = seed, end_rate

    def ranking(self, context: list[int]) -> list[int]:
        h = hashlib.blake2b(repr((self.seed, context[-6:], len(context))).encode(), digest_size=16).digest()
        rng = random.Random(h)
        order = list(range(VOCAB))
        rng.shuffle(order)
        if rng.random() < self.end_rate:  # make an end token the favourite now and then
            end = rng.choice(ENDS)
            order.remove(end)
            order.insert(0, end)
        return order

    def pick(self, context: list[int], banned=()) -> int:
        return next(t for t in self.ranking(context) if t not in banned)

    def complete(self, ids: list[int], max_new: int, stop_ids, min_tokens: int) -> list[int]:
        out: list[int] = []
        while len(out) < max_new:
            token = self.pick(ids + out, stop_ids if len(out) < min_tokens else ())
            out.append(token)
            if token in stop_ids:
                break
        return out


def one_pass(model: ToyModel, prompt: list[int], budget: ThinkingBudget, answer_tokens: int):
    """Drive the tracker as an engine adapter does (greedy), resuming a row whose rounds ran past the cap."""
    tracker = BudgetTracker(budget, MARKERS)
    tracker.start(prompt)
    ids: list[int] = []
    for _ in range(10_000):
        action = tracker.next_action()
        top = model.pick(prompt + ids)
        if isinstance(action, Force):
            token = action.token_id
        elif isinstance(action, Intercept):
            token = tracker.intercept() if top in action.token_ids else model.pick(prompt + ids, action.token_ids)
        elif isinstance(action, Ban):
            token = model.pick(prompt + ids, action.token_ids)
        else:
            token = top
        ids.append(token)
        if tracker.observe(token) is TokenKind.STOP or tracker.stats.answer_tokens >= answer_tokens:
            break
    outcome = tracker.stats.overrun
    if outcome:
        head = tracker.resume()
        ids = head + model.complete(prompt + head, answer_tokens, MARKERS.stop_ids, 0)
    tracker.finish(ids)
    return ids, tracker.stats, outcome


def reference(model: ToyModel, prompt: list[int], budget: ThinkingBudget, answer_tokens: int) -> list[int]:
    return s1_eval_loop(model.complete, prompt, cap=budget.max_thinking_tokens, num_waits=budget.num_waits,
                        wait_ids=WORDS[budget.extrapolation[0]], ends=ENDS, stops=MARKERS.stop_ids,
                        end_marker_ids=MARKERS.think_end, end_max_ids=(3, 5, 6, 26, 27), newline_ids=(6,),
                        ends_with_newline=lambda t: t in MARKERS.ends_with_before_end, answer_tokens=answer_tokens)[0]


def test_one_pass_equals_the_multi_call_rules_on_random_streams():
    """2,000 random cases: caps 1..40, 0..4 Waits, one- and two-token Waits, often-ending and rarely-ending models.
    Every outcome occurs: cut inside the first round, the last round stopping by itself, and rounds running past
    the cap whose last round hit its length limit or stopped by itself (both cut strings)."""
    rng = random.Random(11)
    outcomes = collections.Counter()
    for case in range(2000):
        model = ToyModel(case, end_rate=rng.choice([0.05, 0.2, 0.5]))
        budget = ThinkingBudget(max_thinking_tokens=rng.randint(1, 40), num_waits=rng.randint(0, 4),
                                extrapolation=rng.choice(["Wait", "Hmm"]), profile="s1")
        prompt = [rng.randrange(10, 30) for _ in range(rng.randint(0, 4))] + [3, 4]
        ids, stats, overrun = one_pass(model, prompt, budget, answer_tokens=12)
        assert ids == reference(model, prompt, budget, answer_tokens=12), case
        assert stats.thinking_tokens <= budget.max_thinking_tokens
        outcomes[(overrun, stats.capped)] += 1
    assert outcomes[("length", True)] > 20 and outcomes[("stop", True)] > 20, outcomes
    assert outcomes[(None, True)] > 20 and outcomes[(None, False)] > 20, outcomes


def test_a_round_writes_a_token_before_it_may_end():
    """With Waits, the first token of every round (after the start marker, after each Wait) cannot be an end:
    the ends are banned, not replaced; without Waits an end may come at once (s1 sets no minimum then)."""
    rng = random.Random(5)
    seen = 0
    for case in range(300):
        budget = ThinkingBudget(max_thinking_tokens=30, num_waits=rng.randint(1, 3), profile="s1")
        tracker = BudgetTracker(budget, MARKERS)
        tracker.start([12, 3, 4])
        model = ToyModel(case, end_rate=0.6)
        first_of_round = True
        for _ in range(80):
            action = tracker.next_action()
            if first_of_round and tracker.stats.thinking_tokens < 30:
                assert isinstance(action, Ban) and set(action.token_ids) == set(ENDS), (case, action)
                seen += 1
            if isinstance(action, Force):
                token = action.token_id
            elif isinstance(action, Intercept) and model.pick([case] + tracker.ids) in action.token_ids:
                token = tracker.intercept()
            else:
                token = model.pick([case] + tracker.ids, getattr(action, "token_ids", ()))
            kind = tracker.observe(token)
            if kind is TokenKind.STOP or tracker.stats.thinking_ended:
                break
            if kind is TokenKind.EXTRAPOLATION:
                first_of_round = True
            elif kind is TokenKind.THINKING:
                first_of_round = False
    assert seen > 300
    no_waits = BudgetTracker(ThinkingBudget(max_thinking_tokens=30, profile="s1"), MARKERS)
    no_waits.start([12, 3, 4])
    assert isinstance(no_waits.next_action(), Intercept)


def test_profile_refuses_a_wait_minimum_and_auto_needs_a_call():
    with pytest.raises(BudgetError, match="s1 profile has no min_thinking_tokens"):
        ThinkingBudget(min_thinking_tokens=5, profile="s1")
    with pytest.raises(BudgetError, match="profile must be one of"):
        ThinkingBudget(profile="paper")
    with pytest.raises(BudgetError, match="must be resolved"):
        BudgetTracker(ThinkingBudget(max_thinking_tokens="auto"), MARKERS)
    with pytest.raises(BudgetError, match="leaves no thinking"):
        ThinkingBudget(max_thinking_tokens="auto").resolve(MARKERS, allowance=100, longest_prompt=10)


def test_auto_is_the_allowance_minus_longest_prompt_markers_and_100():
    b = ThinkingBudget(max_thinking_tokens="auto", num_waits=2).resolve(MARKERS, allowance=32768, longest_prompt=321)
    # start marker 2, end marker 2 + "\n" 1 + "Final Answer:" 2, margin 100
    assert b.max_thinking_tokens == 32768 - 321 - 2 - 5 - 100 and b.num_waits == 2


def test_answer_room_follows_the_allowance():
    b = ThinkingBudget(max_thinking_tokens=100)
    assert token_allowance(b, MARKERS, 10, 8192) == 8192 - 10  # default allowance: the context, clipped to it
    assert token_allowance(b, MARKERS, 10, None) == 2 + 100 + 6 + 32768 + 1  # no context known: s1's 32,768
    # An explicit max_new_tokens bounds the row, as in generate; with the s1 profile it is s1's max_gen_toks:
    # start 2 + thinking 100 + cut ("\n" + end 2 + "\n" + prefix 2 = 6) + answer (the whole allowance) + EOS.
    assert token_allowance(b, MARKERS, 10, None, max_new_tokens=4000) == 4000
    s1 = ThinkingBudget(max_thinking_tokens=100, profile="s1")
    assert token_allowance(s1, MARKERS, 10, None, max_new_tokens=4000) == 2 + 100 + 6 + 4000 + 1
    capped = ThinkingBudget(max_thinking_tokens=100, max_answer_tokens=64)
    assert token_allowance(capped, MARKERS, 10, 8192) == 2 + 100 + 6 + 64 + 1
    with pytest.raises(BudgetError, match="exceeds the model's context"):
        token_allowance(ThinkingBudget(max_thinking_tokens=9000), MARKERS, 10, 8192)


# ---- the real model ----------------------------------------------------------------------------

PROMPTS = ["What is 17 * 23?", "What is 10/4?", "Is 221 prime?", "What is 2+3?"]


def transformers_complete(model):
    import torch

    def complete(ids, max_new, stop_ids, min_tokens):
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=max_new, do_sample=False, eos_token_id=list(stop_ids),
                             min_new_tokens=min_tokens or None, pad_token_id=stop_ids[0])
        new = out[0, len(ids):].tolist()
        k = next((i for i, t in enumerate(new) if t in stop_ids), None)
        return new if k is None else new[: k + 1]

    return complete


def test_profile_equals_the_multi_call_rules_on_smollm2_transformers(model, tokenizer):
    """24 greedy runs (4 prompts x caps 8/16 x 0/2/4 Waits): the one-pass profile gives the ids of the multi-call
    implementation, including runs whose Wait rounds run past the cap (resumed from the cut)."""
    from s1_eval_reference import compare_profile

    from hf_s1.engines.transformers import generate_with_budget

    matches, runs, classes = compare_profile(
        lambda prompts, budget: generate_with_budget(model, tokenizer, prompts, budget),
        transformers_complete(model), tokenizer, PROMPTS, caps=(8, 16), waits=(0, 2, 4), answer_tokens=12)
    assert (matches, runs) == (24, 24)
    # Both cut forms after rounds that ran past the cap: the last round ended by itself (end marker alone), and
    # the last round hit its own limit (newline + end marker + "Final Answer:").
    assert classes[("stop", True)] >= 2 and classes[("length", True)] + classes[("length", False)] >= 2, classes


def test_resumed_runs_keep_the_last_rounds_cut_form_on_smollm2_transformers(model, tokenizer):
    """Rounds that pass the cap on a model that loops on "Wait" by itself, in every class: the last round stopped
    by itself (end marker alone), hit its limit with Waits left, or hit it with none left (the length form)."""
    from s1_eval_reference import compare_profile

    from hf_s1.engines.transformers import generate_with_budget

    prompts = ["Name a prime number larger than 10.", "How many legs does a spider have?", "Is 17 prime?",
               "Say hello."]
    matches, runs, classes = compare_profile(
        lambda prompts, budget: generate_with_budget(model, tokenizer, prompts, budget),
        transformers_complete(model), tokenizer, prompts, caps=(24,), waits=(6,), answer_tokens=8)
    assert (matches, runs) == (4, 4), classes
    assert min(classes[("stop", True)], classes[("length", False)], classes[("length", True)]) >= 1, classes


def test_answer_gets_s1s_answer_allowance_on_smollm2_transformers(model, tokenizer):
    """No `max_answer_tokens`: the answer stops where s1's answer call (`max_gen_toks`) would, by length."""
    from s1_eval_reference import compare_profile

    from hf_s1.engines.transformers import generate_with_budget

    ended = []

    def generate(prompts, budget):
        out = generate_with_budget(model, tokenizer, prompts, budget, max_new_tokens=6)
        ended.extend(r.finish_reason for r in out)
        return out

    prompts = ["Explain gravity briefly.", "What is 17 * 23?", "Say hello.", "Is 221 prime?"]
    matches, runs, classes = compare_profile(generate, transformers_complete(model), tokenizer, prompts, caps=(8,),
                                             waits=(0, 2), answer_tokens=6, answer_in_budget=False)
    assert (matches, runs) == (8, 8), classes
    assert "length" in ended, ended


def test_auto_from_the_real_allowance_and_batch(model, tokenizer):
    """"auto" = allowance - longest prompt of the call - start marker - (end marker + "\\n" + prefix) - 100: a row
    that cannot end (Waits left) is cut exactly there, whatever its own prompt length."""
    from hf_s1.engines.transformers import generate_with_budget
    from hf_s1.prompts import prepare_requests

    prompts = ["What is 2+3?", "Please think about this carefully and explain: what is seventeen times twenty-three?"]
    budget = ThinkingBudget(max_thinking_tokens="auto", num_waits=1000, max_answer_tokens=4)
    req = prepare_requests(tokenizer, prompts, budget)
    longest = max(len(ids) for ids in req.input_ids)
    m = req.markers
    expected = 220 - longest - len(m.think_start) - (len(m.think_end) + len(m.after_end) + len(
        tokenizer.encode("Final Answer:", add_special_tokens=False))) - 100
    out = generate_with_budget(model, tokenizer, prompts, budget, max_new_tokens=220)
    assert expected > 20 and [r.thinking_tokens for r in out] == [expected, expected]
    assert all(r.capped and "Final Answer:" in r.text for r in out)


def test_answer_room_beyond_512_tokens(model, tokenizer):
    """The answer may use the whole allowance, not a fixed 512 (here the model may not stop: its end tokens are
    suppressed, so the answer runs to the allowance of 600 tokens after a thinking cap of 8)."""
    from hf_s1.engines.transformers import generate_with_budget

    (r,) = generate_with_budget(model, tokenizer, "Count from 1 to 400.",
                                ThinkingBudget(max_thinking_tokens=8, profile="s1"), max_new_tokens=600,
                                suppress_tokens=[tokenizer.eos_token_id, 0])
    assert r.thinking_tokens == 8 and 600 <= r.answer_tokens <= 605 and r.finish_reason == "length"


def test_streaming_refuses_the_s1_profile(model, tokenizer):
    from hf_s1.engines.transformers import stream_with_budget

    with pytest.raises(BudgetError, match="stream with profile='hf-s1'"):
        list(stream_with_budget(model, tokenizer, "What is 2+3?", ThinkingBudget(max_thinking_tokens=8, profile="s1")))
