"""A tiny randomly initialised copy of a causal LM's architecture, for smoke-testing recipes and launchers fast."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["save_tiny_model"]


def save_tiny_model(
    out_dir: str | os.PathLike,
    base: str | os.PathLike | None = None,
    *,
    num_hidden_layers: int = 2,
    hidden_size: int = 64,
    seed: int = 0,
    **config_overrides: Any,
) -> Path:
    """Save a small random model with `base`'s architecture family and tokenizer (same vocabulary and chat template).

    Args:
        out_dir: folder to write (created).
        base: model id or folder whose config and tokenizer are reused (default: the embedded SmolLM2-135M-Instruct).
        num_hidden_layers: decoder layers of the tiny model.
        hidden_size: hidden width; heads and MLP width are scaled to match.
        seed: initialisation seed (the same seed gives the same weights).
        **config_overrides: any other config field.

    Returns:
        `out_dir` as a `Path`, loadable with `from_pretrained` (and by `recipes/sft_s1k.py`).

    Examples:

    ```python
    >>> import tempfile
    >>> from transformers import AutoConfig
    >>> from hf_s1.train.tiny import save_tiny_model
    >>> path = save_tiny_model(tempfile.mkdtemp())
    >>> AutoConfig.from_pretrained(path).hidden_size
    64

    ```
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from ..models import default_model_path

    base = default_model_path() if base is None else base
    config = AutoConfig.from_pretrained(base)
    heads = max(1, hidden_size // 16)
    changes = dict(num_hidden_layers=num_hidden_layers, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                   num_attention_heads=heads, num_key_value_heads=heads, head_dim=hidden_size // heads)
    for key, value in {**changes, **config_overrides}.items():
        setattr(config, key, value)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    out = Path(out_dir)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out
