"""The fused budget step: `BatchBudget`'s eager step methods, compiled with `torch.compile` (inductor).

The eager methods stay the readable reference; this module only decides whether to run them compiled, and keeps
one compiled function per method for the whole process (every `BatchBudget` shares it, so a new generation does
not compile again). On CUDA inductor emits a few Triton kernels for the whole step, on CPU one C++ function; both
replace about four hundred separate torch ops a step. The batch-like dimensions are dynamic: a batch size that
changes every step (vLLM) compiles once for size 1 and once for every larger size, not once per size. Inductor's
on-disk cache keeps the compiled code across processes. Why torch.compile and not a hand-written kernel, and what
each choice costs, is measured in `bench/bench_processor_step.py` and written down in `docs/ARCHITECTURE.md`.

Which path runs: `BatchBudget(fused=...)`; by default the environment variable `HF_S1_FUSED` (`1` / `0`), else
fused on CUDA and eager elsewhere (on CPU the first compilation takes longer than most generations save).
If compiling fails, the step falls back to the eager methods with one warning.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["ENV_VAR", "compiled", "fused_by_default"]

logger = logging.getLogger(__name__)

ENV_VAR = "HF_S1_FUSED"
BACKEND: str | Callable = "inductor"

_compiled: dict[Callable, Callable] = {}
_failed: list[BaseException] = []  # the first compile failure: from then on every step runs eagerly


def fused_by_default(device: torch.device) -> bool:
    """`HF_S1_FUSED` when set (`1`/`true`/`on` or `0`/`false`/`off`), else whether `device` is a CUDA device."""
    value = os.environ.get(ENV_VAR)
    if value is not None and value.strip():
        flag = value.strip().lower()
        if flag in ("1", "true", "on", "yes"):
            return True
        if flag in ("0", "false", "off", "no"):
            return False
        raise ValueError(f"{ENV_VAR}={value!r}: use 1 (fused step) or 0 (eager step).")
    return device.type == "cuda"


def compiled(method: Callable) -> Callable | None:
    """The compiled version of `method` (shared by every instance), or None once compiling has failed."""
    if _failed:
        return None
    fn = _compiled.get(method)
    if fn is None:
        fn = _compiled[method] = torch.compile(method, backend=BACKEND)
    return fn


def _mark(value: Any) -> None:
    """Mark the first dimension of `value` (a tensor, a tuple of them, or a dataclass of them) dynamic."""
    if isinstance(value, torch.Tensor):
        if value.dim():
            torch._dynamo.maybe_mark_dynamic(value, 0)
    elif isinstance(value, tuple):
        for v in value:
            _mark(v)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            _mark(getattr(value, name))


def _mark_owner(owner: Any) -> None:
    """The owner's slot tables and state: dynamic in their number of slots (a new core of another size uses
    the same graph); the injection log also in its length (it grows while a generation runs)."""
    slots = owner.num_slots
    for value in vars(owner).values():
        if isinstance(value, torch.Tensor):
            if value.dim() and value.shape[0] == slots:
                torch._dynamo.maybe_mark_dynamic(value, 0)
        elif hasattr(value, "__dataclass_fields__"):
            _mark(value)
    log = getattr(owner, "injected", None)
    if isinstance(log, torch.Tensor) and log.dim() == 2:
        torch._dynamo.maybe_mark_dynamic(log, 1)


def run(method: Callable, owner: Any, *args: Any) -> Any:
    """`method(owner, *args)`, compiled; falls back to the eager method (one warning) if compiling fails."""
    fn = compiled(method)
    if fn is not None:
        # Only the batch-like dimensions are dynamic: the rows of a step, the slots, the log's length. Table
        # widths (marker lengths, forced sequences, stop ids) stay static: they are fixed for a deployment,
        # and a graph with few symbols compiles several times faster than one where every size is symbolic.
        if getattr(owner, "_marked_layout", None) != owner._layout:
            _mark_owner(owner)
            owner._marked_layout = owner._layout
        for value in args:
            _mark(value)
        try:
            return fn(owner, *args)
        except torch._dynamo.exc.TorchDynamoException as err:  # compiling failed: no graph ran, no state changed
            _failed.append(err)
            warnings.warn(f"hf-s1: the fused budget step could not be compiled ({type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''}); running the eager step. Set "
                          f"{ENV_VAR}=0 to skip compiling.", RuntimeWarning, stacklevel=3)
    return method(owner, *args)
