"""End-to-end sweeps on the real SmolLM2-135M-Instruct over the small arithmetic fixture: budget forcing's
Control, the report's plot, resuming a killed sweep, the sampled baselines, and the command line."""

import json
from pathlib import Path

import pytest

from hf_s1.eval import (
    EvalError, TransformersEngine, expand_runs, load_benchmark, read_samples, run_sweep, summarize, write_report,
)
from hf_s1.eval.cli import main as eval_main

FIXTURE = Path(__file__).parent / "fixtures" / "arithmetic.jsonl"
CAPS, WAITS = [8, 16], [0, 1]


class CountingEngine:
    """The real engine, counting the prompts it generates for, optionally killed after some calls."""

    def __init__(self, engine, fail_after=None):
        self.engine, self.fail_after, self.calls, self.prompts = engine, fail_after, 0, 0
        self.name = engine.name

    def generate(self, prompts, budgets, **kwargs):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt  # what Ctrl-C or a kill does to a sweep in the middle of its batches
        self.calls += 1
        self.prompts += len(prompts)
        return self.engine.generate(prompts, budgets, **kwargs)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny batches of a 135M model gain little from a second thread, and on a shared 2-core machine
    # OpenMP spin-waiting across busy cores made generation up to 10x slower.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def engine(model, tokenizer):
    return TransformersEngine(model, tokenizer, batch_size=3)


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("arithmetic", data=FIXTURE)


@pytest.fixture(scope="module")
def runs():
    return expand_runs(["budget-forcing"], max_thinking=CAPS, num_waits=WAITS, max_answer_tokens=12)


@pytest.fixture(scope="module")
def full_sweep(tmp_path_factory, engine, bench, runs):
    out = tmp_path_factory.mktemp("full")
    counting = CountingEngine(engine)
    run_sweep(counting, bench, runs, out, batch_size=3, progress=False)
    return out, counting


def test_budget_forcing_sweep_has_full_control(full_sweep, bench):
    out, counting = full_sweep
    records = read_samples(out)
    assert len(records) == len(bench) * len(CAPS) * len(WAITS) == counting.prompts
    for r in records:
        cap = r["budget"]["max_thinking_tokens"]
        assert r["thinking_tokens"] <= cap and r["a_max"] == cap
        assert r["waits"] <= r["budget"]["num_waits"]
        assert set(r) >= {"id", "method", "budget", "thinking_tokens", "waits", "extracted", "correct"}
    # The cap cuts with "Final Answer:", so every sample has an answer line to read.
    assert all(r["capped"] for r in records if r["thinking_tokens"] == r["budget"]["max_thinking_tokens"])
    summary = summarize(out)
    bf = next(m for m in summary.methods if m.method == "budget-forcing")
    assert bf.control == 100.0 and bf.runs == len(CAPS) * len(WAITS)
    assert all(p.control == 100.0 for p in summary.points)
    # Larger caps buy more thinking on average.
    by_cap = {c: [p.thinking for p in summary.points if p.a_max == c] for c in CAPS}
    assert min(by_cap[16]) > max(by_cap[8]) - 1e-9


def test_report_writes_table_and_readable_plot(full_sweep):
    import matplotlib.image as mpimg

    out, _ = full_sweep
    paths = write_report(out)
    table = paths["markdown"].read_text()
    assert "| budget-forcing | accuracy | 4 | 100 % |" in table and "max=16,waits=1" in table
    assert "5 questions" in table and "partial" not in table  # the whole local benchmark (5 rows, no --limit)
    image = mpimg.imread(paths["plot"])
    assert image.shape[0] >= 600 and image.shape[1] >= 1000  # 8.4 x 4.8 in at 150 dpi
    assert image[..., :3].std() > 0.05  # not a blank canvas: axes, lines and labels are drawn
    data = json.loads(paths["json"].read_text())
    assert {p["run"] for p in data["points"]} == {f"max={c},waits={w}" for c in CAPS for w in WAITS}


