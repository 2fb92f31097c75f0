"""Budget forcing on the real SmolLM2-135M-Instruct through transformers (greedy and sampled)."""

import copy
import itertools
import math

import pytest
import torch
from transformers import GenerationConfig, LogitsProcessorList, set_seed

from hf_s1 import BudgetError, ThinkFormat, ThinkingBudget
from hf_s1.engines.transformers import (
    BudgetForcingLogitsProcessor,
    generate_with_budget,
    s1_reference_generate,
    sampling_warpers,
    stream_with_budget,
)
from hf_s1.formats import marker_tokens
from hf_s1.prompts import build_prompt

QUESTIONS = [
    "What is 17 * 23?",
    "Is 221 prime?",
    "What is 2 + 3?",
    "Name a prime number larger than 10.",
    "What is the square root of 144?",
    "How many legs does a spider have?",
    "What is 9 squared?",
    "Solve for x: 2x = 10.",
]


def thinking_between_markers(tokenizer, result):
    """Recount thinking tokens from the generated ids alone (independent of the tracker): tokens after the
    start marker and before the end marker, minus the cut's newline."""
    m = marker_tokens(tokenizer, "s1")
    ids = result.token_ids
    n = len(m.think_end)
    end = next((i for i in range(len(ids) - n + 1) if tuple(ids[i : i + n]) == m.think_end), None)
    if end is None:
        return None
    thinking = end
    if result.capped and result.kinds[end - 1] == "cut":
        thinking -= 1
    return thinking


def assert_within(result, tokenizer):
    b = result.budget
    assert b.max_thinking_tokens is None or result.thinking_tokens <= b.max_thinking_tokens
    recount = thinking_between_markers(tokenizer, result)
    assert recount == result.thinking_tokens, (recount, result)
    if not result.capped:
        assert result.thinking_tokens >= b.min_thinking_tokens
        assert result.waits >= min(b.num_waits, result.waits + 1)  # waits are only spent on attempts
    if result.capped:
        assert result.thinking_tokens == b.max_thinking_tokens
        assert result.answer.startswith(b.answer_prefix)


MIXED = [
    ThinkingBudget(max_thinking_tokens=0, max_answer_tokens=8),
    ThinkingBudget(max_thinking_tokens=5, max_answer_tokens=8),
    ThinkingBudget(max_thinking_tokens=40, min_thinking_tokens=30, max_answer_tokens=8),
    ThinkingBudget(max_thinking_tokens=24, num_waits=2, max_answer_tokens=8),
    ThinkingBudget(max_thinking_tokens=16, min_thinking_tokens=16, extrapolation=["Hmm", "Alternatively"], max_answer_tokens=8),
    ThinkingBudget(max_thinking_tokens=12, max_answer_tokens=8),
    ThinkingBudget(min_thinking_tokens=20, max_thinking_tokens=64, num_waits=1, max_answer_tokens=8),
    ThinkingBudget(max_thinking_tokens=1, max_answer_tokens=8),
]


@pytest.fixture(scope="module")
def greedy_mixed(model, tokenizer):
    return generate_with_budget(model, tokenizer, QUESTIONS, MIXED, batch_size=8)


def test_batch_of_8_mixed_budgets_greedy(greedy_mixed, tokenizer):
    for result, budget in zip(greedy_mixed, MIXED):
        assert result.budget == budget
        assert_within(result, tokenizer)
    r0 = greedy_mixed[0]  # max 0: the answer comes at once
    assert r0.thinking_tokens == 0 and r0.capped and r0.text.startswith("\n<|im_start|>answer\nFinal Answer:")
    # Suppressed ends were replaced by the row's own extrapolation strings.
    assert sum(r.waits for r in greedy_mixed) >= 2
    for r in greedy_mixed:
        injected = [k == "extrapolation" for k in r.kinds].count(True)
        assert (injected > 0) == (r.waits > 0)
        if r.waits:
            assert any(s in r.thinking for s in r.budget.extrapolation)


def test_processor_only_path_equals_generate_with_budget(greedy_mixed, model, tokenizer):
    texts = [build_prompt(tokenizer, q, marker_tokens and __import__("hf_s1").S1_FORMAT) for q in QUESTIONS]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    processor = BudgetForcingLogitsProcessor(tokenizer, MIXED)
    limit = max(len(r.token_ids) for r in greedy_mixed) + 1
    out = model.generate(**enc, logits_processor=LogitsProcessorList([processor]), max_new_tokens=limit,
                         do_sample=False, eos_token_id=list(processor.markers.stop_ids))
    new = out[:, enc["input_ids"].shape[1]:].tolist()
    stats = processor.stats(new)
    for ids, st, ref in zip(new, stats, greedy_mixed):
        assert ids[: len(ref.token_ids)] == ref.token_ids
        assert (st.thinking_tokens, st.answer_tokens, st.waits, st.capped) == (
            ref.thinking_tokens, ref.answer_tokens, ref.waits, ref.capped)


