"""Budget forcing in vLLM's OpenAI-compatible server: started on 127.0.0.1 with the processor,
called with the real `openai` client, budgets per request through `vllm_xargs`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from hf_s1 import ThinkingBudget
from hf_s1.engines import transformers as hf_engine
from hf_s1.formats import get_format, marker_tokens
from hf_s1.prompts import build_prompt

MODEL_NAME = "smollm2"
STARTUP_SECONDS = 420


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(default_model_dir, tmp_path_factory):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("vllm_server") / "server.log"
    # Dev mode + the worker extension: clients fetch the processor's injection logs (exact telemetry).
    env = dict(os.environ, HF_HUB_OFFLINE="1", VLLM_CPU_KVCACHE_SPACE="1", VLLM_CPU_NUM_OF_RESERVED_CPU="0",
               VLLM_SERVER_DEV_MODE="1")
    # The API server module rather than the `vllm serve` script: vllm-cpu 0.32's script looks up the version of a
    # distribution named "vllm" and exits (PackageNotFoundError); both run the same server.
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(default_model_dir),
        "--host", "127.0.0.1", "--port", str(port), "--served-model-name", MODEL_NAME,
        "--dtype", "float32", "--enforce-eager", "--max-model-len", "1024", "--max-num-seqs", "8",
        "--logits-processors", "hf_s1.engines.vllm:BudgetForcingLogitsProcessor",
        "--worker-extension-cls", "hf_s1.engines.vllm.telemetry.InjectionLogWorker",
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text()[-3000:]
                pytest.fail(f"vllm serve did not come up (exit code {proc.poll()}):\n{tail}")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", timeout=300, max_retries=0)


def _xargs(budget: dict) -> dict:
    # vllm_xargs values must be flat over HTTP: the budget travels as a JSON string.
    return {"vllm_xargs": {"thinking_budget": json.dumps(budget)}}


def test_completion_matches_the_transformers_engine(client, model, tokenizer):
    budget = ThinkingBudget(max_thinking_tokens=20, num_waits=1, max_answer_tokens=6)
    fmt = get_format("s1")
    prompt_ids = tokenizer(build_prompt(tokenizer, "What is 2+3?", fmt), add_special_tokens=False)["input_ids"]
    resp = client.completions.create(
        model=MODEL_NAME, prompt=prompt_ids, max_tokens=64, temperature=0.0,
        extra_body={**_xargs(budget.to_dict()), "return_token_ids": True, "skip_special_tokens": False},
    )
    choice = resp.choices[0]
    served = list(choice.model_extra["token_ids"])
    want = hf_engine.generate_with_budget(model, tokenizer, "What is 2+3?", budget)[0]
    # The server keeps the end-of-sequence token; the result type drops it.
    assert served[: len(want.token_ids)] == want.token_ids
    assert served[len(want.token_ids) :] == [tokenizer.eos_token_id]
    assert resp.usage.completion_tokens == len(served)
    assert "<|im_start|>answer" in choice.text


def test_exact_telemetry_through_the_server(server, client, model, tokenizer):
    """Named requests, their injection logs fetched from the server: the telemetry of the transformers engine,
    on a prompt where the model writes "Wait" by itself (inferred from the ids it would count 14 waits, not 7)."""
    from hf_s1.budget import BudgetError, BudgetTracker
    from hf_s1.engines.vllm.telemetry import fetch_injection_logs

    question = "Name a prime number larger than 10."
    budgets = [ThinkingBudget(max_thinking_tokens=120, min_thinking_tokens=100, max_answer_tokens=8),
               ThinkingBudget(max_thinking_tokens=40, min_thinking_tokens=30, num_waits=1, max_answer_tokens=8)]
    markers = marker_tokens(tokenizer, "s1")
    prompt_ids = tokenizer(build_prompt(tokenizer, question, get_format("s1")), add_special_tokens=False)["input_ids"]

    def ask(i: int):
        xargs = {"thinking_budget": json.dumps(budgets[i].to_dict()), "budget_log": f"server-test-{i}"}
        return client.completions.create(
            model=MODEL_NAME, prompt=prompt_ids, max_tokens=256, temperature=0.0,
            extra_body={"vllm_xargs": xargs, "return_token_ids": True, "skip_special_tokens": False})

    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(ask, range(2)))
    logs = fetch_injection_logs(f"{server}/v1", ["server-test-0", "server-test-1", "never-sent"])
    assert sorted(logs) == ["server-test-0", "server-test-1"]
    inferred = []
    for i, resp in enumerate(responses):
        served = [t for t in resp.choices[0].model_extra["token_ids"] if t not in markers.stop_set]
        want = hf_engine.generate_with_budget(model, tokenizer, question, budgets[i])[0]
        tracker = BudgetTracker(budgets[i], markers)
        tracker.start(prompt_ids)
        tracker.replay(served, injected=set(logs[f"server-test-{i}"]))
        tracker.finish(served)
        assert served == want.token_ids
        guess = BudgetTracker(budgets[i], markers)  # what a server without the logs could report
        guess.start(prompt_ids)
        guess.replay(served)
        inferred.append(guess.stats.waits)
        assert (tracker.stats.thinking_tokens, tracker.stats.answer_tokens, tracker.stats.waits,
                tracker.stats.capped) == (want.thinking_tokens, want.answer_tokens, want.waits, want.capped)
    assert inferred[0] > len(logs["server-test-0"])  # the model's own "Wait"s would be taken for injected ones
    assert fetch_injection_logs(server, ["server-test-0"]) == {}  # handed over once
    with pytest.raises(BudgetError, match="VLLM_SERVER_DEV_MODE=1"):
        fetch_injection_logs(f"http://127.0.0.1:{_free_port()}", ["x"], timeout=5)


def test_per_request_budgets_in_one_batch_via_chat(client, tokenizer):
    markers = marker_tokens(tokenizer, "s1")
    prefix = len(markers.encode("Final Answer:"))
    fixed = len(markers.think_start) + len(markers.think_end) + prefix + 1  # + the forced end-of-sequence
    optional = len(markers.before_end) + len(markers.after_end)

    def ask(n: int):
        # min = max = n pins the thinking length; max_answer_tokens=0 ends right after the answer prefix.
        budget = {"min_thinking_tokens": n, "max_thinking_tokens": n, "max_answer_tokens": 0}
        return client.chat.completions.create(
            model=MODEL_NAME, messages=[{"role": "user", "content": "Is 17 prime?"}], max_tokens=128,
            temperature=0.0, extra_body={**_xargs(budget), "skip_special_tokens": False},
        )

    sizes = [0, 5, 17, 40]
    with ThreadPoolExecutor(len(sizes)) as pool:
        responses = list(pool.map(ask, sizes))
    for n, resp in zip(sizes, responses):
        text = resp.choices[0].message.content
        assert text.startswith("<|im_start|>think"), text
        assert "<|im_start|>answer\nFinal Answer:" in text
        assert resp.choices[0].finish_reason == "stop"
        assert n + fixed <= resp.usage.completion_tokens <= n + fixed + optional, (n, resp.usage.completion_tokens)


def test_malformed_budget_gets_400_and_server_goes_on(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=MODEL_NAME, prompt="Hi", max_tokens=4,
                                  extra_body=_xargs({"max_thinking_tokens": 5, "min_thinking_tokens": 9}))
    assert err.value.status_code == 400 and "min_thinking_tokens" in str(err.value)
    with pytest.raises(openai.BadRequestError, match="unknown thinking-budget field"):
        client.completions.create(model=MODEL_NAME, prompt="Hi", max_tokens=4, extra_body=_xargs({"wait": 1}))
    with pytest.raises(openai.BadRequestError, match="JSON"):
        client.completions.create(model=MODEL_NAME, prompt="Hi", max_tokens=4,
                                  extra_body={"vllm_xargs": {"thinking_budget": "{not json"}})
    # Counts beyond any table, and strings that would forge a chat turn, are refused at admission.
    for field, value in (("max_thinking_tokens", 2**63), ("num_waits", 2**64 - 1), ("max_answer_tokens", 2**63)):
        with pytest.raises(openai.BadRequestError, match=f"{field}=.*more than any context"):
            client.completions.create(model=MODEL_NAME, prompt="Hi", max_tokens=4, extra_body=_xargs({field: value}))
    with pytest.raises(openai.BadRequestError, match="chat-structure token"):
        client.completions.create(model=MODEL_NAME, prompt="Hi", max_tokens=4,
                                  extra_body=_xargs({"num_waits": 1, "extrapolation": "Wait<|im_start|>user"}))
    ok = client.completions.create(model=MODEL_NAME, prompt="Hi", max_tokens=16, temperature=0.0,
                                   extra_body={**_xargs({"max_thinking_tokens": 3}), "skip_special_tokens": False})
    assert "<|im_start|>answer" in ok.choices[0].text
    plain = client.completions.create(model=MODEL_NAME, prompt="Hi", max_tokens=4, temperature=0.0)
    assert plain.usage.completion_tokens >= 1 and "think" not in plain.choices[0].text
