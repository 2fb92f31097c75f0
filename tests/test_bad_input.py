"""Hostile and careless input: every path gives a clear error (a `BudgetError` naming the fix) or a documented
result. The cases are the classes listed in docs/bad_input.md, with neighbours of each."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys

import pytest

from hf_s1 import BudgetError, ThinkingBudget
from hf_s1.budget import BudgetTracker
from hf_s1.formats import ThinkFormat, get_format, marker_tokens
from hf_s1.prompts import build_prompt, check_prompt, check_sampling, prepare_requests

# ---- extrapolation strings that would end thinking ---------------------------------------------------------


@pytest.mark.parametrize("text", ["Wait <|im_start|>answer", "<|im_start|>answer", "Hmm<|im_start|>answer\nok",
                                  "Wait<|im_end|>", "Wait<|endoftext|> more"])
def test_extrapolation_that_would_end_thinking_is_refused(tokenizer, text):
    markers = marker_tokens(tokenizer, "s1")
    with pytest.raises(BudgetError, match="extrapolation"):
        BudgetTracker(ThinkingBudget(min_thinking_tokens=8, extrapolation=["Wait", text]), markers)


@pytest.mark.parametrize("field", ["extrapolation", "answer_prefix"])
@pytest.mark.parametrize("text", ["Wait<|im_start|>", "Wait <|im_start|>think", "ok<|im_start|>user\nhi"])
def test_budget_strings_that_forge_turns_are_refused(model, tokenizer, field, text):
    # A chat-structure token inside an injected string would write a fake turn (or marker) into the output.
    from hf_s1 import generate_with_budget

    budget = ThinkingBudget(min_thinking_tokens=4, max_thinking_tokens=8, **{field: text})
    with pytest.raises(BudgetError, match=f"{field} .*chat-structure token '<\\|im_start\\|>'.*remove it"):
        generate_with_budget(model, tokenizer, "What is 2+3?", budget)


def test_extrapolation_with_a_plain_text_start_marker_is_thinking(model, tokenizer):
    # Documented: a start marker that is plain text (R1's <think> on a tokenizer without such a token) is thinking
    # text inside an extrapolation: thinking has begun already, so it neither restarts nor nests.
    from hf_s1 import generate_with_budget

    budget = ThinkingBudget(min_thinking_tokens=20, max_thinking_tokens=28, extrapolation="Wait <think>",
                            max_answer_tokens=2)
    r = generate_with_budget(model, tokenizer, "What is 2+3?", budget, think_format="r1")[0]
    assert 20 <= r.thinking_tokens <= 28 and r.waits >= 1
    assert r.text.count("</think>") == 1 and "Wait <think>" in r.thinking


@pytest.mark.parametrize("bad", [{"Wait"}, {"Wait": 1}, 7, None, ["Wait", 3], [], ""])
def test_extrapolation_of_the_wrong_type_is_refused(bad):
    with pytest.raises(BudgetError, match="extrapolation"):
        ThinkingBudget(extrapolation=bad)


# ---- think formats whose markers overlap ------------------------------------------------------------------


@pytest.mark.parametrize("start,end", [("<think>", "<think"), ("<think>", "<think>"), ("<t>", "</t><t>"),
                                       ("[A][B]", "[B]")])
def test_overlapping_markers_are_refused(start, end):
    with pytest.raises(BudgetError, match="think"):
        ThinkFormat("mine", start, end)


def test_markers_overlapping_as_tokens_are_refused():
    from hf_s1.budget import MarkerTokens

    with pytest.raises(BudgetError, match="contains the other"):
        MarkerTokens(think_start=(5, 6), think_end=(5,), before_end=(), after_end=(), stop_ids=(0,),
                     ends_with_before_end=frozenset(), encode=lambda s: [9])


def test_format_fields_must_be_strings():
    with pytest.raises(BudgetError, match="string"):
        ThinkFormat("mine", "<think>", None)  # type: ignore[arg-type]


# ---- one rule for a prompt that already opens thinking ------------------------------------------------------


def test_plain_prompt_ending_with_the_marker_gets_no_second_one(model, tokenizer):
    from hf_s1 import S1_FORMAT, generate_with_budget

    text = "Question: what is 2+3?\n<|im_start|>think"
    assert build_prompt(tokenizer, text, S1_FORMAT, chat_template=False) == text
    assert build_prompt(tokenizer, "Q?", S1_FORMAT, chat_template=False) == "Q?<|im_start|>think"
    closed = "Q?<|im_start|>think\nx<|im_start|>answer\ny\nQ2?"
    assert build_prompt(tokenizer, closed, S1_FORMAT, chat_template=False) == closed + "<|im_start|>think"
    r = generate_with_budget(model, tokenizer, text, ThinkingBudget(max_thinking_tokens=4, max_answer_tokens=2),
                             chat_template=False)[0]
    assert not r.text.startswith("<|im_start|>think") and r.thinking_tokens == 4


# ---- sampler settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,match", [
    (dict(top_p=5.0), "top_p"), (dict(top_p=0.0), "top_p"), (dict(top_p=math.nan), "top_p"),
    (dict(top_k=-1), "top_k"), (dict(top_k=2.5), "top_k"), (dict(min_p=1.5), "min_p"),
    (dict(temperature=math.nan), "temperature"), (dict(temperature=0.0), "temperature"),
    (dict(typical_p=0.5), "typical_p"), (dict(epsilon_cutoff=3e-4), "epsilon_cutoff"), (dict(eta_cutoff=1e-3), "eta_cutoff"),
])
def test_sampler_settings_are_checked(model, tokenizer, kwargs, match):
    from hf_s1 import generate_with_budget

    settings = dict(temperature=0.7, top_p=0.9, top_k=0, min_p=None)
    extra = {k: kwargs.pop(k) for k in list(kwargs) if k not in settings}
    settings.update(kwargs)
    with pytest.raises(BudgetError, match=match):
        check_sampling(True, settings["temperature"], settings["top_p"], settings["top_k"], settings["min_p"], extra)
    with pytest.raises(BudgetError, match=match):  # the engine refuses before generating anything
        generate_with_budget(model, tokenizer, "Hi?", ThinkingBudget(max_thinking_tokens=2), do_sample=True,
                             **settings, **extra)


# ---- malformed prompts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("prompts", [123, None, 4.5, [], "", "   ", [123], [{"role": "user"}],
                                     [{"content": "hi"}], [{"role": "user", "content": None}],
                                     [{"role": "user", "content": ""}], [{"role": None, "content": "x"}],
                                     {"role": "user", "content": "hi"}, [[{"role": "user", "content": "  "}]]])
def test_malformed_prompts_are_refused(tokenizer, prompts):
    with pytest.raises(BudgetError):
        prepare_requests(tokenizer, prompts, ThinkingBudget())


def test_check_prompt_accepts_chats():
    assert check_prompt([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])[1]["role"] == "user"


# ---- the command line: one line that names the fix, no traceback ---------------------------------------------


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "hf_s1.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})


@pytest.mark.parametrize("model_arg,match", [
    ("/no/such/folder", "no model folder"), ("EMPTY", "no config.json"),
    ("someone/not-a-cached-model", "not in the local cache"), ("./relative/missing", "no model folder"),
])
@pytest.mark.parametrize("engine", ["transformers", "vllm"])
def test_cli_bad_model_gives_one_line(tmp_path, model_arg, match, engine):
    if model_arg == "EMPTY":
        model_arg = str(tmp_path)
    proc = _cli("generate", "Hi?", "--model", model_arg, "--engine", engine, "--max-thinking", "2")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and match in proc.stderr, proc.stderr[-1500:]


def test_cli_eval_and_curate_bad_input_give_one_line(tmp_path):
    proc = _cli("eval", "--model", str(tmp_path), "--benchmark", "math500", "--out", str(tmp_path / "o"),
                "--max-thinking", "4", "--limit", "1")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"question": "x", "solution"\nnot json\n')
    proc = _cli("curate", "--pool", str(pool), "--out", str(tmp_path / "c"), "--size", "1")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
    assert proc.stderr.strip().count("\n") == 0  # one line


def test_cli_top_p_out_of_range_is_refused():
    proc = _cli("generate", "Hi?", "--top-p", "5", "--temperature", "0.7", "--max-thinking", "2")
    assert proc.returncode == 2 and "top_p" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_debug_shows_the_traceback():
    proc = _cli("--debug", "generate", "Hi?", "--model", "/no/such/folder")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


# ---- vLLM request parameters -------------------------------------------------------------------------------


def test_vllm_null_budget_and_format_alone():
    from vllm import SamplingParams

    from hf_s1.engines.vllm import budget_from_params

    assert budget_from_params(SamplingParams(extra_args={"thinking_budget": None})) is None
    assert budget_from_params(SamplingParams(extra_args={"thinking_budget": "null"})) is None
    with pytest.raises(BudgetError, match="think_format"):
        budget_from_params(SamplingParams(extra_args={"think_format": "r1"}))
    budget, fmt = budget_from_params(SamplingParams(extra_args={"thinking_budget": "{}", "think_format": "r1"}))
    assert budget == ThinkingBudget() and fmt.name == "r1"
    # Checks a server's front end can run without a tokenizer.
    for text, fmt_name in (("Wait</think>", "r1"), ("Hmm <|im_start|>answer", "s1"), ("Wait<|im_end|>", "s1")):
        with pytest.raises(BudgetError, match="would end the thinking"):
            budget_from_params(SamplingParams(extra_args={"thinking_budget": {"extrapolation": text},
                                                          "think_format": fmt_name}))


# ---- the Space's controls ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "8", None, True, 2.5])
def test_space_controls_refuse_non_numbers(load_space_app, value):
    load_space_app()
    from space_settings import SpaceInputError, SpaceSettings, budget_from_controls

    with pytest.raises(SpaceInputError):
        budget_from_controls(SpaceSettings(), value, 16, 1, "Wait")


S1 = get_format("s1")

# ---- counts beyond any table (second round) ----------------------------------------------------------------


@pytest.mark.parametrize("field", ["max_thinking_tokens", "min_thinking_tokens", "num_waits", "max_answer_tokens"])
@pytest.mark.parametrize("value", [2**31, 2**63, 2**64 - 1])
def test_counts_beyond_any_context_are_refused_naming_the_field(field, value):
    with pytest.raises(BudgetError, match=f"{field}={value} is more than any context holds"):
        ThinkingBudget(**{field: value})
    assert ThinkingBudget(**{field: 2**31 - 1, **({"max_thinking_tokens": None} if field != "max_thinking_tokens"
                                                   else {})}) is not None  # the largest count is accepted


def test_huge_counts_are_refused_on_every_entry_point(model, tokenizer):
    from hf_s1 import BudgetForcingLogitsProcessor, generate_with_budget
    from hf_s1.harness.gen_kwargs import from_gen_kwargs
    from hf_s1.train.grpo import BudgetRollout

    refused = {
        "generate_with_budget": lambda: generate_with_budget(model, tokenizer, "Hi", {"num_waits": 2**63}),
        "the raw processor": lambda: BudgetForcingLogitsProcessor(tokenizer, {"max_thinking_tokens": 2**63}, "s1"),
        "lm-eval gen_kwargs": lambda: from_gen_kwargs({"max_thinking_tokens": 2**63}, default_format=S1),
        "s1 gen_kwargs": lambda: from_gen_kwargs({"thinking_n_ignore": 2**64 - 1, "thinking_n_ignore_str": "Wait"},
                                                 default_format=S1),
        "GRPO rollout": lambda: BudgetRollout({"max_answer_tokens": 2**63}),
    }
    for where, call in refused.items():
        with pytest.raises(BudgetError, match="more than any context holds") as err:
            call()
        assert "max_thinking_tokens" in str(err.value) or "num_waits" in str(err.value) or \
            "max_answer_tokens" in str(err.value), where
    # the same model answers the next plain request
    assert generate_with_budget(model, tokenizer, "Hi", ThinkingBudget(max_thinking_tokens=2, max_answer_tokens=2))


def test_cli_huge_count_gives_one_line():
    proc = _cli("generate", "--max_thinking_tokens", str(2**63), "Hi")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "max_thinking_tokens=9223372036854775808 is more than any context" in proc.stderr


# ---- text the tokenizer cannot take ------------------------------------------------------------------------


@pytest.mark.parametrize("prompts,where", [
    (["What is 2+3?", "bad \ud800 text"], "prompt 1: the prompt holds '\\ud800' at character 4"),
    ([[{"role": "user", "content": "x\udfff"}]], "chat message 0 (user) holds '\\udfff' at character 1"),
])
def test_lone_surrogates_are_refused_naming_the_prompt(model, tokenizer, prompts, where):
    from hf_s1 import generate_with_budget

    for cb in (False, True):
        with pytest.raises(BudgetError, match=re.escape(where)):
            generate_with_budget(model, tokenizer, prompts, ThinkingBudget(max_thinking_tokens=2),
                                 continuous_batching=cb)


# ---- careless flag values ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, "yes", "False", None.__class__])
def test_continuous_batching_flag_must_be_a_bool(model, tokenizer, value):
    from hf_s1 import generate_with_budget
    from hf_s1.train.grpo import BudgetRollout

    with pytest.raises(BudgetError, match="continuous_batching must be True, False"):
        generate_with_budget(model, tokenizer, "Hi", ThinkingBudget(max_thinking_tokens=2), continuous_batching=value)
    with pytest.raises(BudgetError, match="continuous_batching must be True or False"):
        BudgetRollout({"max_thinking_tokens": 2}, continuous_batching=value)


# ---- lm-eval gen_kwargs: types and ranges ------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,match", [
    ({"temperature": "abc"}, "temperature='abc': give a number"),
    ({"top_p": "x"}, "top_p='x': give a number"),
    ({"until": 5}, "until=5: give a string or a list of strings"),
    ({"until": ["a", 3]}, "until=.*give a string or a list of strings"),
    ({"temperature": math.nan}, "temperature=nan: give a finite number"),
    ({"temperature": -1}, "temperature must be >= 0, got -1.0; 0 \\(or do_sample=False\\) is greedy"),
    ({"max_gen_toks": 0}, "max_gen_toks=0: give at least 1 token"),
    ({"max_gen_toks": -5}, "max_gen_toks=-5: give at least 1 token"),
    ({"max_gen_toks": math.inf}, "max_gen_toks=inf: give a whole number"),
    ({"top_k": -1}, "top_k must be an int >= 0 \\(0: off, as vLLM's -1\\), got -1"),
    ({"top_p": 0}, "top_p must be in \\(0, 1\\], got 0.0"),
    ({"min_p": 2}, "min_p must be in \\[0, 1\\], got 2.0"),
    ({"do_sample": "yes"}, "do_sample='yes': give True or False"),
    ({"seed": "x"}, "seed='x': give a whole number"),
])
def test_gen_kwargs_types_and_ranges(kwargs, match):
    from hf_s1.harness.gen_kwargs import from_gen_kwargs

    with pytest.raises(BudgetError, match=f"gen_kwargs {match}"):
        from_gen_kwargs(kwargs, default_format=S1)


def test_gen_kwargs_in_range_are_read_exactly():
    from hf_s1.harness.gen_kwargs import from_gen_kwargs

    r = from_gen_kwargs({"temperature": "0.7", "top_p": 0.9, "top_k": 20, "min_p": 0.05, "do_sample": "True",
                         "until": "</s>", "max_gen_toks": "64"}, default_format=S1)
    assert (r.temperature, r.top_p, r.top_k, r.min_p, r.do_sample, r.until, r.max_gen_toks) == (
        0.7, 0.9, 20, 0.05, True, ("</s>",), 64)
    greedy = from_gen_kwargs({"temperature": 0}, default_format=S1)
    assert greedy.do_sample is False


@pytest.mark.parametrize("value", ["abc", 0, -2, 1.5, True])
def test_lm_eval_batch_size_is_checked(value):
    from hf_s1.errors import EvalError
    from hf_s1.harness.lm_eval import _batch_size

    with pytest.raises(EvalError, match="--batch_size .*positive whole number or auto"):
        _batch_size(value)
    assert _batch_size("auto:4") == 8 and _batch_size("16") == 16


# ---- GRPO: the trainer's settings read exactly -------------------------------------------------------------


def test_grpo_sampling_settings_are_read_exactly():
    from types import SimpleNamespace

    from hf_s1.train.grpo import sampling_settings

    assert sampling_settings(SimpleNamespace(temperature=0.0, top_p=1.0, top_k=0)) == {"do_sample": False}
    assert sampling_settings(SimpleNamespace(temperature=0.7, top_p=None, top_k=None, min_p=None)) == {
        "do_sample": True, "temperature": 0.7, "top_p": 1.0, "top_k": 0, "min_p": None}
    for args, match in ((SimpleNamespace(temperature=-1.0), "temperature"), (SimpleNamespace(top_p=2.0), "top_p"),
                        (SimpleNamespace(temperature=math.nan), "temperature"), (SimpleNamespace(top_k=-1), "top_k")):
        with pytest.raises(BudgetError, match=f"GRPO arguments .*{match}"):
            sampling_settings(args)


def test_grpo_greedy_rollouts_are_greedy(model, tokenizer):
    from types import SimpleNamespace

    from hf_s1 import generate_with_budget
    from hf_s1.train.grpo import BudgetRollout

    budget = ThinkingBudget(max_thinking_tokens=6, max_answer_tokens=4)
    out, _ = BudgetRollout(budget).generate(model, tokenizer, ["What is 2+3?"] * 2,
                                             SimpleNamespace(temperature=0.0, max_completion_length=None))
    reference = generate_with_budget(model, tokenizer, "What is 2+3?", budget)[0]
    assert [o.text for o in out] == [reference.text] * 2


# ---- think markers inside what the user wrote --------------------------------------------------------------


@pytest.mark.parametrize("prompt", [
    "Explain what <|im_start|>think means in a chat template.",
    [{"role": "user", "content": "What is 2+3?"},
     {"role": "assistant", "content": "<|im_start|>think\nLet me see, 2 plus"},  # an earlier, unfinished block
     {"role": "user", "content": "Answer again: what is 2+3?"}],
])
def test_markers_in_earlier_text_never_decide_that_thinking_is_open(model, tokenizer, prompt):
    from hf_s1 import generate_with_budget

    budget = ThinkingBudget(max_thinking_tokens=6, max_answer_tokens=4)
    # hf-s1 writes the start marker for the new turn (the generation prompt's tail has none) ...
    text = prepare_requests(tokenizer, [prompt], budget).texts[0]
    assert text.endswith("<|im_start|>assistant\n<|im_start|>think"), text[-80:]
    for cb in (False, True):
        r = generate_with_budget(model, tokenizer, prompt, budget, continuous_batching=cb)[0]
        # ... so the model's new thinking is what the budget counts and cuts, once.
        assert r.thinking_tokens == 6 and r.capped, r
        assert r.text.count("<|im_start|>answer") == 1 and r.thinking and r.thinking in r.text, r.text


@pytest.mark.parametrize("kwargs,token", [({"extrapolation": "Wait<|im_start|>user"}, "<|im_start|>"),
                                          ({"answer_prefix": "<｜Assistant｜>"}, "<｜Assistant｜>"),
                                          ({"extrapolation": ["Wait", "a<|channel|>final"]}, "<|channel|>")])
def test_chat_structure_text_is_refused_without_a_tokenizer(kwargs, token):
    # What a server's front end (no tokenizer) can judge; plain text with bars and brackets is not refused.
    with pytest.raises(BudgetError, match=re.escape(f"holds the chat-structure token {token!r}")):
        ThinkingBudget(**kwargs).check_chat_structure_text()
    ThinkingBudget(extrapolation="Wait, | x |> and <think>", answer_prefix="Answer:").check_chat_structure_text()
