"""Answer extraction and grading: math answers with math-verify, multiple-choice letters with patterns.

Extraction follows s1's evaluation: read the text after the answer marker, then take the last `\\boxed{}`
(or `\\fbox{}`), else the last "Answer:" / "Final Answer:" line. Math answers are compared with math-verify,
gold first (its comparison is not symmetric: the gold decides, e.g., whether an interval or a set is meant).

math-verify's own timeouts use `signal.alarm`, which only works on the main thread. Here they are replaced by
a float-second alarm on the main thread and, on any other thread (a Gradio worker, a thread pool), by a
one-process grading pool that is killed and restarted when a comparison runs too long.
"""

from __future__ import annotations

import atexit
import json
import logging
import re
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "ANSWER_MARKERS",
    "Grade",
    "GradingTimeout",
    "answer_region",
    "extract_boxed",
    "extract_math_answer",
    "extract_choice",
    "grade_math",
    "grade_choice",
    "grade",
]

# End-of-thinking markers of the think formats (s1, R1/Qwen3): the answer is what follows the last one.
ANSWER_MARKERS = ("<|im_start|>answer", "</think>")
DEFAULT_TIMEOUT = 5.0

T = TypeVar("T")


class GradingTimeout(BaseException):
    """A parse or comparison took longer than the grading timeout.

    A `BaseException`, so that math-verify's own `except Exception` error handling cannot swallow it.
    """


@dataclass(frozen=True)
class Grade:
    """The outcome of grading one response.

    Attributes:
        extracted: the answer read from the response (`None` when it gives none).
        correct: whether it matches the gold answer.
        error: `"timeout"` when math-verify ran out of time (graded as wrong), else `None`.
    """

    extracted: str | None
    correct: bool
    error: str | None = None


# ---- extraction -------------------------------------------------------------------------------------


def answer_region(text: str) -> str:
    """The text after the last end-of-thinking marker (the whole text when there is none).

    Examples:

    ```python
    >>> answer_region("<|im_start|>think\\n2+3=5\\n<|im_start|>answer\\nFinal Answer: 5")
    '\\nFinal Answer: 5'

    ```
    """
    cut = max((text.rfind(m) + len(m) if m in text else -1) for m in ANSWER_MARKERS)
    return text if cut < 0 else text[cut:]


