"""Think formats read from the model: the resolver on every family's template shape, its precedence, its refusal to
guess, and budget-forced generation on each family judged by that family's own parser (transformers; the vLLM side
is tests/test_formats_vllm.py)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: tests/ is not on sys.path

from families import FAMILIES, NO_THINKING, Family, family_tokenizer, judge, save_family_model  # noqa: E402
from hf_s1 import BudgetError, ThinkingBudget  # noqa: E402
from hf_s1.formats import PRESETS, ThinkFormat, get_format, marker_tokens, resolve_format  # noqa: E402

IDS = [f.name for f in FAMILIES]


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_resolver_reads_every_family_from_its_template(default_model_dir, family: Family):
    tok = family_tokenizer(default_model_dir, family)
    fmt = resolve_format(tok)
    preset = PRESETS[family.preset]
    assert (fmt.think_start.strip(), fmt.think_end) == (preset.think_start.strip(), preset.think_end)
    if family.switch:
        assert fmt.switch == family.switch
    marker_tokens(tok, fmt)  # the tokenizer can write the markers


def test_a_template_without_thinking_is_an_error_not_a_guess(default_model_dir):
    tok = family_tokenizer(default_model_dir, Family("plain", "s1", NO_THINKING, (), "<|im_end|>", None, "-"))
    with pytest.raises(BudgetError) as err:
        resolve_format(tok)
    message = str(err.value)
    assert "response_template" in message and "chat template" in message and "think_format" in message
    with pytest.raises(BudgetError, match="looked at"):
        marker_tokens(tok)
    assert marker_tokens(tok, "s1").think_start  # an explicit format still works


def test_precedence_explicit_then_response_template_then_parser_then_template(default_model_dir):
    qwen = next(f for f in FAMILIES if f.name == "qwen3")
    tok = family_tokenizer(default_model_dir, qwen)
    assert resolve_format(tok).switch == "enable_thinking"  # from the rendered template
    assert get_format("magistral", tok) == PRESETS["magistral"]  # explicit first
    tok2 = family_tokenizer(default_model_dir, qwen)
    assert resolve_format(tok2, reasoning_parser="seed_oss") == PRESETS["seed-oss"]  # the engine's parser: before the template
    tok3 = family_tokenizer(default_model_dir, qwen)
    # A response template that closes gpt-oss's analysis at `<|end|>` alone still cuts with the whole transition.
    tok3.response_template = {"start_anchor": "<|start|>assistant", "fields": {
        "thinking": {"open": "<|channel|>analysis<|message|>", "close_pattern": r"<\|end\|>\s*"},
        "content": {"close_pattern": r"<\|return\|>|$"}}}
    assert resolve_format(tok3, reasoning_parser="seed_oss") == PRESETS["gpt-oss"]  # before the parser
    with pytest.raises(BudgetError, match="unknown think format"):
        get_format("no-such-family", tok)


def test_a_format_is_data_and_round_trips():
    fmt = PRESETS["gpt-oss"]
    assert ThinkFormat(**fmt.to_dict()) == fmt and get_format(fmt.to_dict()) == fmt
    with pytest.raises(BudgetError, match="stop_texts"):
        ThinkFormat("x", "<a>", "</a>", stop_texts="<eos>")
    with pytest.raises(BudgetError, match="fields"):
        get_format({"name": "x", "think_start": "<a>", "think_end": "</a>", "colour": 1})


@pytest.fixture(scope="module")
def family_dirs(tiny_model_dir, default_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {f.name: save_family_model(tiny_model_dir, default_model_dir, f, root / f.name) for f in FAMILIES}


def _assistant_text(tokenizer, request_text: str, prompt: str, output: str, kwargs: dict) -> str:
    """The assistant turn as a parser sees it: what hf-s1 appended to the template's generation prompt (a start
    marker, when the template does not open thinking itself), then the output."""
    generation_prompt = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                      add_generation_prompt=True, **kwargs)
    assert request_text.startswith(generation_prompt)
    return request_text[len(generation_prompt):] + output


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_budget_forcing_on_every_family_splits_where_its_parser_does(family_dirs, family: Family):
    from hf_s1 import load_model
    from hf_s1.engines.transformers import generate_with_budget
    from hf_s1.prompts import prepare_requests

    model, tok = load_model(family_dirs[family.name])
    kwargs = {"thinking": True} if family.switch == "thinking" else {}  # DeepSeek-V3.1 thinks only when asked
    cases = [
        # below the minimum every end is replaced by a Wait; at the cap the cut ends thinking
        (ThinkingBudget(min_thinking_tokens=4, max_thinking_tokens=4, max_answer_tokens=6), True),
        # ending allowed: the end-of-sequence the model picks becomes the end marker, and the answer follows
        (ThinkingBudget(max_thinking_tokens=8, max_answer_tokens=6), False),
    ]
    for budget, capped in cases:
        prompt = "What is 2+3?"
        out = generate_with_budget(model, tok, [prompt], budget, chat_template_kwargs=kwargs)[0]
        assert out.capped is capped and out.finish_reason == "stop"
        assert out.thinking_tokens == (4 if capped else 0) and out.waits == (4 if capped else 0)
        text = prepare_requests(tok, prompt, budget, chat_template_kwargs=kwargs).texts[0]
        fmt = resolve_format(tok)
        shown = {**kwargs, fmt.budget_kwarg: budget.max_thinking_tokens} if fmt.budget_kwarg else kwargs
        reasoning, content = judge(family, tok, _assistant_text(tok, text, prompt, out.text, shown))
        assert (reasoning or "").strip() == out.thinking.strip(), (family.name, out.text)
        assert (content or "").strip() == out.answer.strip(), (family.name, out.text)
        if capped:
            assert "Final Answer:" in content and "Wait" in reasoning


@pytest.mark.parametrize("family", [f for f in FAMILIES if f.off], ids=[f.name for f in FAMILIES if f.off])
def test_a_switched_off_prompt_is_never_reopened(family_dirs, family: Family):
    from hf_s1 import load_model
    from hf_s1.engines.transformers import generate_with_budget

    model, tok = load_model(family_dirs[family.name])
    fmt = resolve_format(tok)
    out = generate_with_budget(model, tok, ["What is 2+3?"], ThinkingBudget(max_thinking_tokens=4, max_answer_tokens=5),
                               chat_template_kwargs=family.off)[0]
    assert out.thinking_tokens == 0 and out.waits == 0 and not out.capped and out.thinking == ""
    assert fmt.think_start not in out.text and fmt.think_end not in out.text
    assert set(out.kinds) <= {"answer", "stop"}
    with pytest.raises(BudgetError, match="switched thinking off"):  # a minimum cannot be honoured there
        generate_with_budget(model, tok, ["What is 2+3?"], ThinkingBudget(min_thinking_tokens=2),
                             chat_template_kwargs=family.off)


def test_template_budget_keyword_gets_the_enforced_cap(default_model_dir):
    from hf_s1.prompts import prepare_requests

    seed = next(f for f in FAMILIES if f.name == "seed-oss")
    tok = family_tokenizer(default_model_dir, seed)
    req = prepare_requests(tok, ["Q1", "Q2"], [ThinkingBudget(max_thinking_tokens=77), ThinkingBudget()])
    assert "thinking budget of 77 tokens" in req.texts[0] and "thinking budget" not in req.texts[1]
    mine = prepare_requests(tok, "Q", ThinkingBudget(max_thinking_tokens=77), chat_template_kwargs={"thinking_budget": 5})
    assert "thinking budget of 5 tokens" in mine.texts[0]  # the caller's own value is kept


def test_a_marker_in_the_users_text_does_not_open_thinking(model, tokenizer):
    from hf_s1.engines.transformers import generate_with_budget

    # The user's message holds the start marker; the generation prompt's own last turn does not.
    out = generate_with_budget(model, tokenizer, ["Explain <|im_start|>think please"],
                               ThinkingBudget(max_thinking_tokens=6, max_answer_tokens=4))[0]
    assert out.text.startswith("<|im_start|>think") or out.token_ids[:2] == marker_tokens(tokenizer).think_start[:2] \
        or out.kinds[0] == "thinking"
    assert out.thinking_tokens == 6 and out.capped


def test_template_kwargs_are_checked(model, tokenizer):
    from hf_s1.engines.transformers import generate_with_budget

    for bad in (["enable_thinking"], {"add_generation_prompt": False}, {1: 2}):
        with pytest.raises(BudgetError, match="chat_template_kwargs"):
            generate_with_budget(model, tokenizer, ["Q"], ThinkingBudget(max_thinking_tokens=2),
                                 chat_template_kwargs=bad)


def test_custom_format_fields_reach_the_core(default_model_dir):
    fmt = dataclasses.replace(PRESETS["gpt-oss"], name="mine")
    qwen = next(f for f in FAMILIES if f.name == "gpt-oss")
    tok = family_tokenizer(default_model_dir, qwen)
    m = marker_tokens(tok, fmt)
    end = tok.convert_tokens_to_ids("<|end|>")
    assert end not in m.stop_ids and end in m.turn_ends  # closes turns, never ends the sequence
    assert tok.convert_tokens_to_ids("<|return|>") == m.stop_ids[0] or tok.convert_tokens_to_ids("<|return|>") in m.stop_ids


def test_plain_text_end_marker_is_recognised_without_misfiring(default_model_dir):
    """OLMo 3 writes `</think>` as `</` `think` `>`: `</div>` merely starts like it and is thinking; only the piece
    that completes the marker is an attempt to end, and a marker the model writes itself is not thinking."""
    from hf_s1.budget import BudgetTracker, Intercept, TokenKind

    olmo = next(f for f in FAMILIES if f.name == "olmo3")
    tok = family_tokenizer(default_model_dir, olmo)
    m = marker_tokens(tok)
    assert m.end_is_text and len(m.think_end) == 3
    div = tok.encode("</div>", add_special_tokens=False)
    assert div[0] == m.think_end[0]  # the same first piece

    def run(budget, stream):
        t = BudgetTracker(budget, m)
        t.start(m.think_start)
        actions = []
        for token in stream:
            actions.append(t.next_action())
            t.observe(token)
        return t, actions

    # Below the minimum: `</div>` is written as thinking; no piece of it was watched as an end.
    t, actions = run(ThinkingBudget(min_thinking_tokens=20), div)
    assert t.stats.thinking_tokens == len(div) and not t.stats.thinking_ended
    assert all(div[0] not in a.token_ids and div[1] not in a.token_ids for a in actions if isinstance(a, Intercept))
    # After `</` `think`, the last piece `>` is the attempt, and it is replaced by the extrapolation.
    t, actions = run(ThinkingBudget(min_thinking_tokens=20), list(m.think_end[:2]))
    action = t.next_action()
    assert isinstance(action, Intercept) and m.think_end[2] in action.token_ids
    wait = t.intercept()
    assert wait == tok.encode("Wait", add_special_tokens=False)[0] and t.stats.waits == 1
    # Ending allowed: the model's own marker ends thinking, and its pieces are the marker, not thinking.
    t, _ = run(ThinkingBudget(max_thinking_tokens=50), [*div, *m.think_end])
    assert t.stats.thinking_ended and t.stats.thinking_tokens == len(div)
    assert t.kinds[-3:] == [TokenKind.MARKER] * 3 and not any(t.forced)


@pytest.fixture(scope="module")
def plain_dir(tiny_model_dir, default_model_dir, tmp_path_factory):
    plain = Family("plain", "s1", NO_THINKING, (), "<|im_end|>", None, "-")
    return save_family_model(tiny_model_dir, default_model_dir, plain, tmp_path_factory.mktemp("plain") / "m")


def test_unreadable_markers_are_an_error_on_every_entry_point(plain_dir, capsys):
    """A model whose markers cannot be read is refused everywhere a budget is applied, with the fix named."""
    from hf_s1 import load_model
    from hf_s1.cli import main
    from hf_s1.engines.transformers import BudgetForcingLogitsProcessor, generate_with_budget, prepare_generate
    from hf_s1.harness.lm_eval import HfS1LM
    from hf_s1.train.grpo import BudgetRollout

    model, tok = load_model(plain_dir)
    budget = ThinkingBudget(max_thinking_tokens=4)
    calls = {
        "generate_with_budget": lambda: generate_with_budget(model, tok, ["Q"], budget),
        "continuous batching": lambda: generate_with_budget(model, tok, ["Q"], budget, continuous_batching=True),
        "raw processor": lambda: BudgetForcingLogitsProcessor(tok, budget),
        "custom_generate": lambda: prepare_generate(model, tok, budget),
        "lm-eval backend": lambda: HfS1LM(pretrained=str(plain_dir)),
        "GRPO rollout": lambda: BudgetRollout(budget).generate(model, tok, ["Q"], type("A", (), {})()),
    }
    for where, call in calls.items():
        with pytest.raises(BudgetError, match="think_format"):
            call()
    assert main(["generate", "Q", "--model", str(plain_dir), "--max-thinking", "4"]) != 0
    assert "looked at" in capsys.readouterr().err
    # Named, the same model runs.
    assert main(["generate", "Q", "--model", str(plain_dir), "--max-thinking", "2", "--max-answer", "2",
                 "--format", "s1"]) == 0


def test_family_rules_still_read_the_switch(default_model_dir):
    """A template that never renders earlier thinking falls to the family rules, which keep its switch."""
    from families import _chatml

    template = _chatml("\\n", "{{- m.content }}", "{%- if enable_thinking is defined and not enable_thinking %}"
                       "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}")
    tok = family_tokenizer(default_model_dir, Family("hidden", "r1", template, ("<think>", "</think>"), "<|im_end|>",
                                                     None, "-", special=False))
    fmt = resolve_format(tok)
    assert (fmt.think_start, fmt.think_end, fmt.switch) == ("<think>", "</think>", "enable_thinking")
