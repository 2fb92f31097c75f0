"""Training chat templates: the model's own template plus `{% generation %}` markers around the assistant turn, so
TRL's `assistant_only_loss` puts the loss on exactly the think + answer tokens and the end-of-turn token."""

from __future__ import annotations

import json
from typing import Any

from ..data.loading import DataError

__all__ = ["chatml_training_template", "training_chat_template", "chat_template_default_system", "has_generation_markers"]

_PROBE = "hf-s1 probe question"


def has_generation_markers(template: str | None) -> bool:
    """True when `template` already marks the assistant output with `{% generation %}`."""
    return bool(template) and "generation" in template and "endgeneration" in template


def chatml_training_template(default_system_prompt: str | None = None) -> str:
    """A ChatML chat template whose assistant content and `<|im_end|>` lie inside `{% generation %}` markers.

    It renders exactly as plain ChatML templates do (Qwen2.5's, SmolLM2's) for conversations without tools; the
    newline after `<|im_end|>` and the `<|im_start|>assistant\\n` header stay outside the loss.

    Args:
        default_system_prompt: system message written when the conversation has none (Qwen2.5 writes
            "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."); None writes none.

    Examples:

    ```python
    >>> from hf_s1.train import chatml_training_template, has_generation_markers
    >>> has_generation_markers(chatml_training_template("You are helpful."))
    True

    ```
    """
    system = ""
    if default_system_prompt is not None:
        # A JSON string literal is a valid Jinja string literal, so any prompt text is quoted safely.
        literal = json.dumps(f"<|im_start|>system\n{default_system_prompt}<|im_end|>\n", ensure_ascii=False)
        system = f"{{%- if loop.first and message['role'] != 'system' %}}{{{{ {literal} }}}}{{%- endif %}}"
    return (
        "{%- for message in messages %}"
        + system
        + "{%- if message['role'] == 'assistant' %}"
        "{{- '<|im_start|>assistant\\n' }}"
        "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
        "{{- '\\n' }}"
        "{%- else %}"
        "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
        "{%- endif %}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    )


def _render(tokenizer: Any, messages: list[dict[str, str]], template: str | None, **kwargs: Any) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, chat_template=template, **kwargs)


def chat_template_default_system(tokenizer: Any) -> str | None:
    """The system prompt a ChatML template writes when the conversation has none (None when it writes none)."""
    text = _render(tokenizer, [{"role": "user", "content": _PROBE}], None)
    head, sep, _ = text.partition(f"<|im_start|>user\n{_PROBE}<|im_end|>")
    if not sep or not head:
        return None
    if head.startswith("<|im_start|>system\n") and head.endswith("<|im_end|>\n"):
        return head[len("<|im_start|>system\n") : -len("<|im_end|>\n")]
    return None


def _renders_alike(tokenizer: Any, template: str) -> bool:
    user = {"role": "user", "content": _PROBE}
    turn = {"role": "assistant", "content": "<|im_start|>think\nstep\n<|im_start|>answer\nAnswer: 1"}
    system = {"role": "system", "content": "Be brief."}
    cases = [([user, turn], {}), ([system, user, turn], {}), ([user], {"add_generation_prompt": True}),
             ([user, turn, user, turn], {})]
    try:
        return all(_render(tokenizer, m, None, **kw) == _render(tokenizer, m, template, **kw) for m, kw in cases)
    except Exception:  # a template that cannot render these plain conversations is not ChatML-compatible
        return False


def training_chat_template(tokenizer: Any) -> str:
    """A chat template for `tokenizer` with `{% generation %}` markers, rendering the same text as its own template.

    In order: the tokenizer's template when it already has markers; a ChatML training template with the same
    default system prompt when the tokenizer's template is plain ChatML (Qwen2.5, SmolLM2, ...), checked by
    rendering sample conversations with both; TRL's training template for the model families it knows.

    Args:
        tokenizer: a tokenizer with a chat template.

    Returns:
        The template string (set it as `tokenizer.chat_template` before building the `SFTTrainer`).

    Raises:
        DataError: when the tokenizer has no template or no training variant is known for it.

    Examples:

    ```python
    >>> from transformers import AutoTokenizer
    >>> from hf_s1 import default_model_path
    >>> from hf_s1.train import training_chat_template
    >>> tok = AutoTokenizer.from_pretrained(default_model_path())
    >>> msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    >>> out = tok.apply_chat_template(msgs, chat_template=training_chat_template(tok), tokenize=True,
    ...                               return_dict=True, return_assistant_tokens_mask=True)
    >>> tok.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m])
    'Hello<|im_end|>'

    ```
    """
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    if not template:
        raise DataError(
            "this tokenizer has no chat template; set tokenizer.chat_template (for ChatML models: "
            "hf_s1.train.chatml_training_template()) before training."
        )
    if has_generation_markers(template):
        return template
    if "<|im_start|>" in template:
        candidate = chatml_training_template(chat_template_default_system(tokenizer))
        if _renders_alike(tokenizer, candidate):
            return candidate
    from trl.chat_template_utils import get_training_chat_template

    try:
        patched = get_training_chat_template(tokenizer)
    except ValueError:
        patched = None
    if patched:
        return patched
    raise DataError(
        "no training variant of this chat template is known: set tokenizer.chat_template to a template whose "
        "assistant turn is wrapped in {% generation %} ... {% endgeneration %} (see docs/training.md)."
    )
