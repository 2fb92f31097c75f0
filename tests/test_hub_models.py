"""Real round trips with the embedded SmolLM2-135M-Instruct: push to a local folder and pull back; pull offline
from a prepared Hugging Face cache with pinned revisions; data sets; the `custom_generate` layout run through
transformers' own `custom_generate` loading from a local path."""

import json
import os

import pytest
import torch
from transformers import AutoModelForCausalLM

from hf_s1 import ThinkingBudget, generate_with_budget
from hf_s1.hub import (
    BudgetPolicy,
    HubConflictError,
    HubInputError,
    HubOfflineError,
    pull_dataset,
    pull_model,
    pull_policy,
    pull_snapshot,
    push_dataset,
    push_model,
)
from hf_s1.hub.cli import main as hub_cli

BUDGET = ThinkingBudget(max_thinking_tokens=6, max_answer_tokens=4)
PROMPT = "What is 2+3?"
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "hub")


@pytest.fixture(scope="module")
def published(default_model_dir, tmp_path_factory):
    """The default model pushed to a local folder target with an s1 budget policy."""
    target = tmp_path_factory.mktemp("hub") / "s1-smollm2"
    push_model(default_model_dir, target, budget=BUDGET, think_format="s1",
               base_model="HuggingFaceTB/SmolLM2-135M-Instruct", datasets=["simplescaling/s1K"])
    return target


COMMIT_A, COMMIT_B = "a" * 40, "b" * 40


@pytest.fixture(scope="module")
def cache(published, tmp_path_factory):
    """A Hugging Face cache holding `me/s1-smollm2` at two commits, as a download would leave it: commit A is the
    published folder, commit B (now `main`) the same model with a larger budget."""
    root = tmp_path_factory.mktemp("hf-cache")
    repo = root / "models--me--s1-smollm2"
    for commit, policy in ((COMMIT_A, None), (COMMIT_B, BudgetPolicy(ThinkingBudget(max_thinking_tokens=32), "s1"))):
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        for f in published.rglob("*"):
            if f.is_file():
                (snap / f.relative_to(published)).parent.mkdir(parents=True, exist_ok=True)
                (snap / f.relative_to(published)).symlink_to(f)
        if policy is not None:
            (snap / "thinking_budget.json").unlink()
            policy.save(snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT_B)
    (repo / "refs" / "v1").write_text(COMMIT_A)
    return root


def test_push_to_local_folder_then_pull_round_trips(published, default_model_dir, model, tokenizer):
    pulled_model, pulled_tokenizer, budget = pull_model(published)
    assert budget == BUDGET
    assert pulled_model.generation_config.thinking_budget == BudgetPolicy(BUDGET, "s1").to_dict()
    assert pulled_model.generation_config.eos_token_id == model.generation_config.eos_token_id
    assert pulled_tokenizer.get_vocab() == tokenizer.get_vocab()
    assert pulled_tokenizer.chat_template == tokenizer.chat_template
    theirs = dict(model.named_parameters())
    for name, param in pulled_model.named_parameters():
        assert torch.equal(param, theirs[name]), name
    # Nothing of the source folder changed.
    assert not (default_model_dir / "thinking_budget.json").exists()


def test_offline_pull_from_cache_pins_revisions(cache):
    # HF_HUB_OFFLINE=1 holds for the whole suite: everything below comes from the cache.
    assert pull_policy("me/s1-smollm2", cache_dir=cache).budget == ThinkingBudget(max_thinking_tokens=32)
    assert pull_policy("me/s1-smollm2", cache_dir=cache, revision=COMMIT_A).budget == BUDGET
    assert pull_policy("me/s1-smollm2", cache_dir=cache, revision="v1").budget == BUDGET
    assert pull_snapshot("me/s1-smollm2", cache_dir=cache, revision=COMMIT_A).name == COMMIT_A
    model, tokenizer, budget = pull_model("me/s1-smollm2", cache_dir=cache, revision=COMMIT_A)
    assert budget == BUDGET and model.config.model_type == "llama" and tokenizer.padding_side == "left"
    with pytest.raises(HubOfflineError, match="not in the local cache"):
        pull_model("me/other-model", cache_dir=cache)
    with pytest.raises(HubOfflineError, match="revision 'v9'"):
        pull_policy("me/s1-smollm2", cache_dir=cache, revision="v9")


