"""The error type of the evaluation package."""

from __future__ import annotations

from ..budget import BudgetError

__all__ = ["EvalError"]


class EvalError(BudgetError):
    """Bad evaluation input (benchmark, data file, sweep settings, run folder). The message names the fix.

    A subclass of `hf_s1.BudgetError` (itself a `ValueError`), so `except BudgetError` in callers and the
    `hf-s1` command catches it too.
    """
