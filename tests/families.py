"""Chat templates of the shape each reasoning family's vendor template has, written for these tests.

Each reproduces what budget forcing depends on: the generation prompt (whether it opens thinking), how an assistant
turn's thinking is rendered (markers and the whitespace around them), the family's switch, and its end-of-turn
token. They are not the vendors' templates (no tools, no multimodal parts); `source` says which template was read
for the facts (Hub repository and file, as of 2026-12). `tokens` are the family's control tokens, added to the
embedded SmolLM2 tokenizer (`special` as the vendor's tokenizer marks them); `parser` is the vLLM reasoning parser
that judges the output (`None`: transformers' `parse_response` with TRL's response template, `response_template`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Family:
    name: str
    preset: str  # the hf-s1 preset the resolver must find
    template: str
    tokens: tuple[str, ...]  # control tokens added to the tokenizer
    eos: str
    parser: str | None
    source: str
    special: bool = True  # added as special tokens (False: `"special": false`, as Qwen3's `<think>`)
    switch: str | None = None  # the keyword that turns thinking off, when the family has one
    off: dict[str, Any] = field(default_factory=dict)  # template kwargs that switch thinking off
    parser_kwargs: dict[str, Any] = field(default_factory=dict)  # chat_template_kwargs the parser reads
    response_template: str | None = None  # name of TRL's response template, when parser is None


def _chatml(assistant_head: str, think: str, gen_prompt: str, eot: str = "<|im_end|>") -> str:
    """A ChatML-shaped template: `think` renders an assistant message's thinking + content (Jinja), `gen_prompt` the
    text after the assistant header."""
    return (
        "{%- for m in messages %}"
        "{%- if m.role == 'assistant' %}"
        "{{- '<|im_start|>assistant" + assistant_head + "' }}" + think + "{{- '" + eot + "\\n' }}"
        "{%- else %}{{- '<|im_start|>' + m.role + '\\n' + m.content + '" + eot + "\\n' }}{%- endif %}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant" + assistant_head + "' }}" + gen_prompt + "{%- endif %}"
    )


_R = "(m.reasoning_content or m.thinking or m.reasoning or '')"

FAMILIES: tuple[Family, ...] = (
    Family(
        "qwen3", "qwen3",
        _chatml("\\n", "{{- '<think>\\n' + " + _R + " + '\\n</think>\\n\\n' + m.content }}",
                "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"),
        ("<think>", "</think>", "<tool_call>", "</tool_call>"), "<|im_end|>", "qwen3",
        "Qwen/Qwen3-8B tokenizer_config.json chat_template", special=False, switch="enable_thinking",
        off={"enable_thinking": False}),
    Family(
        "qwen3.5", "qwen3",
        _chatml("\\n", "{{- '<think>\\n' + " + _R + " + '\\n</think>\\n\\n' + m.content }}",
                "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
                "{%- else %}{{- '<think>\\n' }}{%- endif %}"),
        ("<think>", "</think>"), "<|im_end|>", "qwen3",
        "Qwen/Qwen3.5-27B chat_template.jinja (generation prompt opens <think>)", special=False,
        switch="enable_thinking", off={"enable_thinking": False}),
    Family(
        "deepseek-r1", "r1",
        "{{- bos_token }}{%- for m in messages %}"
        "{%- if m.role == 'user' %}{{- '<｜User｜>' + m.content }}"
        "{%- elif m.role == 'assistant' %}{%- set c = m.content %}{%- if '</think>' in c %}"
        "{%- set c = c.split('</think>')[-1] %}{%- endif %}{{- '<｜Assistant｜>' + c + '<｜end▁of▁sentence｜>' }}"
        "{%- else %}{{- m.content }}{%- endif %}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<｜Assistant｜><think>\\n' }}{%- endif %}",
        ("<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>", "<think>", "</think>"), "<｜end▁of▁sentence｜>",
        "deepseek_r1", "deepseek-ai/DeepSeek-R1-0528 tokenizer_config.json (drops earlier thinking; prompt opens it)"),
    Family(
        "deepseek-v3.1", "deepseek-v3.1",
        "{{- bos_token }}{%- for m in messages %}"
        "{%- if m.role == 'user' %}{{- '<｜User｜>' + m.content }}"
        "{%- elif m.role == 'assistant' %}{{- '<｜Assistant｜><think>' + " + _R + " + '</think>' + m.content + "
        "'<｜end▁of▁sentence｜>' }}{%- else %}{{- m.content }}{%- endif %}{%- endfor %}"
        "{%- if add_generation_prompt %}{%- if thinking is defined and thinking %}{{- '<｜Assistant｜><think>' }}"
        "{%- else %}{{- '<｜Assistant｜></think>' }}{%- endif %}{%- endif %}",
        ("<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>", "<think>", "</think>"), "<｜end▁of▁sentence｜>",
        "deepseek_v3", "deepseek-ai/DeepSeek-V3.1 tokenizer_config.json (`thinking`, default off)",
        switch="thinking", off={"thinking": False}, parser_kwargs={"thinking": True}),
    Family(
        "gpt-oss", "gpt-oss",
        "{%- for m in messages %}"
        "{%- if m.role == 'assistant' %}{%- if " + _R + " %}"
        "{{- '<|start|>assistant<|channel|>analysis<|message|>' + " + _R + " + '<|end|>' }}{%- endif %}"
        "{{- '<|start|>assistant<|channel|>final<|message|>' + m.content + '<|end|>' }}"
        "{%- else %}{{- '<|start|>' + m.role + '<|message|>' + m.content + '<|end|>' }}{%- endif %}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|start|>assistant' }}{%- endif %}",
        ("<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>", "<|call|>"), "<|return|>", None,
        "openai/gpt-oss-20b chat_template.jinja (harmony)", response_template="gptoss_template"),
    Family(
        "magistral", "magistral",
        "{{- bos_token }}{%- for m in messages %}"
        "{%- if m.role == 'user' %}{{- '[INST]' + m.content + '[/INST]' }}"
        "{%- elif m.role == 'assistant' %}{{- '[THINK]' + " + _R + " + '[/THINK]' + m.content + eos_token }}"
        "{%- else %}{{- '[SYSTEM_PROMPT]' + m.content + '[/SYSTEM_PROMPT]' }}{%- endif %}{%- endfor %}",
        ("[INST]", "[/INST]", "[THINK]", "[/THINK]", "[TOOL_CALLS]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"), "</s>",
        "mistral", "mistralai/Magistral-Small-2509 (tokenizer v13: [THINK] / [/THINK] control tokens)"),
    Family(
        "seed-oss", "seed-oss",
        "{%- for m in messages %}"
        "{%- if m.role == 'assistant' %}{{- '<seed:bos>assistant\\n<seed:think>' + " + _R + " + '</seed:think>' + "
        "m.content + '<seed:eos>' }}"
        "{%- else %}{{- '<seed:bos>' + m.role + '\\n' + m.content + '<seed:eos>' }}{%- endif %}{%- endfor %}"
        "{%- if thinking_budget is defined and thinking_budget > 0 %}{{- '<seed:bos>system\\nYou have a thinking "
        "budget of ' + thinking_budget|string + ' tokens.<seed:eos>' }}{%- endif %}"
        "{%- if add_generation_prompt %}{{- '<seed:bos>assistant\\n' }}{%- if thinking_budget is defined and "
        "thinking_budget == 0 %}{{- '<seed:think></seed:think>' }}{%- endif %}{%- endif %}",
        ("<seed:bos>", "<seed:eos>", "<seed:think>", "</seed:think>", "<seed:tool_call>"), "<seed:eos>", "seed_oss",
        "ByteDance-Seed/Seed-OSS-36B-Instruct chat_template.jinja (`thinking_budget`; 0 closes thinking)",
        off={"thinking_budget": 0}),
    Family(
        "glm-4.5", "glm-4.5",
        "[gMASK]<sop>{%- for m in messages %}"
        "{%- if m.role == 'assistant' %}{{- '<|assistant|>\\n<think>' + " + _R + " + '</think>\\n' + m.content }}"
        "{%- else %}{{- '<|' + m.role + '|>\\n' + m.content }}{%- endif %}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|assistant|>' }}{%- if enable_thinking is defined and not "
        "enable_thinking %}{{- '\\n<think></think>' }}{%- endif %}{%- endif %}",
        ("[gMASK]", "<sop>", "<|user|>", "<|assistant|>", "<|system|>", "<|endoftext|>", "<think>", "</think>"),
        "<|endoftext|>", "glm45", "zai-org/GLM-4.6 chat_template.jinja", switch="enable_thinking",
        off={"enable_thinking": False}),
    Family(
        "kimi-k2", "kimi-k2",
        "{%- for m in messages %}"
        "{%- if m.role == 'assistant' %}{{- '<|im_assistant|>assistant<|im_middle|><think>' + " + _R + " + "
        "'</think>' + m.content + '<|im_end|>' }}"
        "{%- else %}{{- '<|im_' + m.role + '|>' + m.role + '<|im_middle|>' + m.content + '<|im_end|>' }}{%- endif %}"
        "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_assistant|>assistant<|im_middle|>' }}{%- endif %}",
        ("<|im_user|>", "<|im_assistant|>", "<|im_system|>", "<|im_middle|>", "<think>", "</think>",
         "<|tool_calls_section_begin|>"), "<|im_end|>", "kimi_k2",
        "moonshotai/Kimi-K2-Thinking chat_template.jinja"),
    Family(
        "minimax-m2", "minimax-m2",
        "{%- for m in messages %}"
        "{%- if m.role == 'assistant' %}{{- ']~b]ai\\n<think>\\n' + " + _R + " + '\\n</think>\\n\\n' + m.content + "
        "'[e~[\\n' }}{%- else %}{{- ']~b]' + m.role + '\\n' + m.content + '[e~[\\n' }}{%- endif %}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- ']~b]ai\\n<think>\\n' }}{%- endif %}",
        ("]~b]", "[e~[", "<think>", "</think>", "<minimax:tool_call>"), "[e~[", "minimax_m2",
        "MiniMaxAI/MiniMax-M2 chat_template.jinja (prompt opens <think>)"),
    Family(
        "nemotron", "nemotron",
        _chatml("\\n", "{{- '<think>\\n' + " + _R + " + '\\n</think>\\n' + m.content }}",
                "{%- if enable_thinking is defined and not enable_thinking %}{{- '<think></think>' }}"
                "{%- else %}{{- '<think>\\n' }}{%- endif %}"),
        ("<think>", "</think>", "<tool_call>"), "<|im_end|>", "nemotron_v3",
        "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B chat_template.jinja", switch="enable_thinking",
        off={"enable_thinking": False}),
    Family(
        "smollm3", "smollm3",
        _chatml("\\n", "{{- '<think>\\n' + " + _R + " + '\\n</think>\\n' + m.content }}",
                "{%- if enable_thinking is defined and not enable_thinking %}{{- '<think>\\n\\n</think>\\n' }}{%- endif %}"),
        ("<think>", "</think>"), "<|im_end|>", "deepseek_r1", "HuggingFaceTB/SmolLM3-3B chat_template.jinja",
        switch="enable_thinking", off={"enable_thinking": False}),
    Family(
        "olmo3", "olmo3",
        _chatml("\\n", "{{- '<think>' + " + _R + " + '</think>\\n\\n' + m.content }}", "{{- '<think>' }}"),
        (), "<|im_end|>", "olmo3", "allenai/Olmo-3-7B-Think chat_template.jinja (markers are plain text)"),
    Family(
        "phi-4-reasoning", "phi-4-reasoning",
        "{%- for m in messages %}"
        "{%- if m.role == 'assistant' %}{{- '<|im_start|>assistant<|im_sep|><think>\\n' + " + _R + " + "
        "'\\n</think>\\n' + m.content + '<|im_end|>' }}"
        "{%- else %}{{- '<|im_start|>' + m.role + '<|im_sep|>' + m.content + '<|im_end|>' }}{%- endif %}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant<|im_sep|>' }}{%- endif %}",
        ("<|im_sep|>", "<think>", "</think>"), "<|im_end|>", "deepseek_r1",
        "microsoft/Phi-4-reasoning tokenizer_config.json"),
    Family(
        "gemma4", "gemma4",
        "{{- bos_token }}{%- for m in messages %}"
        "{%- if m.role == 'assistant' %}{{- '<|turn>model\\n<|channel>thought\\n' + " + _R + " + '<channel|>' + "
        "m.content + '<turn|>\\n' }}{%- else %}{{- '<|turn>' + m.role + '\\n' + m.content + '<turn|>\\n' }}"
        "{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|turn>model\\n' }}{%- endif %}",
        ("<|turn>", "<turn|>", "<|channel>", "<channel|>"), "<turn|>", "gemma4",
        "google/gemma-4-31b-it chat_template.jinja"),
    Family(
        "s1", "s1",
        _chatml("\\n", "{{- '<|im_start|>think\\n' + " + _R + " + '\\n<|im_start|>answer\\n' + m.content }}", ""),
        (), "<|im_end|>", None, "simplescaling/s1.1-32B (s1's markers written by its data formatting)",
        response_template="s1"),
)

# A plain ChatML template with no thinking anywhere: the resolver must refuse to guess.
NO_THINKING = _chatml("\\n", "{{- m.content }}", "")


def family_tokenizer(base_dir: Any, family: Family) -> Any:
    """The embedded tokenizer with the family's control tokens, chat template and end-of-turn token."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    tok.response_template = None  # the embedded model declares s1's markers; a family declares its own or none
    if family.tokens:
        tok.add_tokens(list(family.tokens), special_tokens=family.special)
    tok.chat_template = family.template
    tok.add_special_tokens({"eos_token": family.eos})  # added when the vocabulary lacks it
    return tok