def test_pull_never_overwrites_local_files(cache, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("my own config")
    with pytest.raises(HubConflictError, match="never overwrites"):
        pull_snapshot("me/s1-smollm2", cache_dir=cache, local_dir=mine, allow_patterns=["*.json"])
    assert [p.name for p in mine.iterdir()] == ["config.json"] and (mine / "config.json").read_text() == "my own config"
    copy = pull_snapshot("me/s1-smollm2", cache_dir=cache, local_dir=tmp_path / "copy", revision=COMMIT_A,
                         allow_patterns=["*.json"])
    assert copy == tmp_path / "copy" and not (copy / "thinking_budget.json").is_symlink()
    assert BudgetPolicy.load(copy).budget == BUDGET
    with pytest.raises(HubInputError, match="applies to Hub repos"):
        pull_snapshot(copy, revision="main")


def test_cli_pull_offline(cache, capsys):
    code = hub_cli(["pull", "me/s1-smollm2", "--offline", "--cache-dir", str(cache), "--revision", COMMIT_A, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["path"].endswith(COMMIT_A)
    assert BudgetPolicy.from_dict(out["policy"]) == BudgetPolicy(BUDGET, "s1")
    assert hub_cli(["pull", "me/nothing-here", "--offline", "--cache-dir", str(cache)]) == 2
    assert "not in the local cache" in capsys.readouterr().err


def test_dataset_round_trip_local_and_cache(tmp_path):
    from datasets import Dataset

    rows = Dataset.from_json(os.path.join(FIXTURES, "s1k_mini.jsonl")).to_list()
    push_dataset(os.path.join(FIXTURES, "s1k_mini.jsonl"), tmp_path / "ds", pretty_name="s1K mini")
    back = pull_dataset(tmp_path / "ds")
    assert list(back) == ["train"] and back["train"].to_list() == rows
    # The same files as a cached Hub dataset repo, read offline; one split as a Dataset.
    snap = tmp_path / "cache" / "datasets--me--s1k-mini" / "snapshots" / COMMIT_A
    (snap / "data").mkdir(parents=True)
    for f in ("README.md", "data/train-00000-of-00001.parquet"):
        (snap / f).symlink_to(tmp_path / "ds" / f)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text(COMMIT_A)
    train = pull_dataset("me/s1k-mini", cache_dir=tmp_path / "cache", split="train")
    assert train.to_list() == rows
    with pytest.raises(HubInputError, match="no split 'test'"):
        pull_dataset(tmp_path / "ds", split="test")


# ---- custom_generate ---------------------------------------------------------------------------------


def _chat_inputs(tokenizer):
    return tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True,
                                         return_tensors="pt", return_dict=True)


def test_custom_generate_from_local_path_matches_generate_with_budget(published, model, tokenizer):
    inputs = _chat_inputs(tokenizer)
    # The fixture model has no policy of its own: the repo's baked-in default applies.
    assert getattr(model.generation_config, "thinking_budget", None) is None
    out = model.generate(**inputs, custom_generate=str(published), trust_remote_code=True, tokenizer=tokenizer,
                         return_dict_in_generate=True)
    stats = out.budget_stats[0]
    assert (stats.thinking_tokens, stats.capped, stats.answer_tokens <= 4) == (6, True, True)
    new = out.sequences[0, inputs["input_ids"].shape[1]:].tolist()
    think_start = tokenizer.encode("<|im_start|>think", add_special_tokens=False)
    assert new[: len(think_start)] == think_start  # the processor opened the thinking
    reference = generate_with_budget(model, tokenizer, PROMPT, BUDGET, think_format="s1")[0]
    rest = new[len(think_start):]
    n = len(reference.token_ids)
    assert rest[:n] == reference.token_ids and set(rest[n:]) <= {tokenizer.eos_token_id}  # + the final stop
    # A call-level budget overrides the repo's.
    out = model.generate(**inputs, custom_generate=str(published), trust_remote_code=True, tokenizer=tokenizer,
                         thinking_budget={"max_thinking_tokens": 2, "max_answer_tokens": 1},
                         return_dict_in_generate=True)
    assert out.budget_stats[0].thinking_tokens == 2


def test_custom_generate_needs_trust_remote_code(published, model, tokenizer):
    with pytest.raises(ValueError, match="trust_remote_code"):
        model.generate(**_chat_inputs(tokenizer), custom_generate=str(published), tokenizer=tokenizer)


def test_from_pretrained_with_trust_remote_code_budget_forces_generate(published, tokenizer):
    model = AutoModelForCausalLM.from_pretrained(published, trust_remote_code=True)
    assert model.generation_config.thinking_budget["budget"]["max_thinking_tokens"] == 6
    inputs = _chat_inputs(tokenizer)
    # Sampling: the stored upper bound still holds, and the lower bound of the call is honoured.
    torch.manual_seed(0)
    out = model.generate(**inputs, tokenizer=tokenizer, do_sample=True, temperature=0.7, return_dict_in_generate=True,
                         thinking_budget=ThinkingBudget(min_thinking_tokens=3, max_thinking_tokens=5,
                                                        max_answer_tokens=2))
    stats = out.budget_stats[0]
    assert 3 <= stats.thinking_tokens <= 5 and stats.thinking_ended


# ---- a stored policy and plain transformers ---------------------------------------------------------------------


def test_stored_policy_is_applied_by_the_processor_and_a_load_warns_once(published, tokenizer, tmp_path, caplog):
    import logging
    import shutil

    from transformers import LogitsProcessorList

    from hf_s1 import BudgetError, BudgetForcingLogitsProcessor, load_model

    folder = shutil.copytree(published, tmp_path / "stored")  # a name no earlier load has warned about
    with caplog.at_level(logging.WARNING, logger="hf_s1"):
        model, tok = load_model(folder)
        load_model(folder)
    warnings = [r for r in caplog.records if "stores a thinking budget" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].name.startswith("hf_s1.")
    assert "BudgetForcingLogitsProcessor.from_model" in warnings[0].getMessage()

    stored = model.generation_config.thinking_budget  # {"version", "budget", "think_format"}
    assert set(stored) == {"version", "budget", "think_format"}
    inputs = _chat_inputs(tok)
    width = inputs["input_ids"].shape[1]
    for processor in (BudgetForcingLogitsProcessor.from_model(model, tok), BudgetForcingLogitsProcessor(tok, stored),
                      BudgetForcingLogitsProcessor(tok, BudgetPolicy(BUDGET, "s1"))):
        assert processor.budgets == [BUDGET] and processor.think_format.name == "s1"
        out = model.generate(**inputs, logits_processor=LogitsProcessorList([processor]), max_new_tokens=30,
                             do_sample=False)
        stats = processor.stats(out[:, width:])[0]
        assert (stats.thinking_tokens, stats.capped) == (6, True)

    plain, _ = load_model(None)
    with pytest.raises(BudgetError, match="no stored thinking budget"):
        BudgetForcingLogitsProcessor.from_model(plain, tok)


def test_pipeline_with_the_stored_policy_keeps_thinking_and_answer_apart(published, tokenizer):
    from transformers import LogitsProcessorList, pipeline

    from hf_s1 import BudgetForcingLogitsProcessor

    model = AutoModelForCausalLM.from_pretrained(published)
    pipe = pipeline("text-generation", model=model, tokenizer=tokenizer)
    processor = BudgetForcingLogitsProcessor.from_model(model, tokenizer)
    text = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=False,
                                         add_generation_prompt=True)
    run = dict(logits_processor=LogitsProcessorList([processor]), max_new_tokens=30, do_sample=False,
               return_full_text=False)
    # The model's tokenizer declares its markers (a response template), so the pipeline keeps special tokens, the
    # s1 markers among them, without being asked.
    generated = pipe(text, **run)[0]["generated_text"]
    assert generated == pipe(text, skip_special_tokens=False, **run)[0]["generated_text"]
    fmt = processor.think_format
    thinking, ended, answer = generated.partition(fmt.think_end)
    assert thinking.startswith(fmt.think_start) and ended and answer.lstrip().startswith("Final Answer:")
    reference = generate_with_budget(model, tokenizer, PROMPT, BUDGET, think_format="s1")[0]
    assert thinking[len(fmt.think_start):].strip() == reference.thinking
