"""A cancelled or abandoned Space request stops generating: real gradio_client jobs against the served app on
127.0.0.1 are cancelled, or their event stream is dropped, mid-generation; every generation ends at the first
decoding step after the cancel (counted, not timed: a loaded machine makes steps slow, not more numerous), the worker
threads go away, and a fresh request is answered in its normal time. The cancellations run beside a CPU-bound process
that keeps every core busy, as a loaded machine (or a parallel test run) would."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

CONCURRENCY = 2


@pytest.fixture(scope="module")
def served(serve_space):
    with serve_space(max_thinking_tokens=512, max_answer_tokens=8, concurrency=CONCURRENCY, queue_size=16) as served:
        yield served


def _wait(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# A heavy request: at least 400 thinking tokens (tens of seconds on this CPU), compared with an unbounded run.
HEAVY = ("Explain the history of mathematics in detail.", [], [], 400, 512, 0, "Wait", "", 0, True)
LIGHT = ("What is 2+3?", [], [], 0, 4, 0, "Wait", "", 0, False)


@pytest.fixture
def step_counts(served):
    """Every cancellation check the Space's generations make, counted per generation: how many decoding steps each
    one took after its request was cancelled (the Space's `_Cancelled` stopping criterion, recorded)."""
    _, runtime = served
    space = type(runtime).start.__globals__  # the Space module's namespace, where `start` finds `_Cancelled`
    original = space["_Cancelled"]
    seen: list = []

    class Recording(original):
        def __init__(self, event):
            super().__init__(event)
            self.after_cancel = 0
            self.steps = 0
            seen.append(self)

        def __call__(self, input_ids, scores, **kwargs):
            self.after_cancel += self.event.is_set()
            self.steps += 1
            return super().__call__(input_ids, scores, **kwargs)

    space["_Cancelled"] = Recording
    yield seen
    space["_Cancelled"] = original


@pytest.fixture
def loaded_machine():
    """A separate process that keeps every core busy with matrix products for as long as the test runs."""
    burn = ("import torch, time\n"
            f"torch.set_num_threads({os.cpu_count() or 1})\n"
            "a = torch.randn(1024, 1024)\n"
            "while True: a = (a @ a).tanh()\n")
    proc = subprocess.Popen([sys.executable, "-c", burn], env={**os.environ, "OMP_NUM_THREADS": str(os.cpu_count())})
    time.sleep(2.0)  # past its start-up
    assert proc.poll() is None, "the CPU-bound process did not start"
    yield proc
    proc.kill()
    proc.wait()


def _generation_threads() -> int:
    # SpaceRuntime.start runs each generation in two threads named "hf-s1-<tag>" and "hf-s1-<tag>-generate".
    return sum(1 for t in threading.enumerate() if t.name.startswith("hf-s1-"))


def _cpu_busy(window: float = 1.0) -> float:
    start = time.process_time()
    time.sleep(window)
    return time.process_time() - start


def test_cancelled_and_dropped_jobs_stop_generating(served, step_counts, loaded_machine):
    from gradio_client import Client

    url, runtime = served
    client = Client(url, verbose=False)
    t0 = time.monotonic()
    assert client.predict(*LIGHT, api_name="/ask")[3]["forced"]["thinking_tokens"] <= 4
    light_time = time.monotonic() - t0

    # Six heavy compare requests (two generations each) from six visitors (gradio cancels a session's running tasks
    # as a whole, so one client per visitor, as in a browser): cancel them all mid-generation, the queued ones first
    # (gradio 6.31 can lose a cancel that arrives while its job is being taken from the queue: /cancel cancels the
    # session's running tasks and only then removes the job from the queue; docs/space.md).
    visitors = [Client(url, verbose=False) for _ in range(6)]
    jobs = [visitor.submit(*HEAVY, api_name="/ask") for visitor in visitors]
    assert _wait(lambda: runtime.in_flight >= 2 * CONCURRENCY, 60), "the heavy requests never started"
    # Every job has reached the server's queue (a job still being submitted has no event id to cancel it by).
    assert _wait(lambda: all(job.communicator.event_id for job in jobs), 60), "the jobs never reached the queue"
    time.sleep(1.0)  # well into generation
    for job in reversed(jobs):
        job.cancel()
    # Each running generation stops at its next decoding step, whatever the load; a queued job that gradio still
    # starts after its cancel stops at its first.
    assert _wait(lambda: runtime.in_flight == 0, 120), (
        f"{runtime.in_flight} generations still running after cancel; per generation (cancel set, steps after it, "
        f"steps): {[(c.event.is_set(), c.after_cancel, c.steps) for c in step_counts]}")
    assert _wait(lambda: _generation_threads() == 0, 60), [t.name for t in threading.enumerate()]
    assert step_counts and all(c.after_cancel <= 1 for c in step_counts), [c.after_cancel for c in step_counts]
    started = len(step_counts)
    assert _cpu_busy() < 0.3  # this process's cores are idle again (its CPU seconds over one second)

    # A client that drops its event stream mid-generation (closes the connection) is treated the same.
    import httpx

    with httpx.Client(base_url=url, timeout=30) as http:
        event = http.post("gradio_api/call/ask", json={"data": list(HEAVY)}).json()["event_id"]
        with http.stream("GET", f"gradio_api/call/ask/{event}") as stream:
            lines = stream.iter_lines()
            assert _wait(lambda: runtime.in_flight >= 1, 60)
            for _ in range(20):  # read a few updates, then hang up
                next(lines)
    assert _wait(lambda: runtime.in_flight == 0, 120), "the dropped request kept generating"
    assert _wait(lambda: _generation_threads() == 0, 60), [t.name for t in threading.enumerate()]
    assert len(step_counts) > started and all(c.after_cancel <= 1 for c in step_counts[started:])

    # The server is responsive: a fresh light request takes its normal time.
    t0 = time.monotonic()
    assert client.predict(*LIGHT, api_name="/ask")[3]["forced"]["thinking_tokens"] <= 4
    assert time.monotonic() - t0 < max(10.0, 5 * light_time)


def test_nan_slider_in_a_raw_http_body_gets_a_named_error(served):
    import httpx

    url, _ = served
    body = '{"data": ["What is 2+3?", [], [], NaN, 4, 0, "Wait", "", 0, false]}'  # what a hand-made client sends
    with httpx.Client(base_url=url, timeout=60) as http:
        event = http.post("gradio_api/call/ask", content=body, headers={"content-type": "application/json"})
        assert event.status_code == 200, event.text
        stream = http.get(f"gradio_api/call/ask/{event.json()['event_id']}").text
    assert "event: error" in stream and "min thinking tokens" in stream, stream[-500:]
