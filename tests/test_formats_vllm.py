"""Think formats on vLLM (CPU build): every family's template shape gives, on `vllm.LLM`, the tokens and telemetry of
the transformers engine, split where the family's own parser splits; a request without a format gets the engine's,
read from the model; a model whose markers cannot be read is refused, not guessed."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: tests/ is not on sys.path

from families import FAMILIES, NO_THINKING, Family, judge, save_family_model  # noqa: E402
from hf_s1 import BudgetError, ThinkingBudget  # noqa: E402
from hf_s1.formats import resolve_format  # noqa: E402

BUDGETS = [ThinkingBudget(min_thinking_tokens=4, max_thinking_tokens=4, max_answer_tokens=6),
           ThinkingBudget(max_thinking_tokens=8, max_answer_tokens=6)]
FIELDS = ("token_ids", "text", "thinking", "answer", "thinking_tokens", "waits", "capped", "finish_reason", "kinds")


@pytest.fixture(scope="module")
def vllm_tiny_dir(tmp_path_factory):
    """The tiny model with heads of 64 dimensions (vLLM's CPU attention takes no smaller ones)."""
    from hf_s1.train.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny64"), hidden_size=128, num_attention_heads=2,
                           num_key_value_heads=2, head_dim=64)


@pytest.fixture(scope="module")
def family_dirs(vllm_tiny_dir, default_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {f.name: save_family_model(vllm_tiny_dir, default_model_dir, f, root / f.name) for f in FAMILIES}


def _llm(path):
    from hf_s1.engines.vllm import load_llm

    gc.collect()  # the previous family's engine
    return load_llm(path, max_model_len=512, max_num_seqs=4)


def test_every_family_on_vllm_equals_transformers_and_its_parser(family_dirs):
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from hf_s1 import load_model
    from hf_s1.engines import transformers as hf_engine
    from hf_s1.engines import vllm as vllm_engine
    from hf_s1.prompts import prepare_requests

    prompt = "What is 2+3?"
    for family in FAMILIES:
        kwargs = {"thinking": True} if family.switch == "thinking" else {}
        llm = _llm(family_dirs[family.name])
        model, tok = load_model(family_dirs[family.name])
        fmt = resolve_format(tok)
        got = vllm_engine.generate_with_budget(llm, [prompt, prompt], BUDGETS, chat_template_kwargs=kwargs)
        want = hf_engine.generate_with_budget(model, tok, [prompt, prompt], BUDGETS, chat_template_kwargs=kwargs)
        for g, w, budget in zip(got, want, BUDGETS):
            for name in FIELDS:
                assert getattr(g, name) == getattr(w, name), (family.name, name)
            req = prepare_requests(tok, prompt, budget, chat_template_kwargs=kwargs)
            shown = {**kwargs, fmt.budget_kwarg: budget.max_thinking_tokens} if fmt.budget_kwarg else kwargs
            head = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                           add_generation_prompt=True, **shown)
            reasoning, content = judge(family, tok, req.texts[0][len(head):] + g.text)
            assert (reasoning or "").strip() == g.thinking.strip(), (family.name, g.text)
            assert (content or "").strip() == g.answer.strip(), (family.name, g.text)
        assert got[0].capped and got[0].waits == 4 and not got[1].capped
        # A request that names no format gets the engine's, read from the model (and written the same way).
        ids = prepare_requests(tok, prompt, BUDGETS[0], chat_template_kwargs=kwargs).input_ids[0]
        raw = llm.generate([TokensPrompt(prompt_token_ids=ids)], SamplingParams(
            max_tokens=len(got[0].token_ids) + 1, temperature=0.0, skip_special_tokens=False,
            extra_args={"thinking_budget": BUDGETS[0].to_dict()}), use_tqdm=False)[0].outputs[0]
        assert list(raw.token_ids)[: len(got[0].token_ids)] == got[0].token_ids, family.name
        if family.off:  # switched off: never re-opened
            off = vllm_engine.generate_with_budget(llm, [prompt], BUDGETS[1], chat_template_kwargs=family.off)[0]
            assert off.thinking_tokens == 0 and fmt.think_start.strip() not in off.text
        del llm, model


def test_a_model_without_readable_markers_is_refused(vllm_tiny_dir, default_model_dir, tmp_path):
    from vllm import SamplingParams
    from vllm.exceptions import VLLMValidationError

    from hf_s1.engines import vllm as vllm_engine

    refused = (ValueError, VLLMValidationError)  # vLLM turns the processor's ValueError into its own (HTTP 400)
    plain = Family("plain", "s1", NO_THINKING, (), "<|im_end|>", None, "-")
    llm = _llm(save_family_model(vllm_tiny_dir, default_model_dir, plain, tmp_path / "plain"))
    with pytest.raises(BudgetError, match="looked at"):
        vllm_engine.generate_with_budget(llm, ["Q"], ThinkingBudget(max_thinking_tokens=4))
    with pytest.raises(refused, match="think_format"):  # admission refuses it
        llm.generate(["Q"], SamplingParams(max_tokens=4, extra_args={"thinking_budget": {"max_thinking_tokens": 4}}),
                     use_tqdm=False)
    # Named explicitly, the same request runs.
    out = vllm_engine.generate_with_budget(llm, ["Q"], ThinkingBudget(min_thinking_tokens=2, max_thinking_tokens=2,
                                                                      max_answer_tokens=2), think_format="s1")[0]
    assert out.capped and out.thinking_tokens == 2 and out.waits == 2
    served = llm.generate(["Q"], SamplingParams(max_tokens=8, temperature=0.0, skip_special_tokens=False, extra_args={
        "thinking_budget": {"max_thinking_tokens": 2}, "think_format": '{"name": "s1x", "think_start": '
        '"<|im_start|>think", "think_end": "<|im_start|>answer"}'}), use_tqdm=False)[0].outputs[0]
    assert "<|im_start|>answer" in served.text  # the end of sequence became the custom format's end marker
    with pytest.raises(refused, match="think_format"):
        llm.generate(["Q"], SamplingParams(max_tokens=4, extra_args={
            "thinking_budget": {}, "think_format": "no-such-family"}), use_tqdm=False)
