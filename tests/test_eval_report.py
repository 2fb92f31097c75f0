"""`hf-s1 report` and the scaling plot, on run folders written here (no model): Table 3's columns with their
definitions, partial runs said as such, and a plot whose lines, title and ticks say what was run."""

import json

from hf_s1.eval import METRIC_DEFINITIONS, render_markdown, scaling_figure, summarize, write_report
from hf_s1.eval.cli import main as eval_main


def _run(label, a_max, **extra):
    return {"method": "budget-forcing", "label": label, "a_min": None, "a_max": a_max, "vote_k": [], **extra}


def _folder(tmp_path, runs, points, *, questions=2, benchmark="math500", size=None, model="me/s1-smollm2"):
    """`points`: {label: [(thinking, correct) per question]}."""
    manifest = {"benchmark": benchmark, "model": model, "engine": "transformers",
                "question_ids": [f"q{i}" for i in range(questions)], "runs": runs}
    if size is not None:
        manifest["benchmark_size"] = size
    (tmp_path / "sweep.json").write_text(json.dumps(manifest))
    recs = [{"id": f"q{i}", "method": "budget-forcing", "run": label, "sample": 0, "thinking_tokens": t,
             "correct": c, "waits": 0, "capped": False}
            for label, rows in points.items() for i, (t, c) in enumerate(rows)]
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return tmp_path


def _caps_by_waits(tmp_path, **kw):
    runs = [_run(f"max={c},waits={w}", c) for w in (0, 1) for c in (256, 512, 1024)]
    acc = {0: [False, False], 1: [True, False]}
    points = {f"max={c},waits={w}": [(0.8 * c + 10 * w, acc[w][0] or c == 1024), (0.7 * c, acc[w][1])]
              for w in (0, 1) for c in (256, 512, 1024)}
    return _folder(tmp_path, runs, points, **kw)


def test_report_prints_table3_with_definitions_under_it(tmp_path, capsys):
    out = _caps_by_waits(tmp_path, questions=500)
    assert eval_main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    table = printed.index("| Method | Metric | Runs | Control | Scaling")
    row = printed.index("| budget-forcing | accuracy | 6 | 100 % |")
    definitions = [printed.index(d) for d in METRIC_DEFINITIONS]
    runs = printed.index("## Runs")
    assert table < row < min(definitions) and max(definitions) < runs  # the definitions sit under the table
    assert "**Control**" in printed and "**Scaling**" in printed and "**Performance**" in printed
    assert "1/|A| · Σ 1[a_min ≤ a ≤ a_max]" in printed and "max_a f(a)" in printed
    assert "500 questions" in printed and "partial" not in printed.lower().split("## control")[0]
    assert (out / "summary.md").read_text() == printed.split("table: ")[0].rstrip("\n") + "\n"


def test_partial_runs_say_so(tmp_path):
    out = _caps_by_waits(tmp_path, questions=2)  # math500 without a recorded size: the known 500
    summary = summarize(out)
    assert (summary.questions, summary.benchmark_size, summary.partial) == (2, 500, True)
    md = render_markdown(summary)
    assert "2 of 500 questions (partial run)" in md and "these figures are not math500 scores" in md
    data = json.loads(write_report(out)["json"].read_text())
    assert (data["questions"], data["benchmark_size"], data["partial"]) == (2, 500, True)
    # A benchmark of one's own: the size the sweep recorded decides.
    other = tmp_path / "own"
    other.mkdir()
    whole = summarize(_folder(other, [_run("max=8,waits=0", 8)], {"max=8,waits=0": [(8, True), (8, False)]},
                              benchmark="quiz", size=2))
    assert not whole.partial and whole.coverage == "2 questions"


def test_plot_has_one_labelled_line_per_setting(tmp_path):
    summary = summarize(_caps_by_waits(tmp_path, questions=4, size=500))
    fig = scaling_figure(summary)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["budget-forcing, waits=0", "budget-forcing, waits=1"]
    assert [len(line.get_xdata()) for line in ax.get_lines()] == [3, 3]  # each line joins the caps of one setting
    for line in ax.get_lines():
        assert list(line.get_xdata()) == sorted(line.get_xdata())
    title = ax.get_title()
    assert "math500" in title and "n=4 of 500, partial" in title and "me/s1-smollm2" in title
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks == [256.0, 512.0] or len(ticks) >= 3
    assert {a.get_text() for a in ax.texts} == {"max=256", "max=512", "max=1024"}


def test_plot_of_a_wait_sweep_at_one_auto_cap(tmp_path):
    runs = [_run(f"max=auto,waits={w},profile=s1", None) for w in (1, 2, 4, 6)]
    points = {f"max=auto,waits={w},profile=s1": [(900 + 100 * w, w >= 2), (950 + 90 * w, w >= 4)] for w in (1, 2, 4, 6)}
    summary = summarize(_folder(tmp_path, runs, points, questions=2, benchmark="aime24", model=None))
    ax = scaling_figure(summary).axes[0]
    (label,) = [t.get_text() for t in ax.get_legend().get_texts()]
    assert label == "budget-forcing, max=auto, profile=s1"
    assert sorted(a.get_text() for a in ax.texts) == ["waits=1", "waits=2", "waits=4", "waits=6"]
    assert "embedded" in ax.get_title() and "n=2 of 30" in ax.get_title()
    # Under two powers of two in range: the runs' own thinking lengths are the ticks.
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert len(labels) >= 3 and all(float(x) >= 900 for x in labels)
    (row,) = summary.methods
    assert row.control is None and row.runs == 4  # "auto" sets no bound known ahead: no Control
    assert row.performance == 100.0 and row.scaling_per_1k > 0


def test_pass_at_1_series_is_its_own_dashed_line(tmp_path):
    runs = [_run("max=64,waits=0", 64), _run("max=128,waits=0", 128),
            _run("max=64,waits=0,pass@1:2_samples", 64, samples=2, do_sample=True, temperature=0.6),
            _run("max=128,waits=0,pass@1:2_samples", 128, samples=2, do_sample=True, temperature=0.6)]
    points = {r["label"]: [(r["a_max"] - 4, True), (r["a_max"] - 8, False)] for r in runs}
    ax = scaling_figure(summarize(_folder(tmp_path, runs, points))).axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["budget-forcing, waits=0", "budget-forcing pass@1:2_samples, waits=0"]
    assert [line.get_linestyle() for line in ax.get_lines()] == ["-", "--"]
