"""A multi-call budget-forcing loop in the shape of s1's code, with hf-s1's rules; for comparison only (tests and
benchmarks). For s1's own evaluation rules see `ThinkingBudget(profile="s1")`.

The s1 reference generates, stops at an end of thinking, appends "Wait" and calls the engine again, each
call re-reading prompt + thinking so far. This is that loop over token ids (so that re-tokenising text cannot
make it differ), with the budget rules taken from `hf_s1.budget` — the loop's *shape* is the reference's,
the semantics are ours. Engines supply `complete(ids, max_new_tokens, stop_ids) -> new ids`, which decodes
greedily and includes the stop token when one ended the call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from .budget import BudgetStats, BudgetTracker, MarkerTokens, ThinkingBudget
from .results import BudgetedGeneration, build_result

__all__ = ["s1_loop", "s1_loop_result"]

Complete = Callable[[list[int], int, Sequence[int]], list[int]]


def s1_loop(
    complete: Complete,
    prompt_ids: Sequence[int],
    budget: ThinkingBudget,
    markers: MarkerTokens,
    *,
    answer_tokens: int,
) -> tuple[list[int], BudgetStats]:
    """Run budget forcing as repeated engine calls. `prompt_ids` must end with the think-start marker.

    Returns the generated ids (end-of-sequence token excluded) and the telemetry.
    """
    generated, stats, _ = _s1_loop(complete, prompt_ids, budget, markers, answer_tokens=answer_tokens)
    return generated, stats


def _s1_loop(complete: Complete, prompt_ids: Sequence[int], budget: ThinkingBudget, markers: MarkerTokens, *,
             answer_tokens: int) -> tuple[list[int], BudgetStats, set[int]]:
    """`s1_loop`, also returning the generated positions where it appended an extrapolation (its injection log)."""
    if tuple(prompt_ids[-len(markers.think_start) :]) != markers.think_start:
        raise ValueError("s1_loop expects a prompt that ends with the think-start marker.")
    prompt = list(prompt_ids)
    ends = [*markers.stop_ids, markers.think_end[0]]
    cap = budget.max_thinking_tokens
    prefix = markers.encode_budget_string(budget.answer_prefix, "answer_prefix")
    stats = BudgetStats(thinking_started=True)
    gen: list[int] = []
    injected: set[int] = set()
    while True:
        left = None if cap is None else cap - stats.thinking_tokens
        if left == 0:
            last = gen[-1] if gen else prompt[-1]
            gen += markers.cut_ids(last, prefix)
            stats.capped = True
            break
        new = complete(prompt + gen, left if left is not None else answer_tokens, ends)
        ended = bool(new) and new[-1] in ends
        body = new[:-1] if ended else new
        gen += body
        stats.thinking_tokens += len(body)
        if not ended:
            if left is None:  # no cap and no end: the allowance ran out
                return gen, stats, injected
            continue  # the cap is reached: the next turn cuts
        if budget.must_extend(stats.thinking_tokens, stats.waits):
            wait = markers.encode_budget_string(budget.extrapolation_at(stats.waits), "extrapolation")
            stats.waits += 1
            if cap is not None:
                wait = wait[: cap - stats.thinking_tokens]
            injected.add(len(gen))
            gen += wait
            stats.thinking_tokens += len(wait)
            continue
        injected.add(len(gen))  # the replay's log holds every replaced end, this one too
        gen += markers.think_end  # the model ended: its end token (or end-of-sequence) becomes the end marker
        break
    stats.thinking_ended = True
    limit = budget.max_answer_tokens if budget.max_answer_tokens is not None else answer_tokens
    answer = complete(prompt + gen, limit, markers.stop_ids) if limit > 0 else []
    finished = bool(answer) and answer[-1] in markers.stop_set
    body = answer[:-1] if finished else answer
    stats.answer_tokens = len(body)
    stats.finished = finished or budget.max_answer_tokens is not None
    return gen + body, stats, injected


def s1_loop_result(
    complete: Complete,
    prompt: Any,
    prompt_ids: Sequence[int],
    budget: ThinkingBudget,
    markers: MarkerTokens,
    *,
    answer_tokens: int,
    decode: Callable[[Sequence[int]], str],
) -> BudgetedGeneration:
    """`s1_loop` as a `BudgetedGeneration`: counts from the loop, token kinds and spans from a tracker replay."""
    generated, stats, injected = _s1_loop(complete, prompt_ids, budget, markers, answer_tokens=answer_tokens)
    tracker = BudgetTracker(budget, markers)
    tracker.start(prompt_ids)
    tracker.replay(generated, injected=injected)
    spans = tracker.finish(generated)
    stats = dataclasses.replace(spans, thinking_tokens=stats.thinking_tokens, answer_tokens=stats.answer_tokens,
                                waits=stats.waits, capped=stats.capped, finished=stats.finished)
    return build_result(prompt, generated, stats, tracker.kinds, budget, decode, tracker.forced)