@pytest.mark.parametrize("seed", [0, 1])
def test_sampled_batch_respects_bounds(model, tokenizer, seed):
    set_seed(seed)
    results = generate_with_budget(model, tokenizer, QUESTIONS, MIXED, do_sample=True, temperature=0.9, top_p=0.95)
    for r in results:
        assert_within(r, tokenizer)


def test_control_is_100_percent_over_a_grid(model, tokenizer):
    grid = [
        ThinkingBudget(max_thinking_tokens=mx, min_thinking_tokens=mn, num_waits=w, max_answer_tokens=4)
        for mx, mn, w in itertools.product([0, 6, 20], [0, 6], [0, 2])
        if mn <= mx
    ]  # 10 budgets
    runs = []
    for i, budget in enumerate(grid):
        sample = i % 2 == 1
        set_seed(i)
        runs += generate_with_budget(model, tokenizer, QUESTIONS[:6], budget, do_sample=sample, temperature=1.0)
    assert len(runs) >= 50
    inside = [r.budget.min_thinking_tokens <= r.thinking_tokens <= r.budget.max_thinking_tokens for r in runs]
    control = sum(inside) / len(runs)
    assert control == 1.0
    for r in runs:
        assert_within(r, tokenizer)


@pytest.mark.parametrize(
    "budget",
    [
        ThinkingBudget(max_thinking_tokens=10, max_answer_tokens=6),
        ThinkingBudget(max_thinking_tokens=48, num_waits=3, max_answer_tokens=6),
        ThinkingBudget(max_thinking_tokens=40, min_thinking_tokens=25, max_answer_tokens=6),
    ],
)
def test_single_pass_equals_s1_multi_call_loop_greedy(model, tokenizer, budget):
    questions = QUESTIONS[:3]
    single = generate_with_budget(model, tokenizer, questions, budget)
    loop = s1_reference_generate(model, tokenizer, questions, budget)
    for a, b in zip(single, loop):
        assert a.token_ids == b.token_ids
        assert (a.thinking_tokens, a.waits, a.capped, a.answer_tokens) == (b.thinking_tokens, b.waits, b.capped, b.answer_tokens)


def test_r1_format_on_a_chatml_model(model, tokenizer):
    # On SmolLM2 "</think>" is three plain tokens; min = max makes the run end at the cut.
    budget = ThinkingBudget(max_thinking_tokens=12, min_thinking_tokens=12, max_answer_tokens=6)
    (r,) = generate_with_budget(model, tokenizer, ["What is 2 + 3?"], budget, think_format="r1")
    assert r.text.count("</think>") == 1 and "</think>\n\nFinal Answer:" in r.text
    assert r.thinking_tokens == 12 and r.capped
    # A natural end is the model writing the whole marker: its pieces are plain text, so "</" alone is not one.
    (r,) = generate_with_budget(model, tokenizer, ["What is 2 + 3?"], ThinkingBudget(max_thinking_tokens=64,
                                max_answer_tokens=6), think_format="r1")
    assert r.text.count("</think>") == 1 and (r.capped or r.thinking_tokens < 64)


def test_streaming_marks_waits_and_the_cut(model, tokenizer):
    budget = ThinkingBudget(max_thinking_tokens=30, num_waits=2, max_answer_tokens=6)
    stream = stream_with_budget(model, tokenizer, "What is 17 * 23?", budget)
    chunks = list(stream)
    result = stream.result
    assert "".join(chunks) == result.text
    kinds = {c.kind for c in chunks}
    assert "thinking" in kinds and "answer" in kinds or "cut" in kinds
    waits = [c for c in chunks if c.kind == "extrapolation"]
    assert "".join(waits).count("Wait") == result.waits >= 1
    if result.capped:
        assert "<|im_start|>answer" in "".join(c for c in chunks if c.kind == "cut")
    # It behaves as the non-streamed call does.
    (plain,) = generate_with_budget(model, tokenizer, ["What is 17 * 23?"], budget)
    assert plain.token_ids == result.token_ids


