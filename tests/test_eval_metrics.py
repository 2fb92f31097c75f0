"""The paper's metrics and the report's tables, against hand-computed values."""

import json

import pytest

from hf_s1.eval import EvalError, control, majority_vote, pass_at_k, performance, scaling, summarize, render_markdown


def test_control_counts_runs_within_bounds():
    # Token-conditional style: 2 of 5 runs kept their average under the asked budget -> 40 % (Table 3's shape).
    thinking = [400, 1100, 1900, 4500, 9000]
    budgets = [512, 1024, 2048, 4096, 8192]
    assert control(thinking, a_max=budgets) == pytest.approx(2 / 5)
    assert control([10, 20, 30], a_min=15, a_max=30) == pytest.approx(2 / 3)
    assert control([10, 20], a_min=None, a_max=None) == 1.0
    with pytest.raises(EvalError, match="one per run"):
        control([1, 2, 3], a_max=[1, 2])
    with pytest.raises(EvalError):
        control([])


def test_scaling_is_the_mean_pairwise_slope():
    # Hand computation: points (1000, 20), (2000, 30), (4000, 40), given out of order.
    # slopes: (30-20)/1000 = 0.01, (40-20)/3000 = 0.006667, (40-30)/2000 = 0.005 -> mean 0.0072222
    assert scaling([4000, 1000, 2000], [40, 20, 30]) == pytest.approx((0.01 + 10 / 1500 + 0.005) / 3)
    # A falling curve has a negative slope (rejection sampling's shape in Table 3).
    assert scaling([100, 200], [50, 40]) == pytest.approx(-0.1)
    # Equal thinking lengths form no slope; one distinct length gives no scaling at all.
    assert scaling([100, 100, 300], [10, 20, 30]) == pytest.approx(((30 - 10) / 200 + (30 - 20) / 200) / 2)
    assert scaling([100, 100], [1, 2]) is None
    with pytest.raises(EvalError):
        scaling([1, 2], [1])


def test_performance_pass_at_k_and_votes():
    assert performance([26.7, 56.7, 50.0]) == 56.7
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 4, 2) == 1.0
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)
    with pytest.raises(EvalError):
        pass_at_k(3, 4, 1)
    assert majority_vote(["7", "9", "9", None]) == 1
    assert majority_vote(["a", "b"]) == 0
    assert majority_vote([None]) is None


def _sweep_folder(tmp_path, runs, records):
    (tmp_path / "sweep.json").write_text(json.dumps({"benchmark": "toy", "model": "m", "engine": "transformers", "runs": runs}))
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return tmp_path


def _rec(method, run, qid, thinking, correct, sample=0, vote_key=None, **extra):
    return {"id": qid, "method": method, "run": run, "sample": sample, "thinking_tokens": thinking, "correct": correct,
            "waits": 0, "capped": False, "vote_key": vote_key, **extra}


def test_summary_reproduces_table3_shape(tmp_path):
    """Two methods over two budgets each, 2 questions per run: Control / Scaling / Performance by hand."""
    runs = [
        {"method": "budget-forcing", "label": "max=100,waits=0", "a_min": None, "a_max": 100, "vote_k": []},
        {"method": "budget-forcing", "label": "max=200,waits=0", "a_min": None, "a_max": 200, "vote_k": []},
        {"method": "token-conditional", "label": "N=100", "a_min": None, "a_max": 100, "vote_k": []},
        {"method": "token-conditional", "label": "N=200", "a_min": None, "a_max": 200, "vote_k": []},
        {"method": "class-conditional", "label": "short", "a_min": None, "a_max": None, "vote_k": []},
    ]
    recs = [
        _rec("budget-forcing", "max=100,waits=0", "q1", 100, False), _rec("budget-forcing", "max=100,waits=0", "q2", 80, True),
        _rec("budget-forcing", "max=200,waits=0", "q1", 200, True), _rec("budget-forcing", "max=200,waits=0", "q2", 180, True),
        # token-conditional overshoots its first budget (avg 150 > 100), keeps the second (avg 190 <= 200)
        _rec("token-conditional", "N=100", "q1", 200, True), _rec("token-conditional", "N=100", "q2", 100, True),
        _rec("token-conditional", "N=200", "q1", 250, False), _rec("token-conditional", "N=200", "q2", 130, False),
        _rec("class-conditional", "short", "q1", 50, True), _rec("class-conditional", "short", "q2", 70, False),
    ]
    summary = summarize(_sweep_folder(tmp_path, runs, recs))
    table = {m.method: m for m in summary.methods}
    bf, tc, cc = table["budget-forcing"], table["token-conditional"], table["class-conditional"]
    # budget forcing: points (90, 50 %), (190, 100 %): slope 0.5 %/token = 500 per 1k; control 100 %
    assert (bf.control, bf.performance) == (100.0, 100.0)
    assert bf.scaling_per_1k == pytest.approx(500.0)
    # token-conditional: points (150, 100 %), (190, 0 %): slope -2.5 %/token; control 1 of 2 runs
    assert (tc.control, tc.performance) == (50.0, 100.0)
    assert tc.scaling_per_1k == pytest.approx(-2500.0)
    # class-conditional sets no bound: no Control; one point: no Scaling
    assert cc.control is None and cc.scaling_per_1k is None and cc.performance == 50.0
    point = next(p for p in summary.points if p.run == "N=100")
    assert (point.thinking, point.control) == (150.0, 50.0)  # per-sample control: q2 within, q1 over
    md = render_markdown(summary)
    assert "| budget-forcing | accuracy | 2 | 100 % | 500.00 | 100.0 |" in md
    assert "| token-conditional | accuracy | 2 | 50 % | -2500.00 | 100.0 |" in md
    assert "| class-conditional | accuracy | 1 | n/a | n/a | 50.0 |" in md


