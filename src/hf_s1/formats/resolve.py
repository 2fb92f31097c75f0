"""The one format resolver: which think format a model uses, read from the model, never guessed.

Precedence (first that answers wins):

1. an explicit `think_format` (a preset name, a `ThinkFormat`, or a mapping of its fields);
2. the tokenizer's `response_template` (transformers' response schema: its `thinking` field's open / close literals);
3. the reasoning parser a vLLM engine runs with (`--reasoning-parser`), when resolving inside vLLM;
4. the chat template itself, rendered: an assistant turn with a probe thinking and a probe answer shows the markers and
   the whitespace around them; the generation prompt rendered with each known switch on and off shows the switch;
5. rules for known families (a marker literal in the template source, `TEMPLATE_RULES`).

When none answers, a `BudgetError` says what was looked at and how to pass a format.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from typing import Any, Union

from ..budget import BudgetError
from ..budget import MarkerTokens
from .format import ThinkFormat, format_tokens
from .presets import ALIASES, PRESETS, REASONING_PARSERS, TEMPLATE_RULES

__all__ = ["FORMATS", "get_format", "resolve_format", "detect_format", "format_from_template", "preset_names",
           "marker_tokens"]

# Every name a format may be asked for by: the presets and their aliases.
FORMATS: dict[str, ThinkFormat] = {**PRESETS, **{alias: PRESETS[name] for alias, name in ALIASES.items()}}

_THINK_PROBE = "hfs1thinkingprobe"
_ANSWER_PROBE = "hfs1answerprobe"
_QUESTION_PROBE = "hfs1 question probe"
# Chat-template keywords that switch thinking on and off, and the message keys templates read thinking from.
_SWITCHES = ("enable_thinking", "thinking")
_THINKING_KEYS = ("reasoning_content", "reasoning", "thinking")


def preset_names() -> list[str]:
    """The names `get_format` takes (presets first, then aliases)."""
    return list(FORMATS)


def get_format(fmt: Union[str, ThinkFormat, Mapping[str, Any], None], tokenizer: Any = None, *,
               reasoning_parser: str | None = None) -> ThinkFormat:
    """A format: `fmt` when given (a preset name, a `ThinkFormat`, or a mapping of its fields), else the one
    `resolve_format` reads from `tokenizer`.

    Raises:
        BudgetError: an unknown name, bad fields, or (`fmt=None`) no tokenizer or no format found in it.
    """
    if isinstance(fmt, ThinkFormat):
        return fmt
    if isinstance(fmt, Mapping):
        try:
            return ThinkFormat(**dict(fmt))
        except TypeError as exc:
            fields = [f.name for f in dataclasses.fields(ThinkFormat)]
            raise BudgetError(f"a think format mapping takes the fields {fields}: {exc}.") from None
    if fmt is None:
        if tokenizer is None:
            raise BudgetError("no think format and no tokenizer to read one from: pass think_format (one of "
                              f"{sorted(PRESETS)}) or a ThinkFormat.")
        return resolve_format(tokenizer, reasoning_parser=reasoning_parser)
    if isinstance(fmt, str) and fmt.lower() in FORMATS:
        return FORMATS[fmt.lower()]
    raise BudgetError(f"unknown think format {fmt!r}; use one of {sorted(FORMATS)}, a ThinkFormat, or None to read "
                      f"it from the model.")


def marker_tokens(tokenizer: Any, fmt: Union[str, ThinkFormat, Mapping[str, Any], None] = None) -> MarkerTokens:
    """Token ids of a format's markers for `tokenizer`: `fmt` as `get_format` takes it (None: the format read from
    the tokenizer); a `BudgetError` when no format is found or the tokenizer cannot write its markers."""
    return format_tokens(tokenizer, get_format(fmt, tokenizer))


def resolve_format(tokenizer: Any, *, reasoning_parser: str | None = None) -> ThinkFormat:
    """The think format of the model behind `tokenizer` (module docstring: the precedence). Cached per tokenizer.

    Args:
        tokenizer: the model's tokenizer (its `response_template` and chat template are read).
        reasoning_parser: the name of the vLLM reasoning parser the engine runs with, if any.

    Raises:
        BudgetError: nothing names the markers; the message lists what was looked at.
    """
    return _resolve(tokenizer, reasoning_parser)


detect_format = resolve_format  # the name earlier releases used


@functools.lru_cache(maxsize=32)  # tokenizers hash by identity; rendering templates runs once per tokenizer
def _resolve(tokenizer: Any, reasoning_parser: str | None) -> ThinkFormat:
    looked: list[str] = []
    fmt = _from_response_template(tokenizer, looked)
    if fmt is None and reasoning_parser:
        name = REASONING_PARSERS.get(reasoning_parser)
        looked.append(f"vLLM reasoning parser {reasoning_parser!r}: "
                      + (f"format {name!r}" if name else "not one hf-s1 knows"))
        fmt = PRESETS.get(name) if name else None
    if fmt is None:
        fmt = format_from_template(tokenizer, looked)
    if fmt is None:
        fmt = _from_rules(tokenizer, looked)
    if fmt is None:
        raise BudgetError(
            "cannot tell where this model's thinking starts and ends; looked at: " + "; ".join(looked)
            + f". Pass think_format= one of {sorted(PRESETS)} (docs/formats.md lists the families), or "
            "ThinkFormat(name, think_start, think_end, ...) with the model's own markers.")
    return fmt


def _preset_like(start: str, end: str, after_start: str = "") -> ThinkFormat | None:
    """The first preset with these markers; or one whose start marker holds the whitespace after it (Gemma 4's
    `<|channel>thought\\n`), or whose end marker continues `end` (a response template that closes gpt-oss's analysis
    at `<|end|>` describes a format whose cut must write the whole transition)."""
    starts = (start, start + after_start) if after_start else (start,)
    same = [f for f in PRESETS.values() if f.think_start in starts and f.think_end == end]
    longer = [f for f in PRESETS.values() if f.think_start in starts and f.think_end.startswith(end)]
    return (same or longer or [None])[0]


def _named(fmt: ThinkFormat) -> ThinkFormat:
    """`fmt` under the name of the preset it equals in every field, if one does."""
    return next((p for p in PRESETS.values() if p == dataclasses.replace(fmt, name=p.name)), fmt)


def _anchor(field: Mapping[str, Any], key: str) -> str | None:
    """A response-template anchor as literal text: the first literal, or a pattern that is a literal (escaped, maybe
    followed by a whitespace run such as `</think>\\s*`); None for a real pattern (a lookahead, alternatives)."""
    literal = field.get(key)
    if isinstance(literal, list):
        literal = literal[0] if literal else None
    if isinstance(literal, str) and literal:
        return literal
    pattern = field.get(f"{key}_pattern")
    if not isinstance(pattern, str):
        return None
    pattern = re.sub(r"(\\s[*+]|\\n[*+])+$", "", pattern)
    if not pattern or any(c in re.sub(r"\\.", "", pattern) for c in "()|?*+[]{}^$.") or re.search(r"\\[sSdDwWbB]", pattern):
        return None  # a real pattern, not an escaped literal
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), pattern)


def _from_response_template(tokenizer: Any, looked: list[str]) -> ThinkFormat | None:
    schema = getattr(tokenizer, "response_template", None)
    if not isinstance(schema, Mapping):
        looked.append("tokenizer.response_template: none")
        return None
    fields = schema.get("fields") or {}
    field = next((fields[k] for k in ("thinking", *_THINKING_KEYS) if isinstance(fields.get(k), Mapping)), None)
    end = _anchor(field, "close") if field else None
    start = _anchor(field, "open") if field else None
    anchor = _anchor(schema, "start_anchor")
    if start is None and end is not None and anchor:  # the prompt opens thinking: the anchor ends with the opener
        opener = _start_from_end(end.strip(), anchor)
        start = anchor[anchor.rstrip().rfind(opener):] if opener else None
    if start is None or end is None or not start.strip() or not end.strip():
        looked.append("tokenizer.response_template: no thinking field with literal open and close markers")
        return None
    _, start_core, after_start = _split_ws(start)
    _, end_core, _ = _split_ws(end)
    preset = _preset_like(start_core, end_core, after_start)
    if preset is not None and preset.think_start != start_core:
        return preset
    base = preset or ThinkFormat("response_template", start_core, end_core)
    return _named(dataclasses.replace(base, after_start=after_start or base.after_start))


def _render(tokenizer: Any, messages: list[dict], generation: bool, **kwargs: Any) -> str | None:
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation, **kwargs)
    except Exception:  # a template that refuses the probe conversation (raise_exception, missing variables)
        return None
    return text if isinstance(text, str) else None


def _split_ws(text: str) -> tuple[str, str, str]:
    """(leading whitespace, the stripped text, trailing whitespace)."""
    core = text.strip()
    if not core:
        return text, "", ""
    lead = text[: len(text) - len(text.lstrip())]
    return lead, core, text[len(text.rstrip()):]


def _start_from_end(end: str, text: str) -> str | None:
    """The start marker paired with `end` that `text` ends with (`</x>` -> `<x>`, `[/X]` -> `[X]`)."""
    for start in (end.replace("</", "<", 1), end.replace("[/", "[", 1), end.replace("/", "", 1)):
        if start != end and text.rstrip().endswith(start):
            return start
    return None


def format_from_template(tokenizer: Any, looked: list[str] | None = None) -> ThinkFormat | None:
    """The think format the chat template writes, or None: an assistant turn rendered with a probe thinking (under
    each key templates read it from) and a probe answer shows the end marker and its whitespace between the two;
    what precedes the thinking, less the generation prompt, is the start marker (when the generation prompt already
    opens thinking, the start marker is the one paired with the end marker that it ends with). The switch is the
    known keyword that changes the generation prompt."""
    looked = [] if looked is None else looked
    if not getattr(tokenizer, "chat_template", None):
        looked.append("chat template: none")
        return None
    user = [{"role": "user", "content": _QUESTION_PROBE}]
    turn = {"role": "assistant", "content": _ANSWER_PROBE, **{k: _THINK_PROBE for k in _THINKING_KEYS}}
    full, base, prompt = _render(tokenizer, [*user, turn], False), _render(tokenizer, user, False), \
        _render(tokenizer, user, True)
    if full is None or base is None or prompt is None:
        looked.append("chat template: does not render a plain user / assistant conversation")
        return None
    t, a = full.rfind(_THINK_PROBE), full.rfind(_ANSWER_PROBE)
    if t < 0 or a < t:
        looked.append("chat template: renders no thinking for an assistant message with reasoning_content")
        return None
    lead_end, end, after_end = _split_ws(full[t + len(_THINK_PROBE): a])
    if not end:
        looked.append("chat template: nothing between the thinking and the answer of an assistant message")
        return None
    common = len(_common_prefix(full, base)) if full.startswith(base) else len(_common_prefix(full, prompt))
    seg = full[common:t]  # the assistant header and the start marker
    head = prompt[common:] if prompt.startswith(full[:common]) else ""
    if head and seg.startswith(head) and seg.strip() != head.strip():
        region = seg[len(head):]
    else:  # the generation prompt already opens thinking: find the start marker paired with the end marker
        start = _start_from_end(end, seg)
        region = seg[seg.rstrip().rfind(start):] if start else ""
    _, start, after_start = _split_ws(region)
    if not start or start == end:
        looked.append(f"chat template: thinking ends with {end!r} but its start marker could not be told apart from "
                      "the assistant header")
        return None
    switch = _switch(tokenizer)
    base_fmt = _preset_like(start, end, after_start) or ThinkFormat("template", start, end)
    if (base_fmt.think_start, base_fmt.think_end) != (start, end):  # a preset that holds the whitespace: its own
        return base_fmt
    return _named(dataclasses.replace(base_fmt, after_start=after_start, before_end=lead_end, after_end=after_end,
                                      switch=switch or base_fmt.switch))


def _switch(tokenizer: Any) -> str | None:
    """The known keyword that changes the generation prompt when set off (the template's thinking switch)."""
    user = [{"role": "user", "content": _QUESTION_PROBE}]
    for kw in _SWITCHES:
        off = _render(tokenizer, user, True, **{kw: False})
        if off is not None and off != _render(tokenizer, user, True, **{kw: True}):
            return kw
    return None


def _common_prefix(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return a[:n]


def _template_text(tokenizer: Any) -> str:
    template = getattr(tokenizer, "chat_template", None) or ""
    if not isinstance(template, str):  # a dict of named templates
        template = " ".join(str(t) for t in dict(template).values())
    return template


def _from_rules(tokenizer: Any, looked: list[str]) -> ThinkFormat | None:
    template = _template_text(tokenizer)
    for literal, name in TEMPLATE_RULES:
        if literal in template:
            preset = PRESETS[name]
            switch = _switch(tokenizer) if getattr(tokenizer, "chat_template", None) else None
            return dataclasses.replace(preset, switch=switch) if switch and switch != preset.switch else preset
    looked.append("family rules: the chat template holds none of "
                  + ", ".join(repr(lit) for lit, _ in TEMPLATE_RULES))
    return None
