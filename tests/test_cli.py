"""`hf-s1 generate` on the embedded default model, as a user runs it."""

import json
import os
import subprocess
import sys

HF_S1 = [sys.executable, "-m", "hf_s1.cli"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def test_generate_json_honours_every_bound():
    args = ["generate", "What is 17 * 23?", "Is 221 prime?", "--min-thinking", "16", "--max-thinking", "32",
            "--num-waits", "2", "--max-answer", "8", "--json"]
    proc = subprocess.run([*HF_S1, *args], capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["prompt"] for r in rows] == ["What is 17 * 23?", "Is 221 prime?"]
    for r in rows:
        assert set(r) >= {"thinking", "answer", "thinking_tokens", "answer_tokens", "waits", "capped"}
        assert 16 <= r["thinking_tokens"] <= 32
        assert r["answer_tokens"] <= 8
        assert r["capped"] == (r["thinking_tokens"] == 32 and r["answer"].startswith("Final Answer:"))


def test_generate_takes_the_papers_settings():
    """s1's evaluation shape: "auto" cap from the allowance, Waits, the s1 profile. A run with more Waits than it
    can use stops thinking exactly at the "auto" cap."""
    args = ["generate", "What is 17 * 23?", "--max-thinking", "auto", "--num-waits", "200", "--profile", "s1",
            "--max-new-tokens", "170", "--max-answer", "4", "--json"]
    proc = subprocess.run([*HF_S1, *args], capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (row,) = [json.loads(line) for line in proc.stdout.splitlines()]
    # auto = 170 - prompt (42 tokens with the embedded model's template) - start 2 - (end 2 + "\n" 1 + prefix 3) - 100
    assert row["thinking_tokens"] == 20 and row["capped"] and row["answer_tokens"] <= 4
    bad = subprocess.run([*HF_S1, "generate", "hi", "--max-thinking", "lots"], capture_output=True, text=True, env=ENV,
                         timeout=600)
    assert bad.returncode == 2 and 'a number of tokens or "auto"' in bad.stderr


def test_bad_budget_is_a_clear_error_not_a_traceback():
    proc = subprocess.run([*HF_S1, "generate", "hi", "--min-thinking", "10", "--max-thinking", "5"],
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 2
    assert "lower the minimum or raise the maximum" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_generate_on_vllm_matches_transformers_and_keeps_stdout_json():
    args = ["generate", "What is 2+3?", "Is 7 prime?", "--max-thinking", "16", "--min-thinking", "8",
            "--max-answer", "8", "--json"]
    rows = {}
    for engine in ("transformers", "vllm"):
        proc = subprocess.run([*HF_S1, *args, "--engine", engine], capture_output=True, text=True, env=ENV, timeout=900)
        assert proc.returncode == 0, proc.stderr[-2000:]
        rows[engine] = [json.loads(line) for line in proc.stdout.splitlines()]  # every stdout line is JSON
    assert rows["vllm"] == rows["transformers"]
    assert all(8 <= r["thinking_tokens"] <= 16 for r in rows["vllm"])