def test_majority_vote_points(tmp_path):
    run = {"method": "majority-vote", "label": "k=3", "a_min": None, "a_max": None, "vote_k": [1, 3]}
    recs = [
        # q1: samples say 4 (wrong), 5, 5 -> maj@1 wrong, maj@3 right
        _rec("majority-vote", "k=3", "q1", 10, False, 0, "4"), _rec("majority-vote", "k=3", "q1", 20, True, 1, "5"),
        _rec("majority-vote", "k=3", "q1", 30, True, 2, "5"),
        # q2: 7 (right), no answer, 8 -> maj@1 right, maj@3: 7 and 8 tie, 7 came first -> right
        _rec("majority-vote", "k=3", "q2", 40, True, 0, "7"), _rec("majority-vote", "k=3", "q2", 50, False, 1, None),
        _rec("majority-vote", "k=3", "q2", 60, False, 2, "8"),
    ]
    points = {p.k: p for p in summarize(_sweep_folder(tmp_path, [run], recs)).points}
    assert points[1].accuracy == 50.0 and points[3].accuracy == 100.0
    assert points[1].thinking == 25.0  # (10 + 40) / 2
    assert points[3].thinking == 105.0  # (60 + 150) / 2: compute summed over the votes
    assert points[3].pass_at_1 == pytest.approx(50.0)
    assert (points[1].metric, points[3].metric, points[3].run) == ("maj@1", "maj@3", "maj@3")
    (method,) = summarize(_sweep_folder(tmp_path, [run], recs)).methods
    assert (method.metric, method.runs, method.performance) == ("maj@k", 2, 100.0)


def test_pass_at_1_over_samples_is_the_mean_share_per_question(tmp_path):
    """pass@1:N_samples (lighteval's PassAtK(k=1, n=N)): the mean over questions of c_i / n, reported per
    setting and summarized apart from the greedy run of the same setting."""
    greedy = {"method": "budget-forcing", "label": "max=100,waits=1", "a_min": None, "a_max": 100, "vote_k": []}
    sampled = dict(greedy, label="max=100,waits=1,pass@1:4_samples", samples=4, do_sample=True, temperature=0.6)
    recs = [_rec("budget-forcing", greedy["label"], "q1", 90, True), _rec("budget-forcing", greedy["label"], "q2", 90, False)]
    # q1: 3 of 4 correct, q2: 0 of 4; thinking per sample 10..80
    for q, flags in (("q1", [True, True, False, True]), ("q2", [False] * 4)):
        recs += [_rec("budget-forcing", sampled["label"], q, 10 * (i + 1) + (40 if q == "q2" else 0), c, sample=i)
                 for i, c in enumerate(flags)]
    summary = summarize(_sweep_folder(tmp_path, [greedy, sampled], recs))
    points = {p.run: p for p in summary.points}
    s = points["max=100,waits=1,pass@1:4_samples"]
    assert s.metric == "pass@1:4_samples" and s.samples == 4 and s.temperature == 0.6
    assert s.accuracy == pytest.approx(100 * (3 / 4 + 0) / 2) == s.pass_at_1
    assert s.thinking == pytest.approx(sum(10 * (i + 1) for i in range(4)) / 4 + 20)  # per sample, not summed
    assert points["max=100,waits=1"].metric == "accuracy" and points["max=100,waits=1"].temperature is None
    rows = {(m.method, m.metric): m for m in summary.methods}
    assert set(rows) == {("budget-forcing", "accuracy"), ("budget-forcing", "pass@1:4_samples")}
    assert rows["budget-forcing", "pass@1:4_samples"].performance == pytest.approx(37.5)
    md = render_markdown(summary)
    assert "| budget-forcing | pass@1:4_samples | 1 | 100 % | n/a | 37.5 |" in md
    assert "| budget-forcing | max=100,waits=1,pass@1:4_samples | pass@1:4_samples | 2 | 37.5 |" in md
