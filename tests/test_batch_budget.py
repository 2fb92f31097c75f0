"""Differential tests: the vectorised `BatchBudget` takes the same decisions as the specification,
`hf_s1.budget.BudgetTracker`, at every step of random token streams, and counts the same telemetry.

Random cases mix, in one batch: s1-like and r1-like formats with multi-token markers, budgets of 0 / 1 / small /
huge / none, minimums above the stream's natural length, rotating multi-token extrapolations, empty answer
prefixes, answer caps, prompts that end inside the start marker, already-open or already-closed thinking, and
streams that override forced tokens (an end-of-sequence inside a forced run, half-written markers).
"""

from __future__ import annotations

import random

import pytest
import torch

from hf_s1.budget import Ban, BudgetTracker, Force, Free, Intercept, MarkerTokens, ThinkingBudget
from hf_s1.engines.batch_budget import KINDS, BatchBudget, SlotSpec

VOCAB = 40
# Ids 0..2 are stops; 3..9 build markers; the rest is text. Budget strings encode through WORDS.
WORDS = {"Wait": (20,), "Hmm": (21, 22), "Alternatively": (23, 24, 25), "Final Answer:": (26, 27), "A:": (28,)}


def _markers(rng: random.Random) -> MarkerTokens:
    shapes = [
        dict(think_start=(3, 4), think_end=(3, 5), before_end=(6,), after_end=(6,)),  # s1: shared first token
        dict(think_start=(7,), think_end=(8, 9, 3), before_end=(6,), after_end=(6, 6)),  # r1-like, longer end
        dict(think_start=(3, 4, 5), think_end=(9,), before_end=(), after_end=()),  # one-token end, no newline
        # a plain-text end marker (OLMo 3's `</` `think` `>`): its first piece also starts ordinary text
        dict(think_start=(7,), think_end=(16, 17, 18), before_end=(6,), after_end=(6,), end_is_text=True),
    ]
    shape = rng.choice(shapes)
    stops = tuple(rng.sample([0, 1, 2], rng.randint(1, 3)))
    ends_nl = frozenset({6} | set(rng.sample(range(10, VOCAB), 5)))
    # Turn ends beyond the stops: an end-of-turn token a marker holds (gpt-oss's `<|end|>` opens its end marker).
    turns = rng.choice([(), (shape["think_end"][0],), (15,)])
    return MarkerTokens(**shape, stop_ids=stops, ends_with_before_end=ends_nl, encode=lambda s: list(WORDS[s]),
                        turn_ends=turns, space_ids=frozenset({6}))


def _budget(rng: random.Random) -> ThinkingBudget:
    cap = rng.choice([None, 0, 1, 2, 3, 5, 8, 13, 10**9])
    low = rng.choice([0, 0, 1, 4, 9, 30])
    if cap is not None:
        low = min(low, cap)
    extrap = rng.choice(["Wait", ["Hmm", "Wait"], ["Alternatively", "Hmm", "Wait"]])
    profile = rng.choice(["hf-s1", "s1"])  # s1: rounds, a token before each end, thinking past the cap
    return ThinkingBudget(max_thinking_tokens=cap, min_thinking_tokens=low if profile == "hf-s1" else 0,
                          num_waits=rng.choice([0, 1, 2, 3]), extrapolation=extrap,
                          answer_prefix=rng.choice(["Final Answer:", "", "A:"]),
                          max_answer_tokens=rng.choice([None, 0, 2, 6]), profile=profile)


def _prompt(rng: random.Random, m: MarkerTokens) -> list[int]:
    text = [rng.randrange(10, 30) for _ in range(rng.randint(0, 5))]
    if rng.random() < 0.4:  # earlier turns, whose markers (open, closed, or a user's own text) never decide
        earlier = rng.choice([list(m.think_start) + [13], list(m.think_start) + [11] + list(m.think_end), [14]])
        text = earlier + [rng.choice(m.turn_ends)] + text
    kind = rng.randrange(6)
    if kind == 0:
        return text + list(m.think_start)  # ends with the start marker: thinking has begun
    if kind == 1:
        return text + list(m.think_start[: rng.randint(1, len(m.think_start))])  # half-way into it
    if kind == 2:
        # closed in this turn (the answer begins) when only whitespace (6) follows, else not begun
        return text + list(m.think_start) + [11] + list(m.think_end) + rng.choice([[], [6], [6, 6], [12], [6, 12]])
    if kind == 5:
        return text + list(m.think_end)  # closed by the end marker alone (thinking switched off)
    if kind == 3:
        return text + list(m.think_start) + [13, 14]  # open, with thoughts already
    return text


