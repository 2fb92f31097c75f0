"""Exact telemetry from vLLM: the processor's injection log, collected from the engine's workers.

The processor records, per request and generated position, whether it injected an extrapolation there (its own
decision; `BatchBudget(log_injections=True)`). A request that names itself with `extra_args["budget_log"]`
keeps that log after it finishes, until a client collects it with vLLM's `collective_rpc`:

- offline (`vllm.LLM`): `collect_injection_logs(llm, tags)`; `generate_with_budget` does it for every request;
- `vllm serve`: start it with `--worker-extension-cls hf_s1.engines.vllm.telemetry.InjectionLogWorker` and
  `VLLM_SERVER_DEV_MODE=1`, send each request with `vllm_xargs: {"budget_log": "<tag>"}` (and
  `return_token_ids: true`), then `fetch_injection_logs(server_url, tags)`, which posts
  `{"method": "hf_s1_injection_logs", "args": ["[\\"tag\\", ...]"]}` to vLLM's `/collective_rpc` (its development
  endpoint takes string arguments only). Without both settings a server cannot hand the logs out: its clients
  can only infer the telemetry from the ids (`BudgetTracker.replay` without `injected`).

`BudgetTracker.replay(ids, injected=positions)` turns the output ids and a log into the same telemetry the
transformers engine reports. Without a log, `replay` can only infer the decisions from the ids (see there).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from typing import Any

from ...budget import BudgetError
from .processor import BudgetForcingLogitsProcessor

__all__ = ["InjectionLogWorker", "RPC_METHOD", "WORKER_EXTENSION", "collect_injection_logs", "fetch_injection_logs",
           "injection_logs"]

logger = logging.getLogger(__name__)

RPC_METHOD = "hf_s1_injection_logs"
WORKER_EXTENSION = "hf_s1.engines.vllm.telemetry.InjectionLogWorker"


def _budget_processors(worker: Any) -> list[Any]:
    """The budget processors a vLLM worker runs: the V1 runner's persistent batch, or Model Runner V2's sampler."""
    runner = getattr(worker, "model_runner", None)
    found: list[Any] = []
    batch_procs = getattr(getattr(runner, "input_batch", None), "logitsprocs", None)
    if batch_procs is not None:
        procs = batch_procs.all  # a property in vLLM's V1 `LogitsProcessors`
        found.extend(procs() if callable(procs) else procs)
    found.extend(getattr(getattr(runner, "sampler", None), "logits_processors", ()) or ())
    return [p for p in found if isinstance(p, BudgetForcingLogitsProcessor)]


def injection_logs(worker: Any, tags: Sequence[str]) -> dict[str, list[int]]:
    """On a worker: hand over (and forget) the injection logs of the requests named `tags`, as sorted generated
    positions; a tag the worker does not know is left out."""
    logs: dict[str, list[int]] = {}
    for processor in _budget_processors(worker):
        logs.update(processor.pop_injection_logs(tags))
    return logs


class InjectionLogWorker:
    """vLLM worker extension (`worker_extension_cls`) that lets clients collect injection logs by method name,
    which a multi-process engine and `vllm serve`'s `/collective_rpc` need (they do not ship functions)."""

    def hf_s1_injection_logs(self, tags: Sequence[str] | str) -> dict[str, list[int]]:
        if isinstance(tags, str):  # vllm serve's /collective_rpc passes string arguments only
            tags = json.loads(tags)
        return injection_logs(self, list(tags))


def _engine_config(llm: Any) -> Any:
    engine = getattr(llm, "llm_engine", None)
    return getattr(engine, "vllm_config", None)


def collect_injection_logs(llm: Any, tags: Iterable[str]) -> dict[str, list[int]]:
    """The injection logs of the finished requests named `tags` (`extra_args["budget_log"]`), from every worker.

    Uses the worker extension when the engine has it (`load_llm` registers it); otherwise ships the function,
    which an in-process engine (`VLLM_ENABLE_V1_MULTIPROCESSING=0`) runs as is and a multi-process one only with
    `VLLM_ALLOW_INSECURE_SERIALIZATION=1`.

    Raises:
        BudgetError: the engine cannot run the collection; the message names the fix.
    """
    tags = list(tags)
    config = _engine_config(llm)
    extension = getattr(getattr(config, "parallel_config", None), "worker_extension_cls", "") or ""
    method: Any = RPC_METHOD if extension == WORKER_EXTENSION else injection_logs
    try:
        per_worker = llm.collective_rpc(method, args=(tags,))
    except Exception as exc:  # vLLM refuses to serialize a function for another process
        raise BudgetError(
            f"could not collect the budget processor's injection logs from the engine ({exc}): build the LLM with "
            f"hf_s1.engines.vllm.load_llm(), or pass worker_extension_cls={WORKER_EXTENSION!r} to vllm.LLM."
        ) from exc
    return _merge(per_worker)


def fetch_injection_logs(server_url: str, tags: Iterable[str], *, timeout: float = 60.0) -> dict[str, list[int]]:
    """The injection logs of finished requests named `tags`, from a running `vllm serve` (see the module
    docstring for how to start it). `server_url` is the server's root (`http://host:port`; a trailing `/v1` is
    ignored). Logs are handed over once: a second call for the same tag leaves it out.

    Raises:
        BudgetError: the server does not offer the logs; the message names the settings it needs.
    """
    root = server_url.rstrip("/").removesuffix("/v1")
    body = json.dumps({"method": RPC_METHOD, "args": [json.dumps(list(tags))]}).encode()
    request = urllib.request.Request(f"{root}/collective_rpc", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.load(response)
    except (urllib.error.URLError, ValueError) as exc:  # HTTPError is a URLError: 404 without dev mode, 500 ...
        raise BudgetError(
            f"could not fetch injection logs from {root}/collective_rpc ({exc}): start the server with "
            f"VLLM_SERVER_DEV_MODE=1 and --worker-extension-cls {WORKER_EXTENSION}."
        ) from exc
    return _merge(payload.get("results") or [])


def _merge(per_worker: Iterable[Any]) -> dict[str, list[int]]:
    logs: dict[str, list[int]] = {}
    for found in per_worker:  # tensor-parallel ranks decide alike: any rank that knows a tag has its log
        for tag, positions in (found or {}).items():
            logs.setdefault(tag, list(positions))
    return logs
