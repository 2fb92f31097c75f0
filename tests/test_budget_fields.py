"""Every `ThinkingBudget` field reaches every place a budget is set: the command line (generate / eval, and the Hub
helpers), the lm-eval gen_kwargs, the GRPO recipe's arguments, and the batch core's slot tables. A new field that
one of them drops fails here."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from hf_s1 import ThinkingBudget

FIELDS = [f.name for f in dataclasses.fields(ThinkingBudget)]


def test_generate_and_eval_flags_carry_every_field():
    from hf_s1.cli_args import BudgetArguments

    assert set(FIELDS) <= {f.name for f in dataclasses.fields(BudgetArguments)}


def test_hub_push_flags_carry_every_field(tmp_path):
    from hf_s1.hub.cli import _policy_from, add_hub_subcommands

    parser = argparse.ArgumentParser()
    add_hub_subcommands(parser.add_subparsers(dest="command"))
    values = {"max_thinking_tokens": "64", "min_thinking_tokens": "8", "num_waits": "2", "extrapolation": "Hmm",
              "answer_prefix": "A:", "max_answer_tokens": "9", "profile": "hf-s1"}
    assert set(values) == set(FIELDS), "give the new field a value here"
    argv = ["push", "src", "./out"]
    for name, value in values.items():
        argv += [f"--{name.replace('_', '-')}", value]
    policy = _policy_from(parser.parse_args(argv))
    want = ThinkingBudget(max_thinking_tokens=64, min_thinking_tokens=8, num_waits=2, extrapolation="Hmm",
                          answer_prefix="A:", max_answer_tokens=9)
    assert policy.budget == want


def test_gen_kwargs_carry_every_field():
    from hf_s1.formats import S1_FORMAT
    from hf_s1.harness.gen_kwargs import BUDGET_KEYS, from_gen_kwargs

    assert set(FIELDS) == set(BUDGET_KEYS)
    ask = from_gen_kwargs({"max_thinking_tokens": 40, "num_waits": 1, "extrapolation": "Hmm", "answer_prefix": "A:",
                           "min_thinking_tokens": 3, "max_answer_tokens": 7, "profile": "hf-s1"},
                          default_format=S1_FORMAT)
    assert ask.budget == ThinkingBudget(max_thinking_tokens=40, num_waits=1, extrapolation="Hmm", answer_prefix="A:",
                                        min_thinking_tokens=3, max_answer_tokens=7)


def test_grpo_arguments_carry_every_field():
    pytest.importorskip("trl")
    from hf_s1.train.grpo import GRPOBudgetArguments

    names = {f.name for f in dataclasses.fields(GRPOBudgetArguments)}
    assert set(FIELDS) <= names
    args = GRPOBudgetArguments(dataset_name="x", extrapolation=["Hmm", "Wait"], answer_prefix="A:", num_waits=1)
    assert args.budget().extrapolation == ("Hmm", "Wait") and args.budget().answer_prefix == "A:"


# One change per field, each of which must change what the batch core holds for the slot.
VARIANTS = {
    "max_thinking_tokens": 7, "min_thinking_tokens": 3, "num_waits": 2, "extrapolation": ["Hmm"],
    "answer_prefix": "A:", "max_answer_tokens": 5, "profile": "s1",
}


@pytest.mark.parametrize("name", FIELDS)
def test_the_slot_tables_carry_every_field(name, tokenizer):
    import torch

    from hf_s1.engines.batch_budget import BatchBudget, SlotSpec
    from hf_s1.formats import marker_tokens

    assert name in VARIANTS, f"add a variant of the new field {name!r} to VARIANTS"
    base = ThinkingBudget(max_thinking_tokens=9, max_answer_tokens=None)
    changed = ThinkingBudget(**{**base.to_dict(), name: VARIANTS[name]}) if name != "profile" else \
        ThinkingBudget(max_thinking_tokens=9, profile="s1")
    markers = marker_tokens(tokenizer, "s1")
    core = BatchBudget(2, "cpu")
    core.set_slots([0, 1], [SlotSpec(base, markers), SlotSpec(changed, markers)])
    differs = [table for table, value in core._tables.items()
               if value.dim() >= 1 and value.shape[0] == 2 and not torch.equal(value[0], value[1])]
    assert differs, f"{name} changes nothing the batch core holds"