def _token(rng: random.Random, m: MarkerTokens, wanted: int | None, vocab: int = VOCAB) -> int:
    """The next token: usually what was asked for, sometimes an override (markers, stops, text)."""
    if wanted is not None and rng.random() < 0.85:
        return wanted
    pool = [rng.randrange(vocab)] * 4 + [m.think_end[0], m.think_start[0], *m.stop_ids, *m.think_end]
    if m.end_is_text and rng.random() < 0.4:  # walk through the marker: its pieces in order, now and then all of them
        k = _WALK.get(id(m), 0)
        _WALK[id(m)] = (k + 1) % len(m.think_end) if rng.random() < 0.8 else 0
        return m.think_end[k]
    return rng.choice(pool)


_WALK: dict[int, int] = {}  # a plain-text marker's next piece, per row's markers


def _check_action(action, force: int, intercept: bool, ban: bool, ids: set[int], row: int, step: int) -> None:
    where = f"row {row}, step {step}"
    if isinstance(action, Force):
        assert not intercept and not ban and force == action.token_id, (where, action, force, intercept)
    elif isinstance(action, Intercept):
        assert intercept and not ban and force == -1 and ids == set(action.token_ids), (where, action, ids)
    elif isinstance(action, Ban):
        assert ban and not intercept and force == -1 and ids == set(action.token_ids), (where, action, ids)
    else:
        assert isinstance(action, Free) and not intercept and not ban and force == -1, (where, action, force)


def _setup(rng: random.Random, rows: int, markers=None, budget=None, fused: bool = False):
    specs, prompts, trackers = [], [], []
    for _ in range(rows):
        m = _markers(rng) if markers is None else rng.choice(markers)
        b = _budget(rng) if budget is None else budget(rng)
        specs.append(SlotSpec(b, m))
        prompt = _prompt(rng, m)
        prompts.append(prompt)
        t = BudgetTracker(b, m)
        t.start(prompt)
        trackers.append(t)
    core = BatchBudget(rows + 2, log_injections=True, fused=fused)
    slots = list(range(1, rows + 1))  # leave slots 0 and rows+1 unused: adapters address slots, not rows
    core.set_slots(slots, specs)
    width = max(1, max(len(p) for p in prompts))
    padded = torch.tensor([[-7] * (width - len(p)) + p for p in prompts])  # pad value never read
    core.start(slots, padded, torch.tensor([len(p) for p in prompts]))
    return core, slots, specs, prompts, trackers


@pytest.mark.parametrize("chunk", range(10))
def test_decisions_and_telemetry_equal_the_tracker(chunk):
    """1,200 random sequences (10 chunks x 20 batches x 6 rows), 45 steps each, through decide / resolve / observe."""
    _differential(random.Random(1000 + chunk), batches=20)


@pytest.fixture(scope="module")
def real_markers(default_model_dir):
    from transformers import AutoTokenizer

    from hf_s1.formats import marker_tokens

    tokenizer = AutoTokenizer.from_pretrained(default_model_dir)
    return tokenizer, [marker_tokens(tokenizer, "s1"), marker_tokens(tokenizer, "r1")]


def test_decisions_equal_the_tracker_with_real_s1_and_r1_markers(real_markers):
    """240 sequences mixing the real s1 and r1 formats of SmolLM2's tokenizer (r1's markers are plain text, several
    tokens each; s1's share their first token), with real extrapolation strings and answer prefixes."""
    tokenizer, markers = real_markers

    def budget(rng):
        cap = rng.choice([None, 0, 1, 4, 9, 10**9])
        low = min(rng.choice([0, 3, 12, 40]), cap if cap is not None else 10**9)
        return ThinkingBudget(max_thinking_tokens=cap, min_thinking_tokens=low, num_waits=rng.choice([0, 1, 3]),
                              extrapolation=rng.choice(["Wait", ["Hmm, let me check", "Wait"], "\nAlternatively"]),
                              answer_prefix=rng.choice(["Final Answer:", ""]), max_answer_tokens=rng.choice([None, 3]))

    _differential(random.Random(7), batches=40, markers=markers, budget=budget, vocab=len(tokenizer))


