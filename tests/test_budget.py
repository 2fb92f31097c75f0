"""The framework-free state machine: validation, then property tests over random token streams."""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_s1.budget import BudgetError, BudgetTracker, Force, Free, Intercept, MarkerTokens, ThinkingBudget, TokenKind

# A toy vocabulary with multi-token markers: start = <s> think, end = <s> answer (like s1 on ChatML).
EOS, S, THINK, ANSWER, NL, WAIT, HMM, FINAL, X, Y, NLX = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
VOCAB = {"Wait": [WAIT], "Hmm": [HMM, X], "Final Answer:": [FINAL], "Alt": [Y, Y, Y]}
MARKERS = MarkerTokens(
    think_start=(S, THINK),
    think_end=(S, ANSWER),
    before_end=(NL,),
    after_end=(NL,),
    stop_ids=(EOS,),
    ends_with_before_end=frozenset({NL, NLX}),
    encode=lambda text: VOCAB[text],
    space_ids=frozenset({NL}),
)
PROMPT = [X, Y, S, THINK]


# ---- ThinkingBudget validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(max_thinking_tokens=5, min_thinking_tokens=6), "lower the minimum"),
        (dict(max_thinking_tokens=-1), ">= 0"),
        (dict(min_thinking_tokens=-3), ">= 0"),
        (dict(num_waits=-1), ">= 0"),
        (dict(max_thinking_tokens=2.5), "non-negative int"),
        (dict(max_thinking_tokens="10"), "non-negative int"),
        (dict(num_waits=True), "non-negative int"),
        (dict(extrapolation=""), "non-empty"),
        (dict(extrapolation=[]), "non-empty"),
        (dict(extrapolation=["Wait", ""]), "non-empty"),
        (dict(max_answer_tokens=-2), ">= 0"),
    ],
)
def test_invalid_budgets_raise_with_the_fix(kwargs, match):
    with pytest.raises(BudgetError, match=match):
        ThinkingBudget(**kwargs)


def test_budget_round_trips_and_rejects_unknown_fields():
    b = ThinkingBudget(max_thinking_tokens=3, extrapolation=["Wait", "Hmm"])
    assert b.extrapolation == ("Wait", "Hmm")
    assert ThinkingBudget.from_dict(b.to_dict()) == b
    with pytest.raises(BudgetError, match="unknown thinking-budget field"):
        ThinkingBudget.from_dict({"max_tokens": 5})


def test_budget_strings_that_would_end_generation_are_refused():
    markers = MarkerTokens((S, THINK), (S, ANSWER), (NL,), (NL,), (EOS,), frozenset({NL}), encode=lambda t: [X, EOS])
    with pytest.raises(BudgetError, match="end-of-sequence"):
        BudgetTracker(ThinkingBudget(extrapolation="bad"), markers)


# ---- a driver: the "model" proposes random tokens; the tracker decides -------------------------------


def drive(budget, proposals, prompt=PROMPT, limit=400):
    """Run the tracker against a token source; returns the generated ids and the tracker."""
    tracker = BudgetTracker(budget, MARKERS)
    tracker.start(prompt)
    out = []
    it = iter(proposals)
    while len(out) < limit and not tracker.done:
        action = tracker.next_action()
        proposal = next(it, EOS)
        if isinstance(action, Force):
            token = action.token_id
        elif isinstance(action, Intercept):
            token = tracker.intercept() if proposal in action.token_ids else proposal
        else:
            assert isinstance(action, Free)
            token = proposal
        tracker.observe(token)
        out.append(token)
    return out, tracker


def recount_thinking(prompt, out):
    """Thinking tokens recounted from the ids alone: after the start marker, before the end marker, minus
    the cut's newline (which the cut writes right before the end marker)."""
    ids = prompt + out
    # The start marker closes the prompt or opens the output; one the answer writes later is answer text.
    start = max(i for i in range(min(len(ids) - 1, len(prompt) + 1)) if ids[i : i + 2] == [S, THINK]) + 2
    end = next((i for i in range(start, len(ids) - 1) if ids[i : i + 2] == [S, ANSWER]), None)
    return start, end


