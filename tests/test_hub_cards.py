"""Dry-run plans, cards and evaluation results, checked field by field (no model, no network)."""

import json
from pathlib import Path

import pytest
import yaml
from huggingface_hub import DatasetCard, ModelCard, parse_eval_result_entries

from hf_s1 import BudgetError, ThinkingBudget
from hf_s1.formats import ThinkFormat
from hf_s1.hub import (
    BudgetPolicy,
    EvalRecord,
    HubConflictError,
    HubInputError,
    load_eval_results,
    push_dataset,
    push_model,
)
from hf_s1.hub.cards import KNOWN_BENCHMARKS, eval_results_files, render_model_card

FIXTURES = Path(__file__).parent / "fixtures" / "hub"
REPO_ROOT = Path(__file__).parent.parent


@pytest.fixture
def model_folder(tmp_path):
    """A save_pretrained-like folder with training leftovers next to the model files."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "eos_token_id": 2, "bos_token_id": 1}))
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": 2, "do_sample": False}))
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    (folder / "tokenizer.json").write_text("{}")
    (folder / "optimizer.pt").write_bytes(b"o")
    (folder / "scheduler.pt").write_bytes(b"s")
    (folder / "rng_state_0.pth").write_bytes(b"r")
    (folder / "training_args.bin").write_bytes(b"t")
    (folder / "README.md").write_text("old card")
    for sub in ("checkpoint-10", "global_step10", "runs/x"):
        (folder / sub).mkdir(parents=True)
        (folder / sub / "model.safetensors").write_bytes(b"c")
    return folder


BUDGET = ThinkingBudget(max_thinking_tokens=512, num_waits=1)


def test_dry_run_plan_field_by_field(model_folder):
    plan = push_model(
        model_folder, "me/s1-smollm2", budget=BUDGET, think_format="s1", eval_results=FIXTURES / "eval" / "sweep_math500",
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct", datasets=["simplescaling/s1K"], license="apache-2.0",
        tags=["math"], private=True, revision="v1", dry_run=True,
    )
    assert plan.dry_run and not plan.local and plan.commit_url is None
    assert (plan.target, plan.repo_type, plan.revision, plan.private, plan.create_pr) == (
        "me/s1-smollm2", "model", "v1", True, False)
    assert set(plan.paths) == {
        "config.json", "model.safetensors", "tokenizer.json", "README.md", "thinking_budget.json",
        "generation_config.json", "custom_generate/generate.py", "custom_generate/requirements.txt",
        ".eval_results/math500.yaml",
    }
    # Leftovers are listed as left out; the source's card and generation config are replaced.
    assert plan.replaced == ["README.md", "generation_config.json"]
    assert set(plan.skipped) == {
        "optimizer.pt", "scheduler.pt", "rng_state_0.pth", "training_args.bin",
        "checkpoint-10/model.safetensors", "global_step10/model.safetensors", "runs/x/model.safetensors",
    }
    assert len(plan.operations()) == len(plan.paths)
    assert "max 512 thinking tokens, 1 Wait extension" in plan.commit_message

    policy = json.loads(plan.read("thinking_budget.json"))
    assert BudgetPolicy.from_dict(policy) == BudgetPolicy(BUDGET, "s1")
    gen = json.loads(plan.read("generation_config.json"))
    assert gen["eos_token_id"] == 2 and gen["do_sample"] is False  # the folder's settings are kept
    assert gen["thinking_budget"] == policy
    assert b"'max_thinking_tokens': 512" in plan.read("custom_generate/generate.py")
    assert plan.read("custom_generate/requirements.txt").startswith(b"hf-s1>=")
    # The source folder is untouched by a dry run.
    assert (model_folder / "README.md").read_text() == "old card"


def test_card_loads_back_with_model_card(model_folder):
    plan = push_model(
        model_folder, "me/s1-smollm2", budget=BUDGET, think_format="s1", eval_results=FIXTURES / "eval" / "sweep_math500",
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct", datasets=["simplescaling/s1K"], license="apache-2.0",
        tags=["math"], dry_run=True,
    )
    card = ModelCard(plan.read("README.md").decode())
    data = card.data
    assert data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert data.datasets == ["simplescaling/s1K"]
    assert data.license == "apache-2.0" and data.pipeline_tag == "text-generation"
    assert data.library_name == "transformers"
    assert {"hf-s1", "budget-forcing", "math"} <= set(data.tags)
    assert data.model_name == "s1-smollm2"
    results = {(r.dataset_type, r.metric_config): r for r in data.eval_results}
    assert set(results) == {("HuggingFaceH4/MATH-500", "max_thinking_tokens=64"),
                            ("HuggingFaceH4/MATH-500", "max_thinking_tokens=128,num_waits=1")}
    r64 = results["HuggingFaceH4/MATH-500", "max_thinking_tokens=64"]
    assert (r64.metric_type, r64.metric_value, r64.dataset_split) == ("accuracy", 50.0, "test")
    # The fixture sweep asked 4 of MATH-500's 500 questions: every place that names the benchmark says so.
    assert r64.metric_name == "accuracy (max 64 thinking tokens; partial run: 4 of 500 questions)"
    assert r64.dataset_name == "MATH-500 (partial: 4 of 500 questions)"
    assert results["HuggingFaceH4/MATH-500", "max_thinking_tokens=128,num_waits=1"].metric_value == 75.0
    text = card.text
    assert '"max_thinking_tokens": 512' in text and "max 512 thinking tokens, 1 Wait extension (format s1)" in text
    assert 'pull_model("me/s1-smollm2")' in text and 'custom_generate="me/s1-smollm2"' in text
    assert ("| MATH-500 (partial: 4 of 500 questions) | accuracy | 75 | max 128 thinking tokens, 1 Wait extension | "
            "119 | 4 of 500 |") in text
    assert "| MATH-500 | accuracy" not in text
    assert "**Partial runs**" in text and "MATH-500: 4 of 500 questions" in text
    assert card.content == plan.card.content


def test_eval_results_yaml_entries_carry_the_budget(model_folder):
    plan = push_model(model_folder, "me/m", budget=BUDGET, eval_results=FIXTURES / "eval" / "sweep_math500", dry_run=True)
    entries = parse_eval_result_entries(yaml.safe_load(plan.read(".eval_results/math500.yaml")))
    assert [(e.dataset_id, e.task_id, e.value) for e in entries] == [
        ("HuggingFaceH4/MATH-500", "default", 50.0), ("HuggingFaceH4/MATH-500", "default", 75.0)]
    assert entries[0].notes == ("hf-s1 budget forcing: max 64 thinking tokens; 60 thinking tokens on average; "
                                "partial run: 4 of 500 questions")
    assert "max 128 thinking tokens, 1 Wait extension" in entries[1].notes


def test_load_eval_results_sources():
    # The eval sweep folder: the benchmark comes from sweep.json, the torn last line is skipped.
    sweep = load_eval_results(FIXTURES / "eval" / "sweep_math500")
    assert [(r.benchmark, r.value, r.num_samples, r.thinking_tokens) for r in sweep] == [
        ("math500", 50.0, 4, 60.5), ("math500", 75.0, 4, 119.0)]
    assert sweep[1].budget == ThinkingBudget(max_thinking_tokens=128, num_waits=1)
    # Summary rows, including a benchmark of one's own with its Hub dataset id.
    summary = load_eval_results(FIXTURES / "eval" / "summary_results.json")
    assert [(r.benchmark, r.dataset_id, r.value) for r in summary] == [
        ("aime24", "simplescaling/aime24_nofigures", 40.0), ("my_quiz", "me/quiz", 12.5)]
    assert summary[0].notes() == ("hf-s1 budget forcing: max 2048 thinking tokens; 1800 thinking tokens on average; "
                                  "30 questions")  # all of AIME24's 30: not partial
    assert not summary[0].partial and summary[0].benchmark_size == 30
    # A whole results tree: both.
    assert len(load_eval_results(FIXTURES / "eval")) == 4
    # Records and mappings pass through.
    rec = EvalRecord("gpqa_diamond", 59.6, budget=BUDGET)
    assert load_eval_results([rec, {"benchmark": "aime25", "value": 33.3}])[0] is rec
    assert rec.task_id == "gpqa_diamond" and rec.to_eval_result().dataset_config == "gpqa_diamond"


def test_known_benchmarks_match_the_evaluation_module():
    from hf_s1.eval.benchmarks import BENCHMARKS

    for name, bench in KNOWN_BENCHMARKS.items():
        spec = BENCHMARKS[name]
        assert (bench.dataset_id, bench.split) == (spec.hub_id, spec.split), name


@pytest.mark.parametrize(
    "source, match",
    [
        ([{"benchmark": "quiz", "value": 1.0}], "unknown benchmark 'quiz'"),
        ([{"value": 1.0}], "names no benchmark"),
        ([{"benchmark": "math500"}], "neither 'value' nor 'correct'"),
        ([{"benchmark": "math500", "value": "high"}], "finite numeric value"),
        ([{"benchmark": "math500", "value": 1.0, "budget": {"max_thinking": 5}}], "unknown thinking-budget field"),
        ("/nonexistent/results", "does not exist"),
        ([3], "EvalRecords, mappings or a path"),
    ],
)
def test_bad_eval_results(source, match):
    with pytest.raises(HubInputError, match=match):
        load_eval_results(source)


def test_policy_round_trips_custom_formats_and_rejects_bad_files(tmp_path):
    custom = ThinkFormat("mine", "<reason>", "</reason>", "\n", "\n", "\n")
    policy = BudgetPolicy(ThinkingBudget(max_thinking_tokens=8, extrapolation=["Hmm", "Wait"]), custom)
    policy.save(tmp_path)
    assert BudgetPolicy.load(tmp_path) == policy
    # A bare ThinkingBudget mapping under generation_config.json is read too.
    other = tmp_path / "g"
    other.mkdir()
    (other / "generation_config.json").write_text(json.dumps({"thinking_budget": {"max_thinking_tokens": 3}}))
    assert BudgetPolicy.load(other).budget == ThinkingBudget(max_thinking_tokens=3)
    (other / "thinking_budget.json").write_text("{not json")
    with pytest.raises(HubInputError, match="not valid JSON"):
        BudgetPolicy.load(other)
    with pytest.raises(HubInputError, match="newer than this hf-s1"):
        BudgetPolicy.from_dict({"version": 99, "budget": {}})
    with pytest.raises(HubInputError, match="unknown thinking-budget policy key"):
        BudgetPolicy.from_dict({"budget": {}, "format": "s1"})


def test_push_model_input_errors(model_folder, tmp_path):
    with pytest.raises(HubInputError, match="does not exist"):
        push_model(tmp_path / "nope", "me/m", dry_run=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(HubInputError, match="no config.json"):
        push_model(tmp_path / "empty", "me/m", dry_run=True)
    with pytest.raises(HubInputError, match="not a valid Hub repo id"):
        push_model(model_folder, "me/bad repo!", dry_run=True)
    with pytest.raises(HubInputError, match="think_format without budget"):
        push_model(model_folder, "me/m", think_format="s1", dry_run=True)
    with pytest.raises(BudgetError, match="min_thinking_tokens"):
        push_model(model_folder, "me/m", budget={"max_thinking_tokens": 4, "min_thinking_tokens": 8}, dry_run=True)


def test_push_model_to_local_folder_is_all_or_nothing(model_folder, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(HubConflictError, match="not empty"):
        push_model(model_folder, taken, budget=BUDGET)
    with pytest.raises(HubInputError, match="apply to Hub repos"):
        push_model(model_folder, tmp_path / "new", budget=BUDGET, revision="dev")
    assert not (tmp_path / "new").exists()
    assert [p.name for p in taken.iterdir()] == ["keep.txt"] and (taken / "keep.txt").read_text() == "mine"

    plan = push_model(model_folder, tmp_path / "published", budget=BUDGET, ignore_patterns=["tokenizer.json"])
    published = tmp_path / "published"
    assert plan.local and not plan.dry_run and plan.commit_url == str(published.resolve())
    written = sorted(p.relative_to(published).as_posix() for p in published.rglob("*") if p.is_file())
    assert written == sorted(plan.paths) and "tokenizer.json" not in written
    assert (published / "model.safetensors").read_bytes() == b"\0" * 64
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".published-")]  # no temporary left behind
    # A published folder can be pushed on as is: its own policy is picked up.
    again = push_model(published, "me/m2", dry_run=True)
    assert again.policy == BudgetPolicy(BUDGET)


def test_dataset_plan_and_card(tmp_path):
    plan = push_dataset(FIXTURES / "s1k_mini.jsonl", "me/s1k-mini", pretty_name="s1K mini", license="mit",
                        source_datasets=["simplescaling/s1K"], dry_run=True)
    assert plan.repo_type == "dataset" and plan.paths == ["data/train-00000-of-00001.parquet", "README.md"]
    card = DatasetCard(plan.read("README.md").decode())
    assert card.data.license == "mit" and card.data.pretty_name == "s1K mini"
    assert card.data.configs == [{"config_name": "default",
                                  "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}]
    assert card.data.size_categories == ["n<1K"]
    assert "`train`: 3 rows" in card.text and "Reasoning traces are in `thinking_trajectories`" in card.text
    import pyarrow.parquet as pq
    import io

    table = pq.read_table(io.BytesIO(plan.read("data/train-00000-of-00001.parquet")))
    assert table.num_rows == 3 and table.column("question")[2].as_py() == "Is 7 prime?"
    with pytest.raises(HubInputError, match="no 'question' column"):
        push_dataset([{"prompt": "x", "attempt": "y"}], "me/d", dry_run=True)
    with pytest.raises(HubInputError, match="no trace or answer column"):
        push_dataset([{"question": "x"}], "me/d", dry_run=True)
    with pytest.raises(HubInputError, match="unsupported data file"):
        (tmp_path / "d.csv").write_text("question\nx\n")
        push_dataset(tmp_path / "d.csv", "me/d", dry_run=True)
    with pytest.raises(HubInputError, match="must be a datasets.Dataset"):
        push_dataset(42, "me/d", dry_run=True)


def test_root_template_is_the_shipped_one():
    shipped = (REPO_ROOT / "src" / "hf_s1" / "hub" / "templates" / "model_card.md").read_text()
    assert (REPO_ROOT / "model_card.md").read_text() == shipped


def _eval_folder(folder, benchmark, questions, runs, records):
    """A folder as `hf-s1 eval` writes it (`sweep.json` + `samples.jsonl`)."""
    folder.mkdir(parents=True)
    manifest = {"benchmark": benchmark, "model": "m", "engine": "transformers", "question_ids": questions, "runs": runs}
    (folder / "sweep.json").write_text(json.dumps(manifest))
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_cards_show_what_the_eval_report_computes(tmp_path):
    """One owner: a sweep folder's card figures are `hf_s1.eval.summarize`'s points (maj@k, pass@1:N_samples),
    not a second aggregation of the sample rows."""
    from hf_s1.eval import summarize

    ids = [f"q{i}" for i in range(30)]  # all of AIME24
    vote = {"method": "majority-vote", "label": "k=3", "a_min": None, "a_max": None, "vote_k": [1, 3], "samples": 3,
            "do_sample": True, "temperature": 1.0, "budget": {"max_thinking_tokens": 256}}
    records = []
    for i, q in enumerate(ids):  # sample 0 wrong, samples 1 and 2 agree on the right answer for even questions
        for s, (key, ok) in enumerate([("9", False), ("5", i % 2 == 0), ("5", i % 2 == 0)]):
            records.append({"id": q, "method": "majority-vote", "run": "k=3", "sample": s, "thinking_tokens": 100,
                            "correct": ok, "waits": 0, "capped": False, "vote_key": key if ok or s == 0 else str(s)})
    run = _eval_folder(tmp_path / "aime24", "aime24", ids, [vote], records)
    cards = {r.metric: r for r in load_eval_results(run)}
    points = {p.metric: p for p in summarize(run).points}
    assert set(cards) == {"maj@1", "maj@3"}
    for metric, record in cards.items():
        assert record.value == round(points[metric].accuracy, 1) and record.num_samples == 30
        assert not record.partial and record.benchmark_size == 30
    assert (cards["maj@1"].value, cards["maj@3"].value) == (0.0, 50.0)  # a row average would say 33.3
    assert cards["maj@3"].thinking_tokens == 300.0  # thinking spent over the 3 votes, as the report plots it
    assert cards["maj@3"].notes() == ("hf-s1 majority vote: max 256 thinking tokens; maj@3; 300 thinking tokens on "
                                      "average; 30 questions")
    card = render_model_card("me/m", eval_results=list(cards.values()))
    assert "| AIME 2024 | maj@3 | 50 | max 256 thinking tokens | 300 | 30 |" in card.text
    assert "Partial runs" not in card.text and "partial" not in card.data.to_dict()["model-index"][0].__repr__()


def test_a_limit_run_is_not_called_the_benchmark_score(tmp_path):
    run = {"method": "budget-forcing", "label": "max=auto,waits=1,profile=s1", "a_min": None, "a_max": None,
           "vote_k": [], "budget": {"max_thinking_tokens": "auto", "num_waits": 1, "profile": "s1"}}
    records = [{"id": f"q{i}", "method": "budget-forcing", "run": run["label"], "sample": 0, "thinking_tokens": 40,
                "correct": i < 3, "waits": 1, "capped": True} for i in range(4)]
    folder = _eval_folder(tmp_path / "math500", "math500", [f"q{i}" for i in range(4)], [run], records)
    (record,) = load_eval_results(folder)
    assert record.partial and record.coverage() == "partial run: 4 of 500 questions"
    assert record.budget_text() == "auto thinking cap (allowance minus prompt), 1 Wait extension, s1 profile"
    result = record.to_eval_result()
    assert result.dataset_name == "MATH-500 (partial: 4 of 500 questions)" and result.dataset_type == "HuggingFaceH4/MATH-500"
    assert result.metric_name.endswith("; partial run: 4 of 500 questions)")
    card = render_model_card("me/m", eval_results=[record])
    assert "| MATH-500 (partial: 4 of 500 questions) | accuracy | 75 |" in card.text and "| 4 of 500 |" in card.text
    assert "**Partial runs**" in card.text
    entries = parse_eval_result_entries(yaml.safe_load(eval_results_files([record])[".eval_results/math500.yaml"]))
    assert entries[0].notes.endswith("partial run: 4 of 500 questions")