def _differential(rng: random.Random, batches: int, markers=None, budget=None, vocab: int = VOCAB) -> None:
    for _ in range(batches):
        rows = 6
        core, slots, specs, _, trackers = _setup(rng, rows, markers, budget)
        slot = torch.tensor(slots)
        active = torch.ones(rows, dtype=torch.bool)
        for step in range(45):
            st = core.state.index(slot)
            st, force, intercept, extend, ban = core.decide(slot, st, active)
            ids, uniq = core.intercept_ids(slot, extend, st.tail)
            hits = []
            wanted: list[int | None] = []
            for r, t in enumerate(trackers):
                action = t.next_action()
                row_ids = {int(i) for i, u in zip(ids[r], uniq[r]) if u}
                _check_action(action, int(force[r]), bool(intercept[r]), bool(ban[r]), row_ids, r, step)
                hit = isinstance(action, Intercept) and rng.random() < 0.5
                hits.append(hit)
                wanted.append(t.intercept() if hit else (action.token_id if isinstance(action, Force) else None))
            st, head = core.resolve(slot, st, torch.tensor(hits), extend)
            for r, hit in enumerate(hits):
                if hit:
                    assert int(head[r]) == wanted[r], (r, step)
            tokens = [_token(rng, specs[r].markers, wanted[r], vocab) for r in range(rows)]
            st, kinds = core.observe(slot, st, torch.tensor(tokens), active)
            core.state.put_(slot, st)
            for r, t in enumerate(trackers):
                assert KINDS[int(kinds[r])] is t.observe(tokens[r]), (r, step)
        got = core.stats(slots)
        for r, t in enumerate(trackers):
            s = t.stats
            assert (got["thinking"][r], got["answer"][r], got["waits"][r], got["capped"][r], got["finished"][r]) == (
                s.thinking_tokens, s.answer_tokens, s.waits, s.capped, s.finished), r


@pytest.mark.parametrize("chunk", range(4))
@pytest.mark.parametrize("sampled", [False, True], ids=["greedy", "sampled"])
def test_engine_steps_equal_the_tracker_and_replay_is_exact(chunk, sampled):
    """The engine-facing path (propose on logits, then commit the token) on random logits: the same tokens as the
    tracker driven the way the per-row adapters drove it, and telemetry replayed from the output ids with the
    injection log equals the live tracker's, waits included."""
    rng = random.Random(2000 + chunk + 100 * sampled)
    gen = torch.Generator().manual_seed(chunk)
    for _ in range(10):
        rows = 6
        core, slots, specs, prompts, trackers = _setup(rng, rows)
        for r, spec in enumerate(specs):  # sampled rows draw from their seed
            spec.greedy, spec.seed = not sampled, 1234 + r
        core.set_slots(slots, specs)
        core.start(slots, *_right_aligned(prompts))
        slot = torch.tensor(slots)
        active = torch.ones(rows, dtype=torch.bool)
        outputs: list[list[int]] = [[] for _ in range(rows)]
        for step in range(40):
            core.reserve_log(step + 1)
            logits = torch.randn(rows, VOCAB, generator=gen) * 3
            # Make ends likely, so that intercepts really hit.
            logits[:, [0, 1, 2, 3, 8, 9]] += torch.rand(rows, 6, generator=gen) * 4
            original = logits.clone()
            probs = torch.softmax(original, dim=-1)
            before = core.state.index(slot)
            core.propose(logits, slot, active, probs=probs if sampled else None)
            tokens = []
            for r, t in enumerate(trackers):
                action = t.next_action()
                if isinstance(action, Intercept):
                    ids = sorted(action.token_ids)
                    if sampled:
                        from hf_s1.engines.batch_budget import _uniform

                        u = float(_uniform(torch.tensor([1234 + r]), before.n_gen[r : r + 1])[0])
                        attempted = u < float(probs[r, ids].sum())
                    else:
                        attempted = int(original[r].argmax()) in ids
                    token = t.intercept() if attempted else None
                elif isinstance(action, Force):
                    token = action.token_id
                else:
                    token = None
                row = logits[r]
                if token is not None:
                    assert int(row.argmax()) == token, (r, step, "the forced id must top its row")
                elif isinstance(action, (Intercept, Ban)):
                    assert torch.isneginf(row[sorted(action.token_ids)]).all(), (r, step, "ends must be banned")
                if token is None:
                    token = int(torch.multinomial(torch.softmax(row, -1), 1, generator=gen)) if sampled else int(row.argmax())
                if rng.random() < 0.05:
                    token = _token(rng, specs[r].markers, None)  # something downstream overrides the decision
                tokens.append(token)
                outputs[r].append(token)
                t.observe(token)
            kinds = core.commit(slot, torch.tensor(tokens))
            for r, t in enumerate(trackers):
                assert KINDS[int(kinds[r])] is t.kinds[-1], (r, step)
        got = core.stats(slots)
        for r, t in enumerate(trackers):
            s = t.stats
            assert (got["thinking"][r], got["answer"][r], got["waits"][r], got["capped"][r], got["finished"][r]) == (
                s.thinking_tokens, s.answer_tokens, s.waits, s.capped, s.finished), r
            again = BudgetTracker(specs[r].budget, specs[r].markers)
            again.start(prompts[r])
            again.replay(outputs[r], injected=core.injected_positions(slots[r]))
            assert again.kinds == t.kinds and again.stats == t.stats, r