def save_family_model(tiny_dir: Any, base_dir: Any, family: Family, out: Any) -> Any:
    """A folder with the family's tokenizer and the tiny model resized to it, its final norm zeroed: every logit is
    equal, so greedy decoding picks id 0 (`<|endoftext|>`, an end-of-sequence token) at every step. Each step is then
    an attempt to end, which makes budget forcing's decisions visible: Waits below the minimum, the cut at the cap,
    and the end marker in place of an end of sequence once ending is allowed."""
    import torch
    from transformers import AutoModelForCausalLM

    tok = family_tokenizer(base_dir, family)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
    model.resize_token_embeddings(len(tok))
    with torch.no_grad():
        model.model.norm.weight.zero_()
    model.config.eos_token_id = tok.eos_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    tok.save_pretrained(out)
    model.save_pretrained(out)
    return out


def judge(family: Family, tokenizer: Any, assistant_text: str) -> tuple[str | None, str | None]:
    """(reasoning, content) of an assistant turn's text as the family's own parser splits it."""
    if family.parser is None:
        from hf_s1.models import DEFAULT_RESPONSE_TEMPLATE

        if family.response_template == "s1":
            schema = DEFAULT_RESPONSE_TEMPLATE
        else:
            import trl.chat_template_utils as templates

            schema = getattr(templates, family.response_template)
        head = schema.get("start_anchor", "")
        parsed = tokenizer.parse_response(assistant_text, schema=schema, prefix=head)
        return parsed.get("thinking", parsed.get("reasoning_content")), parsed.get("content")
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.reasoning import ReasoningParserManager

    request = ChatCompletionRequest(messages=[{"role": "user", "content": "q"}], model="m",
                                    chat_template_kwargs=family.parser_kwargs or None)
    parser = ReasoningParserManager.get_reasoning_parser(family.parser)(
        tokenizer, chat_template_kwargs=family.parser_kwargs or None)
    return parser.extract_reasoning(assistant_text, request)
