"""s1's evaluation rules as repeated engine calls, written here for tests only (the library's `s1` profile does the
same in one pass). It follows the rules of s1's evaluation code (its lm-evaluation-harness fork, `_model_generate`),
not its code:

- thinking runs in rounds; a round stops at an end token (the end marker's first token, end-of-turn,
  end-of-sequence) or after `cap` tokens; with Waits, every round writes at least one token before it may stop;
- a round that stopped at an end token, while Waits are left, loses that token and gets the Wait ids appended;
- the joined thinking ids (the last round's stop token included) are cut to `cap`, and an end token left at the
  end of the cut is dropped;
- the last round hit its length limit: "\\n" (unless its last token ends with a newline) + the end marker +
  "\\nFinal Answer:", tokenized as one string; it stopped by itself: the end marker alone;
- the answer is one more call, up to `answer_tokens`, stopping at end-of-sequence / end-of-turn.

`complete(ids, max_new, stop_ids, min_tokens)` decodes greedily, keeps the stop id that ended the call, and bans
`stop_ids` for the first `min_tokens` tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Complete = Callable[[list[int], int, Sequence[int], int], list[int]]


def s1_eval_loop(complete: Complete, prompt_ids: Sequence[int], *, cap: int, num_waits: int, wait_ids: Sequence[int],
                 ends: Sequence[int], stops: Sequence[int], end_marker_ids: Sequence[int],
                 end_max_ids: Sequence[int], newline_ids: Sequence[int], ends_with_newline: Callable[[int], bool],
                 answer_tokens: int) -> tuple[list[int], str | None, int]:
    """The generated ids (thinking, cut, answer) for a prompt that ends with the think-start marker, and the class
    of the run: None when the joined rounds stayed within the cap; when they ran past it (so that the cut dropped
    thinking), "stop" if the last round then ended by itself (the end marker alone) and "length" if it hit its own
    limit of `cap` tokens (the newline + end marker + "Final Answer:" form); and the number of rounds run."""
    prompt = list(prompt_ids)
    joined: list[int] = []
    for i in range(num_waits + 1):
        out = complete(prompt + joined, cap, ends, 1 if num_waits else 0)
        stopped = bool(out) and out[-1] in ends
        if not stopped or i == num_waits:
            joined += out
            break
        joined += out[:-1] + list(wait_ids)
    last_round = out
    overran = len(joined) - stopped > cap
    outcome = ("stop" if stopped else "length") if overran else None
    kept = joined[:cap]
    if kept and kept[-1] in ends:
        kept = kept[:-1]
    if stopped:
        cut = list(end_marker_ids)
    else:
        cut = ([] if last_round and ends_with_newline(last_round[-1]) else list(newline_ids)) + list(end_max_ids)
    answer = complete(prompt + kept + cut, answer_tokens, stops, 0)
    return kept + cut + answer, outcome, i + 1


def compare_profile(generate, complete: Complete, tokenizer, prompts, caps, waits, answer_tokens: int,
                    answer_in_budget: bool = True):
    """Run the `s1` profile (`generate(prompts, budget) -> results`) and `s1_eval_loop` (`complete`) on every
    prompt x cap x Wait count; returns (matching runs, runs, classes): `classes` counts runs by (class, whether the last round was the last
    one allowed, `num_waits + 1`), see `s1_eval_loop`. With `answer_in_budget=False` the budget leaves
    `max_answer_tokens` unset and `generate` must give the call an allowance of `answer_tokens` (s1's
    `max_gen_toks`, all of which s1's answer call gets)."""
    from collections import Counter

    from hf_s1 import ThinkingBudget
    from hf_s1.prompts import prepare_requests

    matches = runs = 0
    classes: Counter = Counter()
    for cap in caps:
        for n in waits:
            budget = ThinkingBudget(max_thinking_tokens=cap, num_waits=n, profile="s1",
                                    max_answer_tokens=answer_tokens if answer_in_budget else None)
            results = generate(prompts, budget)
            req = prepare_requests(tokenizer, prompts, budget)
            m = req.markers
            for ids, result in zip(req.input_ids, results):
                ref, outcome, rounds = s1_eval_loop(
                    complete, ids, cap=cap, num_waits=n, wait_ids=m.encode_budget_string("Wait", "extrapolation"),
                    ends=(m.think_end[0], *m.stop_ids), stops=m.stop_ids, end_marker_ids=m.think_end,
                    end_max_ids=tokenizer.encode(tokenizer.decode(m.think_end) + "\nFinal Answer:",
                                                 add_special_tokens=False),
                    newline_ids=tokenizer.encode("\n", add_special_tokens=False),
                    ends_with_newline=lambda t: t in m.ends_with_before_end, answer_tokens=answer_tokens)
                runs += 1
                matches += list(result.token_ids) == [t for t in ref if t not in m.stop_set]
                classes[(outcome, rounds == n + 1)] += 1
    return matches, runs, classes
