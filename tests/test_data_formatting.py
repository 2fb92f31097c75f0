"""Loading s1K-style files and formatting rows into think-format conversations (fixtures in the Hub schema)."""

import json
from pathlib import Path

import pytest

from hf_s1.data import DataError, TraceSource, format_s1k, get_trace_source, load_s1k, to_messages
from hf_s1.formats import R1_FORMAT, S1_FORMAT
from hf_s1.prompts import build_prompt

FIXTURES = Path(__file__).parent / "fixtures" / "s1k"
S1K_COLUMNS = {"solution", "question", "cot_type", "source_type", "metadata", "cot", "thinking_trajectories", "attempt"}


def test_load_jsonl_parquet_and_folder(tmp_path):
    ds = load_s1k(FIXTURES / "s1k_rows.jsonl")
    assert set(ds.column_names) == S1K_COLUMNS and ds.num_rows == 4
    ds.to_parquet(str(tmp_path / "part.parquet"))
    again = load_s1k(tmp_path / "part.parquet")
    assert again["question"] == ds["question"]
    assert load_s1k(str(tmp_path))["attempt"] == ds["attempt"]  # a folder of parquet files


def test_bad_sources_are_typed_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_s1k(tmp_path / "missing.jsonl")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="jsonl"):
        load_s1k(tmp_path / "notes.txt")


def test_trace_source_detection_on_s1k_and_s1k11():
    s1k = load_s1k(FIXTURES / "s1k_rows.jsonl")
    s11 = load_s1k(FIXTURES / "s1k11_rows.jsonl")
    assert get_trace_source(None, s1k.column_names).name == "s1k"
    assert get_trace_source(None, s11.column_names).name == "deepseek"  # s1.1 trains on DeepSeek-R1 traces
    row = s11[0]
    deepseek = to_messages(row)[-1]["content"]
    gemini = to_messages(row, trace="gemini")[-1]["content"]
    assert deepseek.startswith("<|im_start|>think\nOkay, let me think.")
    assert row["gemini_thinking_trajectory"].strip() in gemini and "Okay, let me think." not in gemini
    with pytest.raises(DataError, match="deepseek"):
        to_messages(s1k[0], trace="deepseek")  # the column is not there: the error lists the presets
    custom = TraceSource("mine", "gemini_thinking_trajectory", "deepseek_attempt")
    assert "**Final result**" in to_messages(row, trace=custom)[-1]["content"]


@pytest.mark.parametrize("fmt", [S1_FORMAT, R1_FORMAT])
def test_messages_use_exactly_the_think_markers(fmt):
    for row in load_s1k(FIXTURES / "s1k_rows.jsonl"):
        user, assistant = to_messages(row, think_format=fmt.name)
        assert user == {"role": "user", "content": row["question"]}
        content = assistant["content"]
        trace = row["thinking_trajectories"][0].strip()
        assert content.startswith(fmt.think_start + fmt.after_start + trace + fmt.before_end + fmt.think_end + fmt.after_end)
        answer = content.split(fmt.think_end + fmt.after_end, 1)[1]
        assert answer.startswith("Answer: ") and answer.count("Answer:") == 1  # prefixed once, never doubled
        assert answer.endswith(row["attempt"].strip().removeprefix("Answer: "))


def test_text_output_continues_the_inference_prompt(tokenizer):
    """The rendered training text starts with exactly the prompt budget forcing builds at inference."""
    ds = load_s1k(FIXTURES / "s1k_rows.jsonl")
    texts = format_s1k(ds, output="text", tokenizer=tokenizer, system_prompt="Be precise.")
    for row, text in zip(ds, texts["text"]):
        prompt = build_prompt(tokenizer, row["question"], S1_FORMAT, system_prompt="Be precise.")
        assert text.startswith(prompt)
        assert text.endswith(row["attempt"].strip().removeprefix("Answer: ") + "<|im_end|>\n")


def test_format_errors_name_the_fix(tokenizer):
    ds = load_s1k(FIXTURES / "s1k_rows.jsonl")
    with pytest.raises(DataError, match="tokenizer="):
        format_s1k(ds, output="text")
    with pytest.raises(DataError, match="quality_filter"):
        to_messages({"question": "q", "thinking_trajectories": [], "attempt": "a"})
    with pytest.raises(DataError, match="question"):
        to_messages({"question": " ", "thinking_trajectories": ["t"], "attempt": "a"})
    kept = format_s1k(ds, keep_columns=True)
    assert {"messages", "question", "source_type"} <= set(kept.column_names)
    assert json.dumps(kept[0]["messages"])  # plain JSON-serialisable chat
