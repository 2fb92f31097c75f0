"""s1 curation steps on a small planted pool (tests/fixtures/s1k/curation_pool.jsonl)."""

import argparse
import json
from collections import Counter
from pathlib import Path

import pytest
from datasets import Dataset

from hf_s1.data import DataError, load_s1k
from hf_s1.data.curation import (
    curate,
    difficulty_filter,
    diversity_sample,
    grade_with_model,
    quality_filter,
)
from hf_s1.data.decontamination import NgramIndex, decontaminate

FIXTURES = Path(__file__).parent / "fixtures" / "s1k"


@pytest.fixture(scope="module")
def pool():
    return load_s1k(FIXTURES / "curation_pool.jsonl")


@pytest.fixture(scope="module")
def eval_questions():
    return {"eval_questions": load_s1k(FIXTURES / "eval_questions.jsonl")["problem"]}


@pytest.fixture(scope="module")
def small_tokenizer(default_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_model_dir)


def test_quality_drops_missing_fields_errors_and_artefacts(pool):
    kept, report = quality_filter(pool)
    assert report.dropped == {"api_error": 1, "asy": 1, "image": 1, "missing:attempt": 1,
                              "missing:thinking_trajectories": 1}
    assert (report.rows_in, report.rows_out) == (20, 15) == (pool.num_rows, kept.num_rows)
    assert any("[asy]" in q for q in kept["question"])  # the AIME figure stays, as in s1
    assert not any("![diagram]" in q for q in kept["question"])


def test_decontamination_catches_the_planted_overlap(pool, eval_questions):
    kept, dropped = decontaminate(pool, eval_questions, n=8)
    assert dropped == {"overlap:eval_questions": 1}
    assert kept.num_rows == pool.num_rows - 1 and not any(q.startswith("Recall the classic") for q in kept["question"])
    # Rewording below 8 shared words escapes 8-grams but not 4-grams: n matters and is honoured.
    probe = Dataset.from_list([{"question": "let S be the set of odd numbers and sum them"}])
    assert decontaminate(probe, eval_questions, n=8)[0].num_rows == 1
    assert decontaminate(probe, eval_questions, n=4)[0].num_rows == 0
    short = NgramIndex({"tiny": ["Compute 2+2."]}, n=8)  # shorter than n words: matched whole
    assert short.hits("please compute 2 + 2 now") == ["tiny"] and short.hits("compute 3") == []
    with pytest.raises(DataError, match="positive int"):
        NgramIndex(["x"], n=0)


def test_difficulty_drops_solved_and_counts_trace_tokens(pool, small_tokenizer):
    kept, report = difficulty_filter(pool, correct_columns=["qwen7b_correct", "qwen32b_correct"],
                                     tokenizer=small_tokenizer)
    assert report.dropped == {"solved:qwen32b_correct": 2, "solved:qwen7b_correct": 1}
    for row in kept:
        trace = row["thinking_trajectories"][0] if row["thinking_trajectories"] else ""
        assert row["trace_tokens"] == len(small_tokenizer(trace, add_special_tokens=False)["input_ids"])
    longest = max(kept["trace_tokens"])
    _, short = difficulty_filter(kept, min_trace_tokens=longest)
    assert short.dropped == {"short_trace": kept.num_rows - kept["trace_tokens"].count(longest)}
    with pytest.raises(DataError, match="grade_with_model"):
        difficulty_filter(pool, correct_columns=["missing_column"], tokenizer=small_tokenizer)
    with pytest.raises(DataError, match="tokenizer="):
        difficulty_filter(pool)


def test_diversity_is_seeded_and_follows_s1_weights():
    rows = [{"question": f"q{i}", "domain": "a" if i < 12 else "b", "trace_tokens": 100 - i} for i in range(16)]
    pool = Dataset.from_list(rows)
    first, report = diversity_sample(pool, 6, seed=3)
    again, _ = diversity_sample(pool, 6, seed=3)
    assert first["question"] == again["question"] and report.rows_out == 6 and report.dropped == {"not_sampled": 10}
    assert any(diversity_sample(pool, 6, seed=s)[0]["question"] != first["question"] for s in range(4, 9))
    assert len(set(first["question"])) == 6  # without replacement
    # Domains are picked uniformly (not by size): domain "b" has 4 of 16 rows but wins half of the first picks.
    firsts = [diversity_sample(pool, 1, seed=s)[0][0] for s in range(400)]
    share_b = sum(r["domain"] == "b" for r in firsts) / 400
    assert 0.42 < share_b < 0.58, share_b
    # Within a domain, rank r (longest first) has weight 2^-r: the longest wins ~1/(1+1/2+1/4+1/8) = 53 % in "b".
    b_firsts = Counter(r["question"] for r in firsts if r["domain"] == "b")
    assert b_firsts.most_common(1)[0][0] == "q12"
    assert 0.44 < b_firsts["q12"] / sum(b_firsts.values()) < 0.63
    assert diversity_sample(pool, 100, seed=0)[0].num_rows == 16  # asking for more takes everything