def extract_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` / `\\fbox{...}` (nested braces kept), or `None`.

    Examples:

    ```python
    >>> extract_boxed(r"so $x = \\boxed{\\frac{1}{2}}$ and not \\boxed{3")
    '\\\\frac{1}{2}'

    ```
    """
    best: str | None = None
    for match in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            best = text[match.end() : i - 1].strip()
    return best


_ANSWER_LINE = re.compile(r"(?:final\s+answer|answer)\s*(?:is)?\s*[:：]\s*(.*)", re.IGNORECASE)


def extract_math_answer(text: str) -> str | None:
    """The answer a response gives: last `\\boxed{}` after the answer marker, else the last "Answer:" line.

    Args:
        text: a full response (markers included) or just its answer part.

    Returns:
        The answer as written (LaTeX or plain), or `None` when the response gives none.

    Examples:

    ```python
    >>> extract_math_answer("<|im_start|>answer\\nFinal Answer: The answer is $\\\\boxed{12}$.")
    '12'
    >>> extract_math_answer("thinking...\\nFinal Answer: 3/4\\n")
    '3/4'
    >>> extract_math_answer("I am not sure.") is None
    True

    ```
    """
    region = answer_region(text)
    boxed = extract_boxed(region)
    if boxed:
        return boxed
    found: str | None = None
    lines = region.splitlines()
    for i, line in enumerate(lines):
        match = _ANSWER_LINE.search(line)
        if not match:
            continue
        value = match.group(1).strip()
        if not value:  # "Final Answer:" alone on its line: the answer is on the next non-empty one
            value = next((nxt.strip() for nxt in lines[i + 1 :] if nxt.strip()), "")
        if value:
            found = value
    if found is None:
        return None
    found = found.strip().rstrip(".").strip()
    if len(found) >= 2 and found[0] == found[-1] == "$":
        found = found.strip("$").strip()
    return found or None


_CHOICE_PATTERNS = (
    r"\\boxed\s*\{\s*(?:\\text\s*\{)?\s*\(?([A-Z])\)?\s*\}?\s*\}",
    r"answer\s*(?:is)?\s*[:：]?\s*\**\s*\(?([A-Z])\)?(?![A-Za-z])",
    r"^\s*\(?([A-Z])\)?[.)]?\s*$",
)


def extract_choice(text: str, letters: str = "ABCD") -> str | None:
    """The option letter a multiple-choice response picks, or `None`.

    Looks after the answer marker for, in order: `\\boxed{B}`, "Answer: (B)" / "the answer is B", a line that
    is just a letter. The last match of the first pattern that matches wins.

    Examples:

    ```python
    >>> extract_choice("<|im_start|>answer\\nAnswer: (c)")
    'C'
    >>> extract_choice("The answer is $\\\\boxed{\\\\text{D}}$") , extract_choice("no idea") is None
    ('D', True)

    ```
    """
    region = answer_region(text)
    for pattern in _CHOICE_PATTERNS:
        flags = re.IGNORECASE | re.MULTILINE if "answer" in pattern or "^" in pattern else re.MULTILINE
        hits = [m.group(1).upper() for m in re.finditer(pattern, region, flags)]
        hits = [h for h in hits if h in letters]
        if hits:
            return hits[-1]
    return None


# ---- timeouts ------------------------------------------------------------------------------------


def _alarm(signum: int, frame: Any) -> None:
    raise GradingTimeout


def _on_main_thread(fn: Callable[[], T], timeout: float) -> T:
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Worker:
    """One grading subprocess shared by non-main threads; killed and restarted when a comparison overruns.

    A plain `python -m` subprocess speaking JSON lines: unlike a multiprocessing pool it never re-imports the
    caller's `__main__`, and unlike a thread it can really be stopped.
    """

    lock = threading.Lock()
    proc: subprocess.Popen | None = None

    @classmethod
    def run(cls, gold: str, pred: str, timeout: float) -> bool:
        with cls.lock:
            if cls.proc is None or cls.proc.poll() is not None:
                cls.proc = subprocess.Popen(
                    [sys.executable, "-m", "hf_s1.eval._grading_worker"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                )
                atexit.register(cls.stop)
            proc = cls.proc
            proc.stdin.write(json.dumps({"gold": gold, "pred": pred}) + "\n")
            proc.stdin.flush()
            # The first request also pays the worker's import of math-verify (about a second).
            ready, _, _ = select.select([proc.stdout], [], [], timeout + (5.0 if not getattr(proc, "warm", False) else 0))
            if not ready:
                cls.stop()
                raise GradingTimeout
            line = proc.stdout.readline()
            if not line:
                cls.stop()
                raise GradingTimeout
            proc.warm = True
            return bool(json.loads(line)["correct"])

    @classmethod
    def stop(cls) -> None:
        if cls.proc is not None:
            cls.proc.kill()
            cls.proc.wait()
            cls.proc = None


def _quiet_math_verify() -> None:
    # math-verify warns once that its timeouts are off: they are, because this module supplies its own.
    for name in ("math_verify.parser", "math_verify.grader", "math_verify"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _parse(text: str, *, gold: bool) -> list:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    _quiet_math_verify()
    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    # Bare LaTeX like "\frac{1}{2}" is only found inside math delimiters.
    wrapped = text if ("$" in text or "\\boxed" in text or "\\[" in text) else f"${text}$"
    parsed = parse(wrapped, extraction_config=configs, parsing_timeout=None, raise_on_error=False)
    if not parsed and wrapped != text:
        parsed = parse(text, extraction_config=configs, parsing_timeout=None, raise_on_error=False)
    return parsed


def verify_strings(gold: str, pred: str) -> bool:
    from math_verify import verify

    gold_parsed, pred_parsed = _parse(gold, gold=True), _parse(pred, gold=False)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None, raise_on_error=False))


def _verify_with_timeout(gold: str, pred: str, timeout: float | None) -> bool:
    if timeout is None or timeout <= 0:
        return verify_strings(gold, pred)
    if threading.current_thread() is threading.main_thread():
        return _on_main_thread(lambda: verify_strings(gold, pred), timeout)
    return _Worker.run(gold, pred, timeout)


# ---- grading ---------------------------------------------------------------------------------------


def grade_math(response: str, gold: str, *, timeout: float | None = DEFAULT_TIMEOUT) -> Grade:
    """Grade a math response against its gold answer with math-verify (gold first).

    Args:
        response: the model's output, full or its answer part.
        gold: the reference answer (LaTeX or plain, no `$` needed).
        timeout: seconds for parsing and comparing; works on any thread. A timeout grades as wrong with
            `error="timeout"`. `None` disables it.

    Examples:

    ```python
    >>> grade_math("<|im_start|>answer\\nFinal Answer: $\\\\boxed{0.5}$", "\\\\frac{1}{2}")
    Grade(extracted='0.5', correct=True, error=None)
    >>> grade_math("Final Answer: [1, 2)", "(1,2]").correct
    False

    ```
    """
    extracted = extract_math_answer(response)
    if extracted is None:
        return Grade(None, False)
    try:
        return Grade(extracted, _verify_with_timeout(str(gold), extracted, timeout))
    except GradingTimeout:
        return Grade(extracted, False, "timeout")


def grade_choice(response: str, gold: str, *, letters: str = "ABCD") -> Grade:
    """Grade a multiple-choice response: the extracted letter must equal the gold letter.

    Examples:

    ```python
    >>> grade_choice("Answer: B", "B")
    Grade(extracted='B', correct=True, error=None)

    ```
    """
    extracted = extract_choice(response, letters)
    return Grade(extracted, extracted is not None and extracted == str(gold).strip().upper())


def grade(response: str, gold: str, kind: str = "math", *, timeout: float | None = DEFAULT_TIMEOUT) -> Grade:
    """Grade by benchmark kind: `"math"` (math-verify) or `"choice"` (option letter)."""
    if kind == "math":
        return grade_math(response, gold, timeout=timeout)
    if kind == "choice":
        return grade_choice(response, gold)
    from .errors import EvalError

    raise EvalError(f"unknown answer kind {kind!r}: use 'math' or 'choice'.")