def test_injection_rate_matches_the_samplers_end_probability(model, tokenizer):
    """Sampling semantics: an end is replaced by Wait with exactly the probability the sampler (after its
    temperature / top-p) would pick an end token. Checked on real model logits over 4000 draws."""
    fmt = __import__("hf_s1").S1_FORMAT
    m = marker_tokens(tokenizer, fmt)
    text = build_prompt(tokenizer, "What is 2 + 3?", fmt) + "\n2 + 3 = 5."
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(ids).logits[0, -1]
    end_ids = sorted({*m.stop_ids, m.think_end[0]})
    config = GenerationConfig(do_sample=True, temperature=1.3, top_p=0.98, top_k=0)
    probs = torch.softmax(sampling_warpers(config)(ids, logits[None].clone())[0], -1)
    p_end = probs[end_ids].sum().item()
    assert 0.05 < p_end < 0.95, p_end  # a context where the outcome is genuinely random
    n = 4000
    processor = BudgetForcingLogitsProcessor(tokenizer, ThinkingBudget(num_waits=1), generation_config=config)
    torch.manual_seed(0)
    scores = processor(ids.repeat(n, 1), logits.repeat(n, 1).clone())
    wait = m.encode("Wait")[0]
    # A forced id is lifted far above its row (no other logit is touched, so none masked earlier is raised).
    injected = (scores.argmax(-1) == wait) & (scores[:, wait] > logits.max() + 1000)
    rate = injected.float().mean().item()
    assert abs(rate - p_end) < 4 * math.sqrt(p_end * (1 - p_end) / n), (rate, p_end)
    # Rows that did not attempt have every end token banned, keep the sampler's support and nothing else changes.
    kept = scores[~injected]
    assert torch.isinf(kept[:, end_ids]).all()
    support = probs > 0
    inside = [i for i in support.nonzero().flatten().tolist() if i not in end_ids]
    assert torch.equal(kept[0, inside], logits[inside])
    assert torch.isinf(kept[0, ~support]).all()


# ---- bad input ---------------------------------------------------------------------------------------


def test_prompt_plus_budget_beyond_context(model, tokenizer):
    with pytest.raises(BudgetError, match="exceeds the model's context"):
        generate_with_budget(model, tokenizer, "hi", ThinkingBudget(max_thinking_tokens=9000))


def test_empty_prompts(model, tokenizer):
    with pytest.raises(BudgetError, match="no prompts"):
        generate_with_budget(model, tokenizer, [], ThinkingBudget(max_thinking_tokens=4))
    with pytest.raises(BudgetError, match="empty"):
        generate_with_budget(model, tokenizer, ["ok", "  "], ThinkingBudget(max_thinking_tokens=4))


def test_budget_list_length_must_match(model, tokenizer):
    with pytest.raises(BudgetError, match="one ThinkingBudget per prompt"):
        generate_with_budget(model, tokenizer, ["a?", "b?"], [ThinkingBudget(max_thinking_tokens=4)] * 3)
    enc = tokenizer(["a?", "b?", "c?"], return_tensors="pt", padding=True)
    processor = BudgetForcingLogitsProcessor(tokenizer, [ThinkingBudget(max_thinking_tokens=4)] * 2)
    with pytest.raises(BudgetError, match="one budget per prompt"):
        model.generate(**enc, logits_processor=LogitsProcessorList([processor]), max_new_tokens=2)


def test_tokenizer_without_chat_template(model, tokenizer):
    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    with pytest.raises(BudgetError, match="chat_template=False"):
        generate_with_budget(model, plain, "What is 2+3?", ThinkingBudget(max_thinking_tokens=4))
    (r,) = generate_with_budget(model, plain, "Q: What is 2+3?\nA:", ThinkingBudget(max_thinking_tokens=4,
                                min_thinking_tokens=4, max_answer_tokens=4), chat_template=False)
    assert r.thinking_tokens == 4 and r.capped


