"""Answer extraction and grading edge cases (math-verify, gold first; multiple-choice letters; timeouts)."""

import threading

import pytest

from hf_s1.eval import extract_choice, extract_math_answer, grade, grade_choice, grade_math, EvalError


@pytest.mark.parametrize(
    "response, gold, extracted, correct",
    [
        ("<|im_start|>answer\nFinal Answer: $\\boxed{\\frac{1}{2}}$", "0.5", "\\frac{1}{2}", True),
        ("<|im_start|>answer\nThe value is \\boxed{\\dfrac{14}{3}}.", "\\frac{14}{3}", "\\dfrac{14}{3}", True),
        ("<|im_start|>answer\nFinal Answer: 27", "27.0", "27", True),
        ("<|im_start|>answer\nFinal Answer:\n  42\n", "42", "42", True),
        ("<|im_start|>answer\nAnswer: (1, 2]", "(1,2]", "(1, 2]", True),
        ("<|im_start|>answer\nAnswer: [1, 2)", "(1,2]", "[1, 2)", False),
        ("<|im_start|>answer\nFinal Answer: $\\left( 3, \\frac{\\pi}{2} \\right)$", "\\left( 3, \\frac{\\pi}{2} \\right)",
         "\\left( 3, \\frac{\\pi}{2} \\right)", True),
        ("<|im_start|>answer\nFinal Answer: 41", "42", "41", False),
        # Thinking mentions \boxed{7}; only the text after the answer marker counts.
        ("\\boxed{7}\n<|im_start|>answer\nFinal Answer: 8", "7", "8", False),
        ("<think>so 3</think>\n\nAnswer: 3", "3", "3", True),
        ("<|im_start|>answer\nI could not solve it.", "5", None, False),
        ("", "5", None, False),
    ],
)
def test_math_grading(response, gold, extracted, correct):
    g = grade_math(response, gold)
    assert (g.extracted, g.correct, g.error) == (extracted, correct, None)


def test_last_boxed_wins_and_nested_braces():
    assert extract_math_answer("\\boxed{1} then \\boxed{\\frac{a}{b^{2}}}") == "\\frac{a}{b^{2}}"
    assert extract_math_answer("Answer: 3\nFinal Answer: 4") == "4"


@pytest.mark.parametrize(
    "response, letter",
    [("Answer: B", "B"), ("<|im_start|>answer\nThe answer is (d).", "D"), ("\\boxed{C}", "C"),
     ("...\nA\n", "A"), ("Answer: E", None), ("I think it is likely", None)],
)
def test_choice_extraction(response, letter):
    assert extract_choice(response) == letter
    assert grade_choice(response, "B").correct == (letter == "B")


def test_grade_dispatch_rejects_unknown_kind():
    assert grade("Answer: A", "A", "choice").correct
    with pytest.raises(EvalError, match="'math' or 'choice'"):
        grade("x", "y", "essay")


def test_grading_off_the_main_thread():
    out = {}

    def work():
        out["ok"] = grade_math("Final Answer: \\frac{6}{4}", "1.5", timeout=10)
        out["bad"] = grade_math("Final Answer: 2", "1.5", timeout=10)

    t = threading.Thread(target=work)
    t.start()
    t.join(60)
    assert out["ok"].correct and not out["bad"].correct and out["ok"].error is None


def test_timeout_on_main_thread_and_worker_thread():
    # Run in a fresh interpreter: in a long pytest process, state left by earlier tests has once made the slow
    # comparison finish inside the timeout (seen in 2 of 4 full runs, never alone); the mechanism under test is
    # the same. Comparing a 40th power of a trinomial takes over 5 s (measured).
    import subprocess
    import sys

    script = """
import threading
from hf_s1.eval.grading import grade_math
slow = "Final Answer: $(x+y+z+1)^{40}$"
g = grade_math(slow, "x^2+5", timeout=0.3)
assert (g.correct, g.error) == (False, "timeout"), g
out = {}
t = threading.Thread(target=lambda: out.setdefault("g", grade_math(slow, "x^2+5", timeout=0.3)))
t.start()
t.join(60)
assert (out["g"].correct, out["g"].error) == (False, "timeout"), out
# The worker restarts after being stopped: grading goes on.
t = threading.Thread(target=lambda: out.setdefault("after", grade_math("Answer: 5", "5", timeout=10)))
t.start()
t.join(60)
assert out["after"].correct, out
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
