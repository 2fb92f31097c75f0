"""Think formats: where a model's thinking starts and ends, as data (`ThinkFormat`), the families hf-s1 knows
(`presets`), and the one resolver that reads a model's format from the model (`resolve_format`)."""

from .format import END_OF_TURN_TEXTS, ThinkFormat, format_tokens
from .presets import ALIASES, PRESETS, R1_FORMAT, REASONING_PARSERS, S1_FORMAT, TEMPLATE_RULES
from .resolve import (FORMATS, detect_format, format_from_template, get_format, marker_tokens, preset_names,
                      resolve_format)

__all__ = [
    "ThinkFormat",
    "END_OF_TURN_TEXTS",
    "marker_tokens",
    "format_tokens",
    "PRESETS",
    "ALIASES",
    "FORMATS",
    "REASONING_PARSERS",
    "TEMPLATE_RULES",
    "S1_FORMAT",
    "R1_FORMAT",
    "get_format",
    "resolve_format",
    "detect_format",
    "format_from_template",
    "preset_names",
]