def test_markers_the_tokenizer_cannot_represent():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({"[UNK]": 0, "</s>": 1, "think": 2, "a": 3}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", eos_token="</s>")
    with pytest.raises(BudgetError, match="cannot be represented by this tokenizer"):
        BudgetForcingLogitsProcessor(tok, ThinkingBudget(max_thinking_tokens=4), think_format="r1")


def test_right_padding_and_beam_search_are_refused(model, tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.padding_side = "right"
    enc = tok(["What is two plus three, in words?", "Hi"], return_tensors="pt", padding=True)
    processor = BudgetForcingLogitsProcessor(tokenizer, ThinkingBudget(max_thinking_tokens=4))
    with pytest.raises(BudgetError, match="padding_side = 'left'"):
        model.generate(**enc, logits_processor=LogitsProcessorList([processor]), max_new_tokens=2)
    with pytest.raises(BudgetError, match="beam search"):
        generate_with_budget(model, tokenizer, "hi", ThinkingBudget(max_thinking_tokens=4), num_beams=2)


def test_length_limit_inside_the_forced_cut_is_reported(model, tokenizer):
    # The token limit ends the row in the middle of the forced cut: nothing is lost, it is reported.
    (r,) = generate_with_budget(model, tokenizer, "What is 2+3?", ThinkingBudget(max_thinking_tokens=4), max_new_tokens=6)
    assert r.finish_reason == "length" and r.capped and r.thinking_tokens == 4
    assert len(r.token_ids) == 6


def test_custom_format_and_bad_sampling_settings(model, tokenizer):
    fmt = ThinkFormat("mine", "[THINK]", "[/THINK]", after_end="\n")
    (r,) = generate_with_budget(model, tokenizer, "Hi?", ThinkingBudget(max_thinking_tokens=3, min_thinking_tokens=3,
                                max_answer_tokens=2), think_format=fmt)
    assert "[/THINK]\nFinal Answer:" in r.text and r.thinking_tokens == 3
    with pytest.raises(BudgetError, match="temperature"):
        generate_with_budget(model, tokenizer, "Hi?", ThinkingBudget(max_thinking_tokens=3), do_sample=True, temperature=0)


def test_direct_processor_keeps_the_samplers_truncation_after_a_ban(tokenizer):
    # p(end) = .5, p(A) = .3, p(B) = .2; top_k = 2 keeps {end, A}: the sampler picks the end with .5 / .8 = .625,
    # and "sample, then replace an end" never yields B.
    m = marker_tokens(tokenizer, "s1")
    eos, a, b = m.stop_ids[0], 100, 200
    logits = torch.full((tokenizer.vocab_size,), -60.0)  # every other token, "Wait" included, is possible but rare
    logits[[eos, a, b]] = torch.log(torch.tensor([0.5, 0.3, 0.2]))
    n = 2000
    processor = BudgetForcingLogitsProcessor(tokenizer, ThinkingBudget(num_waits=1),
                                             generation_config=GenerationConfig(do_sample=True, top_k=2))
    ids = torch.tensor([[1, 2, *m.think_start]]).repeat(n, 1)
    torch.manual_seed(1)
    scores = processor(ids, logits.repeat(n, 1))
    wait = m.encode("Wait")[0]
    injected = scores.argmax(-1) == wait
    assert abs(injected.float().mean().item() - 0.625) < 4 * math.sqrt(0.625 * 0.375 / n)
    kept = scores[~injected]
    assert torch.isfinite(kept[:, a]).all() and torch.isinf(kept[:, b]).all() and torch.isinf(kept[:, eos]).all()


def test_plain_prompt_keeps_a_text_marker_whole(model, tokenizer):
    # "?<think>" would tokenize as "?<" + "think" + ">", hiding the marker; the prompt must open thinking once.
    (r,) = generate_with_budget(model, tokenizer, "Hi?", ThinkingBudget(max_thinking_tokens=4, min_thinking_tokens=4,
                                max_answer_tokens=2), think_format="r1", chat_template=False)
    assert "<think>" not in r.text and r.kinds[0] != "marker"
    assert r.thinking_tokens == 4 and r.capped


def test_unsupported_requests_are_refused_clearly(model, tokenizer):
    with pytest.raises(BudgetError, match="num_return_sequences"):
        generate_with_budget(model, tokenizer, "hi", ThinkingBudget(max_thinking_tokens=2), num_return_sequences=2,
                             do_sample=True)
    with pytest.raises(BudgetError, match="list of messages"):
        generate_with_budget(model, tokenizer, {"role": "user", "content": "hi"}, ThinkingBudget(max_thinking_tokens=2))
    with pytest.raises(BudgetError, match="typical_p"):
        BudgetForcingLogitsProcessor(tokenizer, ThinkingBudget(), generation_config=GenerationConfig(do_sample=True,
                                                                                                     typical_p=0.5))


def test_a_budget_streamer_can_be_reused(model, tokenizer):
    from hf_s1.engines.transformers import BudgetStreamer

    budget = ThinkingBudget(max_thinking_tokens=4, max_answer_tokens=2)
    streamer = BudgetStreamer(tokenizer, timeout=120)
    texts = []
    for _ in range(2):
        (r,) = generate_with_budget(model, tokenizer, "What is 2+3?", budget, streamer=streamer)
        texts.append(("".join(streamer), r.text))
    assert texts[0] == texts[1] and texts[0][0] == texts[0][1]
