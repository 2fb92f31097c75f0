"""The think formats of the reasoning model families hf-s1 knows, as data: one entry per family.

A new family is one `ThinkFormat` in `PRESETS` (and, when vLLM has a reasoning parser for it, one line in
`REASONING_PARSERS`; when its chat template names its markers literally, one line in `TEMPLATE_RULES`). Sources for
each entry are listed in docs/formats.md; `tests/fixtures/templates/` holds a template of each family's shape.
"""

from __future__ import annotations

from .format import ThinkFormat

__all__ = ["PRESETS", "ALIASES", "REASONING_PARSERS", "TEMPLATE_RULES", "S1_FORMAT", "R1_FORMAT"]

_F = ThinkFormat

# name -> format. Whitespace fields are what each family's chat template writes around its markers (the cut writes
# them too, so a forced end reads as the model's own).
PRESETS: dict[str, ThinkFormat] = {f.name: f for f in (
    _F("s1", "<|im_start|>think", "<|im_start|>answer", "\n", "\n", "\n"),
    _F("r1", "<think>", "</think>", "\n", "\n", "\n\n"),  # DeepSeek-R1 / R1-Distill, QwQ, Qwen3-2507-Thinking
    _F("qwen3", "<think>", "</think>", "\n", "\n", "\n\n", switch="enable_thinking"),  # Qwen3 hybrid, 3.5, 3.6
    _F("deepseek-v3.1", "<think>", "</think>", "", "", "", switch="thinking"),  # V3.1 / V3.2
    _F("gpt-oss", "<|channel|>analysis<|message|>", "<|end|><|start|>assistant<|channel|>final<|message|>", "", "",
       "", stop_texts=("<|return|>", "<|call|>")),
    _F("kimi-k2", "<think>", "</think>", "", "", ""),
    _F("glm-4.5", "<think>", "</think>", "", "", "\n", switch="enable_thinking"),  # GLM-4.5 / 4.6
    _F("magistral", "[THINK]", "[/THINK]", "", "", ""),
    _F("seed-oss", "<seed:think>", "</seed:think>", "", "", "", stop_texts=("<seed:eos>",),
       budget_kwarg="thinking_budget"),
    _F("nemotron", "<think>", "</think>", "\n", "\n", "\n", switch="enable_thinking"),  # Nano v2 / Nemotron 3
    _F("minimax-m2", "<think>", "</think>", "\n", "\n", "\n\n"),
    _F("smollm3", "<think>", "</think>", "\n", "\n", "\n", switch="enable_thinking"),
    _F("olmo3", "<think>", "</think>", "", "", "\n\n"),  # the markers are plain text: `</` + `think` + `>`
    _F("phi-4-reasoning", "<think>", "</think>", "\n", "\n", "\n"),
    # Gemma 4 writes `thought` and a newline after its channel token: all three open thinking.
    _F("gemma4", "<|channel>thought\n", "<channel|>", "", "", "", stop_texts=("<turn|>",), switch="enable_thinking"),
)}

# Other names people use for the same formats.
ALIASES: dict[str, str] = {
    "deepseek-r1": "r1", "qwq": "r1", "qwen3-thinking": "r1", "qwen3-2507-thinking": "r1",
    "qwen3.5": "qwen3", "qwen3.6": "qwen3", "deepseek-v3.2": "deepseek-v3.1", "harmony": "gpt-oss",
    "kimi-k2-thinking": "kimi-k2", "glm-4.6": "glm-4.5", "minimax-m2.1": "minimax-m2", "nemotron-3": "nemotron",
    "olmo-3": "olmo3", "phi-4": "phi-4-reasoning", "gemma-4": "gemma4",
}

# vLLM `--reasoning-parser` name -> preset: inside vLLM, the parser the engine runs with names the format.
REASONING_PARSERS: dict[str, str] = {
    "deepseek_r1": "r1", "qwen3": "qwen3", "deepseek_v3": "deepseek-v3.1", "openai_gptoss": "gpt-oss",
    "kimi_k2": "kimi-k2", "glm45": "glm-4.5", "glm47": "glm-4.5", "mistral": "magistral", "seed_oss": "seed-oss",
    "nemotron_v3": "nemotron", "minimax_m2": "minimax-m2", "minimax_m2_append_think": "minimax-m2",
    "olmo3": "olmo3", "gemma4": "gemma4",
}

# Last resort, for chat templates that do not render thinking: a literal the template source holds -> preset. Order
# matters: the more specific literal first.
TEMPLATE_RULES: tuple[tuple[str, str], ...] = (
    ("<|channel|>analysis", "gpt-oss"),
    ("[THINK]", "magistral"),
    ("<seed:think>", "seed-oss"),
    ("<|channel>thought", "gemma4"),
    ("<|im_start|>think", "s1"),
    ("<｜Assistant｜></think>", "deepseek-v3.1"),  # V3.1 / V3.2 close thinking in the prompt when it is off
    ("<think>", "r1"),
    ("</think>", "r1"),
)

S1_FORMAT = PRESETS["s1"]
R1_FORMAT = PRESETS["r1"]