budgets = st.builds(
    lambda mx, mn, waits, ex: ThinkingBudget(
        max_thinking_tokens=mx, min_thinking_tokens=min(mn, mx) if mx is not None else mn, num_waits=waits,
        extrapolation=ex, answer_prefix="Final Answer:", max_answer_tokens=5,
    ),
    st.one_of(st.none(), st.integers(0, 40), st.just(10**9)),
    st.integers(0, 60),
    st.integers(0, 4),
    st.sampled_from(["Wait", ["Wait", "Hmm"], ["Alt", "Wait"]]),
)
streams = st.lists(st.sampled_from([EOS, S, THINK, ANSWER, NL, X, Y, WAIT, NLX]), min_size=0, max_size=300)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(budget=budgets, stream=streams)
def test_bounds_hold_on_random_streams(budget, stream):
    out, t = drive(budget, stream)
    s = t.stats
    cap = budget.max_thinking_tokens
    # Upper bound, always.
    if cap is not None:
        assert s.thinking_tokens <= cap
    # The tracker's count equals the count recovered from the ids.
    kinds = t.kinds
    assert s.thinking_tokens == sum(k in (TokenKind.THINKING, TokenKind.EXTRAPOLATION) for k in kinds)
    start, end = recount_thinking(PROMPT, out)
    if end is not None:
        assert s.thinking_ended
        inside = end - start - (1 if kinds[end - len(PROMPT) - 1] is TokenKind.CUT else 0)
        assert inside == s.thinking_tokens
        # Lower bounds hold whenever thinking ended without the cap.
        if not s.capped:
            assert s.thinking_tokens >= budget.min_thinking_tokens
            assert s.waits >= budget.num_waits
    # No end-of-sequence inside thinking: the row only stops in the answer phase.
    if s.finished:
        assert s.thinking_ended
    # A cap cut writes the answer prefix right after the end marker and its separator.
    if s.capped and end is not None and len(out) > end - len(PROMPT) + 3:
        j = end - len(PROMPT)
        assert out[j : j + 4] == [S, ANSWER, NL, FINAL]
    # Every injection writes at least its first token and at most its whole string (3 tokens at most here).
    injected = sum(k is TokenKind.EXTRAPOLATION for k in kinds)
    assert s.waits <= injected <= 3 * s.waits
    if s.answer_tokens and budget.max_answer_tokens is not None:
        assert s.answer_tokens <= budget.max_answer_tokens


@settings(max_examples=60, deadline=None)
@given(cap=st.integers(1, 30))
def test_half_emitted_end_marker_is_completed_not_restarted(cap):
    # The model starts the end marker one token before the cap: its marker is completed, no cut follows.
    out, t = drive(ThinkingBudget(max_thinking_tokens=cap), [X] * (cap - 1) + [S, Y, Y, Y])
    assert out[: cap + 1] == [X] * (cap - 1) + [S, ANSWER]
    assert t.stats.thinking_tokens == cap - 1 and not t.stats.capped
    assert out.count(S) == 1  # one end marker, never restarted


def test_max_budget_zero_answers_at_once():
    # s1 issue #53: a budget of 0 goes straight to the answer.
    out, t = drive(ThinkingBudget(max_thinking_tokens=0), [X] * 10)
    assert out[:5] == [NL, S, ANSWER, NL, FINAL]
    assert t.stats.thinking_tokens == 0 and t.stats.capped and t.stats.answer_tokens > 0


def test_model_ending_early_gets_waits_then_minimum_then_ends():
    budget = ThinkingBudget(min_thinking_tokens=6, num_waits=1, max_thinking_tokens=100, max_answer_tokens=3)
    # The model tries to end at every step.
    out, t = drive(budget, [EOS] * 50)
    assert t.stats.thinking_tokens == 6 and t.stats.waits == 6  # each Wait is one token; ends at the minimum
    assert not t.stats.capped
    # The end-of-sequence attempt once ending is allowed becomes the end marker, then the answer phase.
    assert out[6:8] == [S, ANSWER]
    assert t.stats.finished


def test_extrapolation_is_cut_by_the_cap_mid_string():
    budget = ThinkingBudget(max_thinking_tokens=2, num_waits=5, extrapolation="Alt")  # "Alt" is 3 tokens
    out, t = drive(budget, [EOS] * 20)
    assert out[:2] == [Y, Y] and t.stats.thinking_tokens == 2 and t.stats.capped
    assert out[2:6] == [NL, S, ANSWER, NL]


