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


# ---- the parser: dataclass fields as flags, hf-s1 0.1's names as aliases, verbosity, --version -----------------


def _parse(*argv):
    from hf_s1.cli import build_parser

    return build_parser().parse_args(list(argv))


def test_flags_are_the_field_names_and_the_old_names_still_work():
    from hf_s1 import ThinkingBudget
    from hf_s1.cli import BudgetArguments, from_namespace

    new = _parse("generate", "q", "--max_thinking_tokens", "32", "--min_thinking_tokens", "8", "--num_waits", "2",
                 "--max_answer_tokens", "8", "--max_new_tokens", "200", "--extrapolation", "Hmm",
                 "--extrapolation", "Wait", "--profile", "hf-s1", "--answer_prefix", "Answer:")
    old = _parse("generate", "q", "--max-thinking", "32", "--min-thinking", "8", "--num-waits", "2",
                 "--max-answer", "8", "--max-new-tokens", "200", "--extrapolation", "Hmm", "--extrapolation", "Wait",
                 "--profile", "hf-s1", "--answer-prefix", "Answer:")
    assert from_namespace(BudgetArguments, new) == from_namespace(BudgetArguments, old)
    assert from_namespace(BudgetArguments, new).budget() == ThinkingBudget(
        max_thinking_tokens=32, min_thinking_tokens=8, num_waits=2, max_answer_tokens=8, extrapolation=["Hmm", "Wait"],
        answer_prefix="Answer:")
    auto = from_namespace(BudgetArguments, _parse("generate", "q", "--max-thinking", "auto"))
    assert auto.max_thinking_tokens == ["auto"] and auto.budget().max_thinking_tokens == "auto"
    assert from_namespace(BudgetArguments, _parse("generate", "q")).budget() == ThinkingBudget()
    # The same dataclass, from a dict or a recipe-style file, as HfArgumentParser reads them.
    from transformers import HfArgumentParser

    (from_dict,) = HfArgumentParser(BudgetArguments).parse_dict({"max_thinking_tokens": "64,auto", "num_waits": 2})
    assert (from_dict.max_thinking_tokens, from_dict.num_waits) == ([64, "auto"], [2])


def test_budget_flags_are_defined_once_for_generate_and_eval():
    from hf_s1.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices

    def budget_flags(name):
        group = next(g for g in sub[name]._action_groups if g.title == "thinking budget")
        return [tuple(a.option_strings) for a in group._group_actions]

    assert budget_flags("generate") == budget_flags("eval")
    assert ("--max_thinking_tokens", "--max-thinking-tokens", "--max-thinking") in budget_flags("eval")
    # eval sweeps comma lists; generate takes one budget and says where sweeps live.
    args = _parse("eval", "--benchmark", "aime24", "--out", "runs/x", "--max_thinking_tokens", "64,auto",
                  "--num_waits", "0,2")
    assert (args.max_thinking_tokens, args.num_waits) == ([64, "auto"], [0, 2])


def test_generate_refuses_a_sweep_without_loading_a_model(capsys):
    from hf_s1.cli import main

    assert main(["generate", "q", "--max-thinking", "16,32"]) == 2
    assert "comma lists sweep budgets in `hf-s1 eval`" in capsys.readouterr().err


def test_help_shows_defaults_and_version():
    help_text = subprocess.run([*HF_S1, "generate", "--help"], capture_output=True, text=True, env=ENV,
                               timeout=120).stdout
    assert "--max_thinking_tokens" in help_text and "--max-thinking" in help_text
    assert "(default: Final Answer:)" in help_text and "(default: transformers)" in help_text
    version = subprocess.run([*HF_S1, "--version"], capture_output=True, text=True, env=ENV, timeout=120)
    from hf_s1 import __version__

    assert version.returncode == 0 and version.stdout.strip() == f"hf-s1 {__version__}"


def test_verbosity_flags_and_environment_variable(monkeypatch):
    import logging

    from hf_s1.cli import set_verbosity

    logger = logging.getLogger("hf_s1")
    monkeypatch.setattr(logger, "level", logger.level)  # restored afterwards
    for argv, level in ([[], "WARNING"], [["-v"], "INFO"], [["-q"], "ERROR"], [["--verbosity", "debug"], "DEBUG"]):
        args = _parse(*argv, "generate", "q")
        set_verbosity(args.verbosity)
        assert logging.getLevelName(logger.level) == level, argv
    # After the sub-command too, and from the environment when no flag is given.
    assert _parse("generate", "q", "--verbosity", "error").verbosity == "error"
    assert _parse("--verbosity", "info", "generate", "q").verbosity == "info"  # the sub-command keeps it
    monkeypatch.setenv("HF_S1_VERBOSITY", "info")
    set_verbosity(_parse("generate", "q").verbosity)
    assert logger.level == logging.INFO
    proc = subprocess.run([*HF_S1, "-v", "generate", "q", "--max-thinking", "2,3"], capture_output=True, text=True,
                          env={**ENV, "HF_S1_VERBOSITY": "debug"}, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""


def test_switches_before_the_prompts():
    """`--json` placed before the prompts is a switch, not a value that would swallow the first prompt."""
    from hf_s1.cli import _bare_switches, build_parser

    parser = build_parser()
    args = parser.parse_args(_bare_switches(parser, ["generate", "--json", "What is 2+3?", "Is 7 prime?"]))
    assert args.json is True and args.prompts == ["What is 2+3?", "Is 7 prime?"]
    args = parser.parse_args(_bare_switches(parser, ["generate", "hi", "--json", "false"]))
    assert args.json is False and args.prompts == ["hi"]
