"""s1K data tooling: loading, formatting into think-format conversations, curation and decontamination."""

from .formatting import ANSWER_PREFIX, answer_text, format_s1k, to_messages
from .loading import S1K_HUB_IDS, TRACE_SOURCES, DataError, TraceSource, get_trace_source, load_s1k

__all__ = [
    "DataError",
    "TraceSource",
    "TRACE_SOURCES",
    "S1K_HUB_IDS",
    "get_trace_source",
    "load_s1k",
    "ANSWER_PREFIX",
    "answer_text",
    "to_messages",
    "format_s1k",
]
