"""The part of a vLLM request's sampler that decides how likely an end of thinking is, per slot, in tensors."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["SamplerSettings"]

_SAMPLING_EPS = 1e-5  # vLLM's own threshold: a temperature below it decodes greedily


class SamplerSettings:
    """Temperature, min-p, top-k and top-p of every slot, on the device, with a host mirror of which slots sample.

    `probabilities(logits, slots)` is the distribution vLLM's sampler draws from, in its order: temperature,
    min-p, then top-k / top-p (vLLM's own `apply_top_k_top_p`, so ties and edge cases match).
    """

    def __init__(self, num_slots: int, device: torch.device) -> None:
        self.device = device
        self.sampled = np.zeros(num_slots, dtype=bool)  # host mirror
        self.temperature = torch.ones(num_slots, device=device)
        self.min_p = torch.zeros(num_slots, device=device)
        self.top_k = torch.zeros(num_slots, dtype=torch.long, device=device)
        self.top_p = torch.ones(num_slots, device=device)
        self._uses_min_p = np.zeros(num_slots, dtype=bool)
        self._uses_top_k_p = np.zeros(num_slots, dtype=bool)

    @staticmethod
    def is_greedy(params: Any) -> bool:
        return float(getattr(params, "temperature", 1.0) or 0.0) < _SAMPLING_EPS

    def set(self, slots: list[int], params: list[Any]) -> None:
        """Record the settings of requests entering `slots` (one copy per field)."""
        if not slots:
            return
        temps, min_ps, top_ks, top_ps = [], [], [], []
        for slot, p in zip(slots, params):
            sampled = not self.is_greedy(p)
            temps.append(float(p.temperature) if sampled else 1.0)
            min_ps.append(float(getattr(p, "min_p", 0.0) or 0.0))
            top_k = int(getattr(p, "top_k", 0) or 0)
            top_ks.append(top_k if top_k > 0 else 0)
            top_ps.append(float(getattr(p, "top_p", 1.0) or 1.0))
            self.sampled[slot] = sampled
            self._uses_min_p[slot] = sampled and min_ps[-1] > 0
            self._uses_top_k_p[slot] = sampled and (top_ks[-1] > 0 or top_ps[-1] < 1.0)
        idx = torch.tensor(slots, dtype=torch.long, device=self.device)
        self.temperature[idx] = torch.tensor(temps).to(self.device)
        self.min_p[idx] = torch.tensor(min_ps).to(self.device)
        self.top_k[idx] = torch.tensor(top_ks, dtype=torch.long).to(self.device)
        self.top_p[idx] = torch.tensor(top_ps).to(self.device)

    def probabilities(self, logits: torch.Tensor, slots: torch.Tensor, host_slots: np.ndarray) -> torch.Tensor:
        """[rows, vocab] sampler probabilities of `logits` (rows of `slots`; `host_slots` are the requests' slots
        on the host, to skip stages no request uses without reading the device)."""
        logits = logits.float() / self.temperature[slots].unsqueeze(1)
        if self._uses_min_p[host_slots].any():
            probs = torch.softmax(logits, dim=-1)
            threshold = probs.amax(dim=-1, keepdim=True) * self.min_p[slots].unsqueeze(1)
            logits = logits.masked_fill(probs < threshold, -float("inf"))
        if self._uses_top_k_p[host_slots].any():
            from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p

            vocab = logits.shape[-1]
            k = self.top_k[slots]
            k = torch.where((k > 0) & (k < vocab), k, vocab)
            logits = apply_top_k_top_p(logits.clone(), k, self.top_p[slots])
        return torch.softmax(logits, dim=-1)
