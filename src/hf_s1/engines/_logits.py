"""Turn tracker actions into a logits mask. Shared by every torch-based engine adapter.

The only decision made here is *whether the model attempts* an intercepted token, and that depends on the
sampler: greedy rows attempt when an intercepted id is the arg-max; sampled rows attempt with exactly the
probability the sampler would give the intercepted ids (a uniform draw from torch's global RNG, so
`set_seed` / per-request seeds make runs reproducible). Not attempting bans those ids, which leaves the
sampler with the remaining distribution renormalised: together, "sample, then replace an intercepted token".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..budget import BudgetTracker, Force, Intercept

# Probability mass above which a draw would almost surely attempt; avoids banning every finite logit.
_CERTAIN = 1.0 - 1e-6


def apply_actions(
    scores: torch.Tensor,
    trackers: Sequence[BudgetTracker | None],
    sampled: Callable[[int], bool],
    probabilities: Callable[[list[int], torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Apply every tracker's next action to `scores` (in place) and return it.

    Args:
        scores: (batch, vocab) logits for the next token.
        trackers: one per row; `None` leaves a row untouched.
        sampled: row -> whether that row samples (else greedy).
        probabilities: (rows, their scores) -> the sampler's probabilities for those rows.
    """
    forced_rows: list[int] = []
    forced_ids: list[int] = []
    ban_rows: list[int] = []
    ban_ids: list[int] = []
    intercepts: list[tuple[int, list[int]]] = []
    for row, tracker in enumerate(trackers):
        if tracker is None:
            continue
        action = tracker.next_action()
        if isinstance(action, Force):
            forced_rows.append(row)
            forced_ids.append(action.token_id)
        elif isinstance(action, Intercept):
            intercepts.append((row, sorted(action.token_ids)))

    if intercepts:
        attempted, outside = _attempts(scores, intercepts, sampled, probabilities)
        for (row, ids), hit in zip(intercepts, attempted):
            if hit:
                forced_rows.append(row)
                forced_ids.append(trackers[row].intercept())
            else:
                ban_rows += [row] * len(ids)
                ban_ids += ids
                if row in outside:
                    # Keep the sampler's own truncation (top-k / top-p / min-p): tokens it had cut stay cut, so
                    # a later warper cannot widen the support after the ban.
                    scores[row].masked_fill_(outside[row], -float("inf"))

    if ban_rows:
        scores[ban_rows, ban_ids] = -float("inf")
    if forced_rows:
        # Set the forced logit to 0 rather than keep its value: an earlier processor may have set it to -inf.
        scores[forced_rows] = -float("inf")
        scores[forced_rows, forced_ids] = 0.0
    return scores


def _attempts(scores, intercepts, sampled, probabilities) -> list[bool]:
    rows = [row for row, _ in intercepts]
    greedy = [i for i, row in enumerate(rows) if not sampled(row)]
    random = [i for i, row in enumerate(rows) if sampled(row)]
    out = [False] * len(rows)
    outside: dict[int, torch.Tensor] = {}
    if greedy:
        top = scores[[rows[i] for i in greedy]].argmax(dim=-1).tolist()
        for i, t in zip(greedy, top):
            out[i] = t in intercepts[i][1]
    if random:
        sub_rows = [rows[i] for i in random]
        probs = probabilities(sub_rows, scores[sub_rows].float())
        mass = torch.stack([probs[j, intercepts[i][1]].sum() for j, i in enumerate(random)])
        draws = torch.rand(len(random), device=mass.device)
        for j, (i, p, u) in enumerate(zip(random, mass.tolist(), draws.tolist())):
            out[i] = p >= _CERTAIN or u < p
            if not out[i]:
                outside[rows[i]] = probs[j] == 0
    return out, outside