def _right_aligned(prompts):
    width = max(1, max(len(p) for p in prompts))
    return torch.tensor([[0] * (width - len(p)) + p for p in prompts]), torch.tensor([len(p) for p in prompts])


def test_forced_token_never_raises_a_masked_logit():
    """An earlier stage forbade the token the cut wants: the row is left as it was; the cut comes once allowed."""
    m = MarkerTokens(think_start=(3, 4), think_end=(3, 5), before_end=(6,), after_end=(6,), stop_ids=(0,),
                     ends_with_before_end=frozenset({6}), encode=lambda s: list(WORDS[s]))
    core = BatchBudget(1)
    core.set_slots([0], [SlotSpec(ThinkingBudget(max_thinking_tokens=0), m)])
    core.start([0], torch.tensor([[11, 3, 4]]))
    slot, active = torch.tensor([0]), torch.tensor([True])
    logits = torch.zeros(1, VOCAB)
    logits[0, 6] = float("-inf")  # the cut's leading newline is forbidden
    before = logits.clone()
    core.propose(logits, slot, active)
    assert torch.equal(logits, before)
    kinds = core.commit(slot, torch.tensor([12]))  # the model writes its own token...
    assert KINDS[int(kinds[0])].value == "thinking"
    logits = torch.zeros(1, VOCAB)
    core.propose(logits, slot, active)  # ...and the cut is taken at the next step
    assert int(logits.argmax()) == 6 and torch.isfinite(logits).all()


def test_seeded_draws_are_reproducible_and_uniform():
    from hf_s1.engines.batch_budget import _uniform

    pos = torch.arange(20000)
    a = _uniform(torch.full_like(pos, 7), pos)
    assert torch.equal(a, _uniform(torch.full_like(pos, 7), pos))
    assert not torch.equal(a, _uniform(torch.full_like(pos, 8), pos))
    assert 0.0 <= float(a.min()) and float(a.max()) < 1.0
    assert abs(float(a.mean()) - 0.5) < 0.01 and abs(float((a < 0.1).float().mean()) - 0.1) < 0.01
    big = _uniform(torch.full((4,), 2**62 + 5), torch.arange(4))  # 63-bit seeds do not overflow
    assert torch.isfinite(big).all()


def test_added_slots_keep_every_state_and_take_new_requests():
    """`add_slots` mid-run (transformers' continuous batching grows its state): the grown core takes the same
    decisions as one that never grew, and a request entering a new slot runs like one in an old slot."""
    rng = random.Random(77)
    gen = torch.Generator().manual_seed(77)
    grown, slots, specs, prompts, _ = _setup(rng, 6)
    same = BatchBudget(grown.num_slots, log_injections=True, fused=False)
    same.set_slots(slots, specs)
    same.start(slots, *_right_aligned(prompts))
    slot = torch.tensor(slots)
    active = torch.ones(6, dtype=torch.bool)
    for step in range(30):
        if step == 12:
            grown.add_slots(5)
            assert grown.num_slots == same.num_slots + 5 and grown.state.phase.shape[0] == grown.num_slots
            # a new request in a new slot decides like the same request in an old, free one
            grown.set_slots([10], [specs[0]])
            grown.start([10], *_right_aligned(prompts[:1]))
        for core in (grown, same):
            core.reserve_log(step + 1)
        logits = torch.randn(6, VOCAB, generator=gen) * 3
        logits[:, [0, 1, 2, 3, 8, 9]] += 2
        a, b = logits.clone(), logits.clone()
        grown.propose(a, slot, active)
        same.propose(b, slot, active)
        assert torch.equal(a, b), step
        tokens = a.argmax(dim=-1)
        assert torch.equal(grown.commit(slot, tokens), same.commit(slot, tokens)), step
    for name in ("thinking", "waits", "capped", "phase", "n_gen"):
        assert torch.equal(getattr(grown.state, name)[: same.num_slots], getattr(same.state, name)), name
    assert torch.equal(grown.injected[: same.num_slots, :-1], same.injected[:, : grown.injected.shape[1] - 1])


