"""What a terminal shows of a result: injected extrapolations marked, the way thinking ended, the answer."""

from __future__ import annotations

from hf_s1 import ThinkingBudget
from hf_s1.budget import BudgetStats, TokenKind
from hf_s1.results import build_result

K = TokenKind


def _result():
    ids = [1, 2, 3, 4, 5, 6, 7, 8, 9]
    words = {1: "<think>", 2: "12 = 12.", 3: "\nWait,", 4: " yes", 5: " Wait", 6: " no.", 7: "\n</think>\n\n",
             8: "Final Answer:", 9: " 12"}
    kinds = [K.MARKER, K.THINKING, K.EXTRAPOLATION, K.THINKING, K.THINKING, K.THINKING, K.CUT, K.CUT, K.ANSWER]
    stats = BudgetStats(thinking_tokens=5, answer_tokens=1, waits=1, capped=True, finished=False,
                        thinking_started=True, thinking_ended=True, thinking_span=(1, 6), answer_span=(7, 9))
    decode = lambda t: "".join(words[i] for i in t)  # noqa: E731
    return build_result("q?", ids, stats, kinds, ThinkingBudget(max_thinking_tokens=5), decode)


def test_injected_waits_are_marked_and_the_models_own_are_not():
    r = _result()
    assert r.marked_thinking() == "12 = 12.\n[+Wait,] yes Wait no."  # the model's own " Wait" stays plain text
    assert [k for k, _ in r.segments] == ["marker", "thinking", "extrapolation", "thinking", "cut", "answer"]
    assert "".join(t for _, t in r.segments) == r.text


def test_render_says_how_thinking_ended_and_prints_the_answer():
    text = _result().render()
    assert text.startswith("### q?\n--- thinking: 5 tokens, waits: 1 injected [+...], cut at the cap\n")
    assert "[+Wait,] yes" in text and text.rstrip().endswith("--- answer (1 tokens)\nFinal Answer: 12")


def test_main_job_settings_on_the_embedded_model(model, tokenizer):
    """The README's main job (scripts/demo.sh) settings: every question gets a non-empty answer, injected Waits are
    marked as often as they were counted, and the thinking never starts by continuing a role name."""
    from hf_s1.engines.transformers import generate_with_budget

    budget = ThinkingBudget(min_thinking_tokens=48, max_thinking_tokens=96, num_waits=1, extrapolation="\nWait,",
                            max_answer_tokens=48)
    out = generate_with_budget(model, tokenizer, ["What is 17 * 23?", "Is 221 prime?", "What is 2+2?"], budget,
                               think_format="r1")
    for r in out:
        assert r.answer.strip(), r.prompt
        assert r.marked_thinking().count("[+Wait,]") == r.waits
        assert not r.thinking.startswith("er")
    assert sum(r.waits for r in out) >= 1