def test_resume_after_interruption_gives_the_same_file(tmp_path, full_sweep, engine, bench, runs):
    full_out, _ = full_sweep
    killed = CountingEngine(engine, fail_after=3)  # dies inside the second run (2 batches per run)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(killed, bench, runs, tmp_path, batch_size=3, progress=False)
    written = len(read_samples(tmp_path))
    assert written == 3 + 2 + 3  # two whole batches of the first run, one of the second
    resumed = CountingEngine(engine)
    run_sweep(resumed, bench, runs, tmp_path, batch_size=3, progress=False)
    assert resumed.prompts == len(bench) * len(runs) - written  # finished samples were not recomputed
    assert (tmp_path / "samples.jsonl").read_bytes() == (full_out / "samples.jsonl").read_bytes()
    # Resuming a finished sweep generates nothing; a different sweep in the same folder is refused.
    again = CountingEngine(engine)
    run_sweep(again, bench, runs, tmp_path, batch_size=3, progress=False)
    assert again.calls == 0
    with pytest.raises(EvalError, match="another --out"):
        run_sweep(again, bench, runs, tmp_path, batch_size=2, progress=False)


def test_torn_last_line_is_repaired_on_resume(tmp_path, engine, bench):
    runs = expand_runs(["budget-forcing"], max_thinking=[4], max_answer_tokens=4)
    run_sweep(engine, bench, runs, tmp_path, batch_size=5, progress=False)
    path = tmp_path / "samples.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][:20])  # killed in the middle of writing the last record
    assert len(read_samples(tmp_path)) == 4
    run_sweep(engine, bench, runs, tmp_path, batch_size=5, progress=False)
    records = read_samples(tmp_path)
    assert len(records) == 5 and path.read_text().endswith("\n")
    assert sorted(r["id"] for r in records) == sorted(q.id for q in bench.questions)


def test_sampled_baselines(tmp_path, engine, bench):
    small = load_benchmark("arithmetic", data=FIXTURE, limit=2)
    runs = expand_runs(["rejection-sampling", "majority-vote"], max_thinking=[6], samples=[1, 2], max_tries=2,
                       thinking_ceiling=12, max_answer_tokens=6)
    run_sweep(engine, small, runs, tmp_path, batch_size=4, seed=3, progress=False)
    records = read_samples(tmp_path)
    rs = [r for r in records if r["method"] == "rejection-sampling"]
    mv = [r for r in records if r["method"] == "majority-vote"]
    assert len(rs) == 2 and len(mv) == 4
    for r in rs:
        assert 1 <= r["tries"] <= 2
        assert r["accepted"] == (r["thinking_tokens"] <= 6)
        assert r["thinking_tokens"] <= 7  # a draw past the bound is cut at N + 1, never finished
        assert r["tries"] == 2 or r["accepted"]
    assert all(r["thinking_tokens"] <= 12 and r["seed"] is not None for r in mv)
    points = {(p.method, p.k): p for p in summarize(tmp_path).points}
    assert set(points) == {("rejection-sampling", 1), ("majority-vote", 1), ("majority-vote", 2)}
    assert points[("majority-vote", 2)].thinking == pytest.approx(
        sum(r["thinking_tokens"] for r in mv) / 2)  # 2 questions, compute summed over both votes


def test_command_line_eval_and_report(tmp_path, default_model_dir, capsys):
    out = tmp_path / "cli"
    code = eval_main(["eval", "--benchmark", "arithmetic", "--data", str(FIXTURE), "--limit", "3",
                      "--model", str(default_model_dir), "--method", "budget-forcing,token-conditional",
                      "--max-thinking", "6", "--thinking-ceiling", "12", "--max-answer", "6",
                      "--out", str(out), "--no-progress", "--no-report"])
    assert code == 0 and len(read_samples(out)) == 6
    assert eval_main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| budget-forcing | accuracy | 1 | 100 % |" in printed and (out / "scaling.png").stat().st_size > 10_000
    assert "3 of 5 questions (partial run)" in printed and "**Control**:" in printed  # --limit 3 of 5
    tc = [r for r in read_samples(out) if r["method"] == "token-conditional"]
    assert all(r["budget"]["max_thinking_tokens"] == 12 and r["a_max"] == 6 for r in tc)
    # Bad input: a typed error and exit code 2, not a traceback.
    assert eval_main(["eval", "--benchmark", "amc23", "--out", str(tmp_path / "x")]) == 2
    assert "--data" in capsys.readouterr().err