def _continuation(core: BatchBudget, slot: torch.Tensor, markers: list[MarkerTokens]) -> list:
    """What a core's slots would do next: queued runs (their remaining ids and kind), counters, and the tail
    entries a marker can reach (a core started from a prompt keeps older ones, which no rule reads)."""
    st = core.state.index(slot)
    out = []
    for r in range(slot.shape[0]):
        s = int(slot[r])
        queued = int(st.qpos[r]) < int(st.qlen[r])
        run = None
        if queued:
            run = (core.seqs[s, int(st.qseq[r]), int(st.qpos[r]):int(st.qlen[r])].tolist(), int(st.qkind[r]))
        reach = max(len(markers[r].think_start), len(markers[r].think_end))
        out.append((run, st.tail[r, -reach:].tolist(), *(int(getattr(st, f)[r]) for f in (
            "phase", "thinking", "answer", "waits", "capped", "finished", "n_gen", "round"))))
    return out


@pytest.mark.parametrize("chunk", range(3))
def test_resume_equals_committing_every_token(chunk):
    """`resume` (host replay by the tracker, then one write per field) leaves a slot where committing its output
    token by token leaves it: with the injection log, the same as the live core; without one, the same as a core
    that commits the output with no decisions stored (inferred). Then both go on taking the same decisions."""
    rng = random.Random(3000 + chunk)
    gen = torch.Generator().manual_seed(chunk)
    for _ in range(12):
        rows = 6
        live, slots, specs, prompts, _ = _setup(rng, rows)
        slot = torch.tensor(slots)
        active = torch.ones(rows, dtype=torch.bool)
        outputs: list[list[int]] = [[] for _ in range(rows)]
        steps = rng.randint(0, 30)

        def step(core, logits, tokens=None):
            core.propose(logits, slot, active)
            if tokens is None:
                tokens = [int(logits[r].argmax()) if rng.random() > 0.05 else _token(rng, specs[r].markers, None)
                          for r in range(rows)]
            return tokens, core.commit(slot, torch.tensor(tokens))

        for i in range(steps):
            live.reserve_log(i + 1)
            logits = torch.randn(rows, VOCAB, generator=gen) * 3
            logits[:, [0, 1, 2, 3, 8, 9]] += torch.rand(rows, 6, generator=gen) * 4
            tokens, _ = step(live, logits)
            for r in range(rows):
                outputs[r].append(tokens[r])
        markers = [spec.markers for spec in specs]

        def fresh():
            core = BatchBudget(rows + 2, log_injections=True, fused=False)
            core.set_slots(slots, specs)
            core.reserve_log(steps + 40)
            return core

        logged = fresh()
        logged.resume(slots, prompts, outputs, [live.injected_positions(s) for s in slots])
        assert _continuation(logged, slot, markers) == _continuation(live, slot, markers)
        inferred, stepwise = fresh(), fresh()
        inferred.resume(slots, prompts, outputs)
        stepwise.start(slots, *_right_aligned(prompts))
        for i in range(steps):
            stepwise.commit(slot, torch.tensor([outputs[r][i] for r in range(rows)]))
        assert _continuation(inferred, slot, markers) == _continuation(stepwise, slot, markers)
        for i in range(15):  # the resumed core goes on exactly as the live one
            live.reserve_log(steps + i + 1)
            logits = torch.randn(rows, VOCAB, generator=gen) * 3
            logits[:, [0, 1, 2, 3, 8, 9]] += torch.rand(rows, 6, generator=gen) * 4
            a, b = logits.clone(), logits.clone()
            tokens, kinds_live = step(live, a)
            _, kinds_resumed = step(logged, b, tokens)
            assert torch.equal(a, b) and torch.equal(kinds_live, kinds_resumed), i
        assert _continuation(logged, slot, markers) == _continuation(live, slot, markers)
