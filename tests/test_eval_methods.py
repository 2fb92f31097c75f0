"""The s1 paper's command shapes (`auto` caps, Wait lists, the s1 profile, the generation allowance) and
pass@1 over N samples: run expansion, the command line, and what a sweep hands the engine and records.
A scripted engine stands in for the model, so these run in milliseconds."""

import argparse
import dataclasses
import json

import pytest

from hf_s1 import ThinkingBudget
from hf_s1.eval import Benchmark, EvalError, expand_runs, questions_from_rows, read_manifest, read_samples, run_sweep
from hf_s1.eval.cli import add_eval_subcommands
from hf_s1.results import BudgetedGeneration


def _parse(*argv):
    parser = argparse.ArgumentParser(prog="hf-s1")
    add_eval_subcommands(parser.add_subparsers(dest="command"))
    return parser.parse_args(["eval", "--benchmark", "aime24", "--out", "runs/x", *argv])


def test_the_papers_command_line_parses():
    args = _parse("--max-thinking", "64,auto", "--num-waits", "1,2,4,6", "--temperature", "0", "--profile", "s1",
                  "--max-new-tokens", "32768", "--pass-at-1", "4")
    assert args.max_thinking == [64, "auto"] and args.num_waits == [1, 2, 4, 6]
    assert (args.profile, args.max_new_tokens, args.temperature, args.pass_at_1) == ("s1", 32768, 0.0, 4)
    assert (args.pass_at_1_temperature, args.pass_at_1_top_p) == (0.6, 0.95)  # open-r1's sampling
    defaults = _parse()
    assert (defaults.profile, defaults.max_new_tokens, defaults.pass_at_1) == ("hf-s1", None, None)
    assert _parse("--max-thinking", "AUTO,none").max_thinking == ["auto", None]
    for bad in (["--max-thinking", "lots"], ["--profile", "r1"], ["--max-new-tokens", "0"], ["--pass-at-1", "-2"]):
        with pytest.raises(SystemExit):
            _parse(*bad)


def test_auto_caps_and_the_s1_profile_reach_the_budget_and_the_labels():
    runs = expand_runs(["budget-forcing"], max_thinking=["auto"], num_waits=[1, 2, 4, 6], profile="s1",
                       max_new_tokens=32768)
    assert [r.label for r in runs] == [f"max=auto,waits={w},profile=s1" for w in (1, 2, 4, 6)]
    for run, w in zip(runs, (1, 2, 4, 6)):
        assert run.budget == ThinkingBudget(max_thinking_tokens="auto", num_waits=w, profile="s1")
        assert (run.max_new_tokens, run.do_sample, run.a_max) == (32768, False, None)  # greedy; bound unknown ahead
    # The default profile keeps the short labels; a mixed list keeps the numeric cap as a Control bound.
    mixed = expand_runs(["budget-forcing"], max_thinking=[64, "auto"], num_waits=[0])
    assert [(r.label, r.a_max, r.budget.profile) for r in mixed] == [
        ("max=64,waits=0", 64, "hf-s1"), ("max=auto,waits=0", None, "hf-s1")]
    # Methods that need a number of tokens skip "auto", and say so when nothing else is left.
    assert [r.label for r in expand_runs(["token-conditional"], max_thinking=[64, "auto"])] == ["N=64"]
    with pytest.raises(EvalError, match="needs token budgets"):
        expand_runs(["rejection-sampling"], max_thinking=["auto"])
    with pytest.raises(EvalError, match="max_new_tokens"):
        expand_runs(["budget-forcing"], max_new_tokens=0)
    with pytest.raises(EvalError, match="non-negative ints"):
        expand_runs(["budget-forcing"], max_thinking=["most"])


def test_pass_at_1_adds_sampled_runs_beside_the_greedy_ones():
    runs = expand_runs(["budget-forcing", "rejection-sampling", "majority-vote"], max_thinking=[64, 128],
                       num_waits=[0], samples=[1, 2], pass_at_1=4)
    by_label = {r.key: r for r in runs}
    sampled = [r for r in runs if r.label.endswith(",pass@1:4_samples")]
    # Only the single-sample methods get a pass@1 twin; rejection sampling and voting already sample.
    assert [r.key for r in sampled] == ["budget-forcing/max=64,waits=0,pass@1:4_samples",
                                        "budget-forcing/max=128,waits=0,pass@1:4_samples"]
    for r in sampled:
        greedy = by_label[r.key.rsplit(",", 1)[0]]
        assert (greedy.do_sample, greedy.samples) == (False, 1)
        assert (r.do_sample, r.samples, r.temperature, r.top_p) == (True, 4, 0.6, 0.95)
        assert r.budget == greedy.budget and r.a_max == greedy.a_max
    with pytest.raises(EvalError, match="pass_at_1 must be a positive int"):
        expand_runs(["budget-forcing"], pass_at_1=0)
    with pytest.raises(EvalError, match="needs sampling"):
        expand_runs(["budget-forcing"], pass_at_1=2, pass_at_1_temperature=0)


