"""Benchmark loading (local files, schemas, errors), GPQA-style option shuffling, and sweep settings."""

import json
from pathlib import Path

import pytest

from hf_s1.eval import EvalError, expand_runs, load_benchmark, questions_from_rows
from hf_s1.eval.sweep import answer_key

FIXTURE = Path(__file__).parent / "fixtures" / "arithmetic.jsonl"


def test_local_fixture_loads_with_normalised_answers():
    bench = load_benchmark("arithmetic", data=FIXTURE)
    assert [q.id for q in bench.questions] == ["add-small", "mul-small", "sub-small", "half", "add-big"]
    assert [q.answer for q in bench.questions] == ["5", "42", "6", "\\frac{9}{2}", "350"]
    assert bench.kind == "math" and bench.questions[0].prompt == "What is 2 + 3?"
    assert len(load_benchmark("arithmetic", data=FIXTURE.parent, limit=2)) == 2  # a folder with one .jsonl


def test_known_schemas(tmp_path):
    # MATH500 (unique_id), AIME25 (int answers, str ids), AMC23 (float answers, `question` duplicate) column shapes.
    rows = [
        {"problem": "p1", "solution": "s", "answer": "\\frac{1}{2}", "subject": "Algebra", "level": 2, "unique_id": "test/a/1.json"},
        {"problem": "p2", "answer": 70, "id": "0"},
        {"id": 3, "problem": "p3", "question": "p3", "answer": 27.0, "url": "u"},
    ]
    qs = questions_from_rows(rows)
    assert [(q.id, q.answer) for q in qs] == [("test/a/1.json", "\\frac{1}{2}"), ("0", "70"), ("3", "27")]


def test_bad_inputs_name_the_fix(tmp_path):
    with pytest.raises(EvalError, match="choose one of"):
        load_benchmark("nonsense")
    with pytest.raises(EvalError, match="does not exist"):
        load_benchmark("math500", data=tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "a", "answer": "1"}\nnot json\n')
    with pytest.raises(EvalError, match="bad.jsonl:2"):
        load_benchmark("math500", data=bad)
    noans = tmp_path / "noans.jsonl"
    noans.write_text('{"problem": "a"}\n')
    with pytest.raises(EvalError, match="no 'answer' field"):
        load_benchmark("math500", data=noans)
    with pytest.raises(EvalError, match="local file"):
        load_benchmark("amc23")
    with pytest.raises(EvalError, match="positive int"):
        load_benchmark("math500", data=FIXTURE, limit=0)


def test_hub_load_offline_points_to_data(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    with pytest.raises(EvalError, match="--data"):
        load_benchmark("aime24")


def test_multiple_choice_shuffle_is_seeded_and_tracks_the_gold():
    # Made-up rows in GPQA's column layout (no GPQA question is stored in this project).
    rows = [{"Record ID": f"r{i}", "Question": f"Which colour is item {i}?", "Correct Answer": "red",
             "Incorrect Answer 1": "blue", "Incorrect Answer 2": "green", "Incorrect Answer 3": "grey"} for i in range(8)]
    a = questions_from_rows(rows, "choice", seed=0)
    b = questions_from_rows(rows, "choice", seed=0)
    c = questions_from_rows(rows, "choice", seed=1)
    assert [q.choices for q in a] == [q.choices for q in b]
    assert [q.choices for q in a] != [q.choices for q in c]
    assert len({q.answer for q in a}) > 1  # the correct option does not always sit at A
    for q in a:
        assert q.choices["ABCD".index(q.answer)] == "red"
        assert f"{q.answer}) red" in q.prompt and "Answer: X" in q.prompt
    with pytest.raises(EvalError, match="option columns"):
        questions_from_rows([{"Question": "q", "Correct Answer": "a"}], "choice")


def test_expand_runs_grid_and_validation():
    runs = expand_runs(["budget-forcing", "rejection-sampling", "majority-vote", "class-conditional",
                        "budget-forcing+majority-vote"], max_thinking=[8, 16], num_waits=[0, 2], samples=[1, 3])
    keys = [r.key for r in runs]
    assert keys[:4] == ["budget-forcing/max=8,waits=0", "budget-forcing/max=8,waits=2",
                        "budget-forcing/max=16,waits=0", "budget-forcing/max=16,waits=2"]
    rs = next(r for r in runs if r.key == "rejection-sampling/N=8")
    assert (rs.do_sample, rs.accept_max, rs.budget.max_thinking_tokens, rs.max_tries) == (True, 8, 9, 8)
    mv = next(r for r in runs if r.method == "majority-vote")
    assert (mv.samples, mv.vote_k, mv.budget.max_thinking_tokens) == (3, (1, 3), None)
    assert {r.label for r in runs if r.method == "class-conditional"} == {"short", "long"}
    assert sum(r.method == "budget-forcing+majority-vote" for r in runs) == 4
    with pytest.raises(EvalError, match="choose from"):
        expand_runs(["beam-search"])
    with pytest.raises(EvalError, match="needs token budgets"):
        expand_runs(["token-conditional"])
    with pytest.raises(EvalError, match="above every max_thinking"):
        expand_runs(["token-conditional"], max_thinking=[64], thinking_ceiling=32)
    with pytest.raises(EvalError, match="non-negative ints"):
        expand_runs(["budget-forcing"], num_waits=[-1])


def test_answer_key_merges_spellings():
    assert answer_key("\\dfrac{1}{2}") == answer_key("\\frac{1} {2}") == "\\frac{1}{2}"
    assert answer_key("$\\left(3, 4\\right)$") == "(3,4)"
    assert answer_key("") is None