def test_pluggable_classifier_and_errors():
    pool = Dataset.from_list([{"question": q, "trace_tokens": 5} for q in ("a triangle", "a prime", "another prime")])
    picked, _ = diversity_sample(pool, 3, seed=0, classifier=lambda q: "geometry" if "triangle" in q else "nt")
    assert sorted(picked["domain"]) == ["geometry", "nt", "nt"]
    with pytest.raises(DataError, match="classifier="):
        diversity_sample(pool, 2)
    with pytest.raises(DataError, match="positive int"):
        diversity_sample(pool, 0, classifier=str)


def test_curate_pipeline_report_and_reproducibility(pool, eval_questions, small_tokenizer):
    kwargs = dict(size=6, eval_sets=eval_questions, correct_columns=["qwen7b_correct", "qwen32b_correct"],
                  tokenizer=small_tokenizer)
    result = curate(pool, seed=11, **kwargs)
    stages = [(s.stage, s.rows_in, s.rows_out) for s in result.report.stages]
    assert stages == [("quality", 20, 15), ("decontamination", 15, 14), ("difficulty", 14, 11), ("diversity", 11, 6)]
    assert result.dataset["question"] == curate(pool, seed=11, **kwargs).dataset["question"]
    assert json.loads(result.report.to_json())["seed"] == 11
    assert "decontamination" in str(result.report)


def test_curate_cli(tmp_path, capsys):
    from hf_s1.data.cli import add_curate_subcommand

    parser = argparse.ArgumentParser(prog="hf-s1")
    add_curate_subcommand(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "s1k-mine"
    args = parser.parse_args(["curate", "--pool", str(FIXTURES / "curation_pool.jsonl"), "--out", str(out),
                              "--size", "5", "--seed", "0", "--eval-set", str(FIXTURES / "eval_questions.jsonl"),
                              "--correct-column", "qwen7b_correct", "--correct-column", "qwen32b_correct"])
    assert args.func(args) == 0
    selected = load_s1k(out / "train.jsonl")
    report = json.loads((out / "curation_report.json").read_text())
    assert selected.num_rows == 5 and [s["rows_out"] for s in report["stages"]] == [15, 14, 11, 5]
    assert "wrote 5 rows" in capsys.readouterr().out
    args = parser.parse_args(["curate", "--pool", str(FIXTURES / "curation_pool.jsonl"), "--out", str(out),
                              "--domain-column", "topic"])
    with pytest.raises(DataError, match="domain_column"):
        args.func(args)


def test_grade_with_model_uses_the_engine_and_math_verify(model, tokenizer):
    from math_verify import parse, verify

    from hf_s1 import ThinkingBudget

    rows = Dataset.from_list([{"question": "What is 2+3?", "solution": "5"},
                              {"question": "What is 10 minus 4?", "solution": "6"}])
    graded = grade_with_model(rows, model, tokenizer, ThinkingBudget(max_thinking_tokens=8, max_answer_tokens=12),
                              column="smol_correct")
    assert graded.column_names == ["question", "solution", "smol_correct", "smol_correct_answer"]
    assert all(a.strip() for a in graded["smol_correct_answer"])
    expected = [bool(verify(parse(s), parse(a))) for s, a in zip(graded["solution"], graded["smol_correct_answer"])]
    assert graded["smol_correct"] == expected
    kept, report = difficulty_filter(graded.add_column("thinking_trajectories", [["t"], ["t"]])
                                     .add_column("trace_tokens", [1, 1]), correct_columns=["smol_correct"])
    assert kept.num_rows == 2 - sum(expected)