class ScriptedEngine:
    """Answers "5" after as many thinking tokens as the budget's cap (or the allowance's "auto" share), and
    records what it was asked. Written the way engines were before `max_new_tokens` existed: extra keywords
    are only accepted when a run sets them."""

    name = "scripted"

    def __init__(self, accepts_allowance=True):
        self.calls = []
        self.accepts_allowance = accepts_allowance

    def generate(self, prompts, budgets, *, do_sample, temperature, top_p, seed, **extra):
        if extra and not self.accepts_allowance:
            raise TypeError(f"unexpected {sorted(extra)}")
        self.calls.append(dict(n=len(prompts), do_sample=do_sample, temperature=temperature, **extra))
        out = []
        for i, (prompt, budget) in enumerate(zip(prompts, budgets)):
            cap = budget.max_thinking_tokens
            applied = extra.get("max_new_tokens", 64) // 2 if cap == "auto" else cap
            resolved = dataclasses.replace(budget, max_thinking_tokens=applied)
            correct = not do_sample or (seed + i) % 2 == 0
            out.append(BudgetedGeneration(prompt, "", "t" * applied, f"\\boxed{{{5 if correct else 6}}}", [0] * applied,
                                          applied, 3, 0, True, "stop", resolved))
        return out


def _bench(n=3, size=None):
    rows = [{"id": str(i), "problem": f"What is 2+3? ({i})", "answer": "5"} for i in range(n)]
    return Benchmark("math500", questions_from_rows(rows, "math"), "math", "inline", size=size)


def test_sweep_passes_the_allowance_and_records_the_applied_cap(tmp_path):
    engine = ScriptedEngine()
    runs = expand_runs(["budget-forcing"], max_thinking=["auto", 8], num_waits=[1], profile="s1", max_new_tokens=40)
    run_sweep(engine, _bench(size=500), runs, tmp_path, batch_size=8, progress=False, grading_timeout=None)
    assert [c["max_new_tokens"] for c in engine.calls] == [40, 40]
    records = {(r["run"], r["id"]): r for r in read_samples(tmp_path)}
    auto = records["max=auto,waits=1,profile=s1", "0"]
    assert auto["budget"] == {"max_thinking_tokens": "auto", "num_waits": 1, "applied_max_thinking_tokens": 20,
                              "profile": "s1"}
    assert auto["thinking_tokens"] == 20 and auto["a_max"] is None
    fixed = records["max=8,waits=1,profile=s1", "0"]
    assert fixed["budget"] == {"max_thinking_tokens": 8, "num_waits": 1, "profile": "s1"} and fixed["a_max"] == 8
    manifest = read_manifest(tmp_path)
    assert manifest["benchmark_size"] == 500 and len(manifest["question_ids"]) == 3
    assert [r["max_new_tokens"] for r in manifest["runs"]] == [40, 40]
    assert [r["budget"]["profile"] for r in manifest["runs"]] == ["s1", "s1"]


def test_runs_without_an_allowance_work_on_engines_that_do_not_know_it(tmp_path):
    engine = ScriptedEngine(accepts_allowance=False)
    run_sweep(engine, _bench(), expand_runs(["budget-forcing"], max_thinking=[4]), tmp_path, progress=False,
              grading_timeout=None)
    assert len(read_samples(tmp_path)) == 3 and "max_new_tokens" not in read_manifest(tmp_path)["runs"][0]


def test_pass_at_1_sweep_draws_n_samples_per_question(tmp_path):
    engine = ScriptedEngine()
    runs = expand_runs(["budget-forcing"], max_thinking=[4], pass_at_1=4)
    run_sweep(engine, _bench(), runs, tmp_path, batch_size=6, progress=False, grading_timeout=None)
    records = read_samples(tmp_path)
    sampled = [r for r in records if r["run"] == "max=4,waits=0,pass@1:4_samples"]
    assert len(sampled) == 12 and sorted({r["sample"] for r in sampled}) == [0, 1, 2, 3]
    assert [c["do_sample"] for c in engine.calls] == [False, True, True]
    assert {c["temperature"] for c in engine.calls if c["do_sample"]} == {0.6}


def test_resume_accepts_folders_written_before_new_budget_fields(tmp_path):
    runs = expand_runs(["budget-forcing"], max_thinking=[4])
    run_sweep(ScriptedEngine(), _bench(), runs, tmp_path, progress=False, grading_timeout=None)
    path = tmp_path / "sweep.json"
    manifest = json.loads(path.read_text())
    del manifest["runs"][0]["budget"]["profile"]  # what an older hf-s1 wrote
    path.write_text(json.dumps(manifest))
    again = ScriptedEngine()
    run_sweep(again, _bench(), runs, tmp_path, progress=False, grading_timeout=None)
    assert again.calls == []  # the same run: resumed, nothing recomputed
    with pytest.raises(EvalError, match="other settings"):
        run_sweep(again, _bench(), expand_runs(["budget-forcing"], max_thinking=[4], max_new_tokens=99), tmp_path,
                  progress=False)