def test_rotation_of_extrapolation_strings():
    budget = ThinkingBudget(num_waits=3, extrapolation=["Wait", "Hmm"], max_answer_tokens=1)
    out, t = drive(budget, [EOS] * 20)
    assert out[:4] == [WAIT, HMM, X, WAIT]
    assert t.stats.waits == 3


def test_prompt_without_start_marker_gets_it_and_partial_marker_is_completed():
    out, t = drive(ThinkingBudget(max_thinking_tokens=1), [X] * 10, prompt=[X, Y])
    assert out[:2] == [S, THINK] and t.kinds[:2] == [TokenKind.MARKER] * 2
    out, t = drive(ThinkingBudget(max_thinking_tokens=1), [X] * 10, prompt=[X, S])
    assert out[0] == THINK and t.stats.thinking_tokens == 1
    # A thinking block of an earlier turn (closed or left open, then the turn's end) does not decide.
    for earlier in ([S, THINK, X, S, ANSWER, X], [S, THINK, X]):
        out, t = drive(ThinkingBudget(max_thinking_tokens=1), [X] * 10, prompt=[*earlier, EOS, Y])
        assert out[:2] == [S, THINK]


def test_prompt_that_closes_thinking_is_answered_without_thinking():
    # A template that switched thinking off ends its generation prompt with a closed block: never re-opened.
    out, t = drive(ThinkingBudget(max_thinking_tokens=4), [X] * 6, prompt=[X, EOS, Y, S, THINK, NL, S, ANSWER, NL])
    assert out[:6] == [X] * 6 and set(t.kinds[:6]) == {TokenKind.ANSWER}
    assert t.stats.thinking_tokens == 0 and not t.stats.thinking_started and not t.stats.capped
    # Only the end marker (DeepSeek-V3.1's `</think>` with thinking off) closes it as well.
    out, t = drive(ThinkingBudget(max_thinking_tokens=4), [X] * 3, prompt=[X, EOS, Y, S, ANSWER])
    assert t.kinds[:3] == [TokenKind.ANSWER] * 3
    # A block closed earlier in the turn, then more text (a plain prompt with a new question): thinking starts anew.
    out, t = drive(ThinkingBudget(max_thinking_tokens=4), [X] * 8, prompt=[S, THINK, X, S, ANSWER, Y, X])
    assert out[:2] == [S, THINK] and t.stats.thinking_started


def test_cut_skips_the_newline_when_thinking_already_ends_with_one():
    out, _ = drive(ThinkingBudget(max_thinking_tokens=2), [X, NLX, Y])
    assert out[:5] == [X, NLX, S, ANSWER, NL]


def test_overridden_forced_token_is_taken_as_the_models_own():
    t = BudgetTracker(ThinkingBudget(max_thinking_tokens=0), MARKERS)
    t.start(PROMPT)
    assert t.next_action() == Force(NL)
    assert t.observe(EOS) is TokenKind.STOP  # e.g. a length limit's forced EOS downstream
    assert t.done and t.stats.capped and not t.stats.thinking_ended


def test_huge_budget_and_random_seeds_are_deterministic():
    rng = random.Random(0)
    stream = [rng.choice([X, Y, EOS, S]) for _ in range(200)]
    a, _ = drive(ThinkingBudget(max_thinking_tokens=10**9, num_waits=2), stream)
    b, _ = drive(ThinkingBudget(max_thinking_tokens=10**9, num_waits=2), stream)
    assert a == b


@settings(max_examples=200, deadline=None)
@given(budget=budgets, stream=streams)
def test_replay_of_a_driven_stream_reproduces_its_telemetry(budget, stream):
    out, live = drive(budget, stream)
    replayed = BudgetTracker(budget, MARKERS)
    replayed.start(PROMPT)
    replayed.replay(out)
    a, b = live.stats, replayed.stats
    assert (a.thinking_tokens, a.answer_tokens, a.capped, a.finished) == (b.thinking_tokens, b.answer_tokens, b.capped, b.finished)
    # A token the model wrote that equals a forced one is read as forced: waits can only be over-counted.
    assert b.waits >= a.waits
