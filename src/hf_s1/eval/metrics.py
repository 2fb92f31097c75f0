"""The s1 paper's test-time scaling metrics (arXiv 2501.19393, §3) plus pass@k and majority voting.

A *run* is one evaluation at one setting (e.g. a thinking cap of 1,024 tokens): a point with its average
thinking tokens `a` and its accuracy `f(a)`. Over a set of runs `A`:

- Control = (1/|A|) · Σ 1[a_min ≤ a ≤ a_max]: the share of runs that stay within their bounds.
- Scaling = (1/C(|A|,2)) · Σ_{a<b} (f(b) − f(a)) / (b − a): the mean slope between every pair of runs.
- Performance = max_a f(a).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from itertools import combinations

from .errors import EvalError

__all__ = ["control", "scaling", "performance", "pass_at_k", "majority_vote"]


def _bounds(value: float | Sequence[float | None] | None, n: int, name: str) -> list[float | None]:
    if value is None or isinstance(value, (int, float)):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise EvalError(f"{name} has {len(values)} entries for {n} runs: give one per run, or a single number.")
    return values


def control(
    thinking: Sequence[float],
    a_min: float | Sequence[float | None] | None = None,
    a_max: float | Sequence[float | None] | None = None,
) -> float:
    """Share of runs (or samples) whose thinking tokens lie within `[a_min, a_max]`, in [0, 1].

    Args:
        thinking: thinking tokens per run (the run's average) or per sample.
        a_min, a_max: bounds, one for all or one per entry; `None` leaves that side open.

    Examples:

    ```python
    >>> control([500, 1000, 2100], a_max=[512, 1024, 2048])
    0.6666666666666666
    >>> control([40, 900], a_min=64, a_max=1024)
    0.5

    ```
    """
    values = list(thinking)
    if not values:
        raise EvalError("control() needs at least one run.")
    lows, highs = _bounds(a_min, len(values), "a_min"), _bounds(a_max, len(values), "a_max")
    inside = sum((lo is None or a >= lo) and (hi is None or a <= hi) for a, lo, hi in zip(values, lows, highs))
    return inside / len(values)


def scaling(thinking: Sequence[float], accuracy: Sequence[float]) -> float | None:
    """Mean pairwise slope of accuracy over thinking tokens: (1/C(|A|,2)) Σ_{a<b} (f(b) − f(a)) / (b − a).

    The unit is accuracy per thinking token, in whatever unit `accuracy` is given (the paper uses %).
    Runs with exactly the same thinking length form no slope; such pairs are left out of the mean.

    Args:
        thinking: average thinking tokens of each run (the x of the curve).
        accuracy: accuracy of each run (its y).

    Returns:
        The mean slope, or `None` when fewer than two distinct thinking lengths exist.

    Examples:

    ```python
    >>> scaling([1000, 2000, 4000], [20.0, 30.0, 40.0])   # slopes 0.01, 0.005, 0.00667
    0.007222222222222223

    ```
    """
    xs, ys = list(thinking), list(accuracy)
    if len(xs) != len(ys):
        raise EvalError(f"scaling() got {len(xs)} thinking lengths and {len(ys)} accuracies: give one of each per run.")
    slopes = [(fb - fa) / (b - a) for (a, fa), (b, fb) in combinations(sorted(zip(xs, ys)), 2) if b != a]
    return sum(slopes) / len(slopes) if slopes else None


def performance(accuracy: Sequence[float]) -> float:
    """Best accuracy over the runs: max_a f(a).

    Examples:

    ```python
    >>> performance([26.7, 50.0, 56.7])
    56.7

    ```
    """
    values = list(accuracy)
    if not values:
        raise EvalError("performance() needs at least one run.")
    return max(values)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from `n` samples of which `c` are correct (Chen et al., 2021): 1 − C(n−c, k) / C(n, k).

    pass@1 is the share of correct samples.

    Examples:

    ```python
    >>> pass_at_k(4, 1, 1), pass_at_k(4, 1, 4), round(pass_at_k(4, 2, 2), 4)
    (0.25, 1.0, 0.8333)

    ```
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise EvalError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}.")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_vote(answers: Sequence[Hashable | None]) -> int | None:
    """Index of the sample whose answer wins the vote; ties go to the answer seen first. `None` answers
    (no answer given) do not vote; returns `None` when no sample gave one.

    Examples:

    ```python
    >>> majority_vote(["3", None, "5", "5", "3"])   # "3" and "5" tie; "3" came first
    0
    >>> majority_vote(["3", "5", "5"]), majority_vote([None, None])
    (1, None)

    ```
    """
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(i for i, a in enumerate(answers) if a is not None and counts[a] == best)
