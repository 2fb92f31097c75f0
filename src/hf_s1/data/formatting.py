"""Turning s1K rows into training conversations whose assistant turn uses exactly the think markers that budget
forcing expects (`hf_s1.formats`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Union

from ..formats import ThinkFormat, get_format
from .loading import DataError, TraceSource, get_trace_source

__all__ = ["ANSWER_PREFIX", "answer_text", "to_messages", "format_s1k"]

# s1 prefixes the attempt with this when it lacks it (reference training data preparation).
ANSWER_PREFIX = "Answer: "


def answer_text(attempt: str, prefix: str = ANSWER_PREFIX) -> str:
    """The answer part of the assistant turn: `attempt`, prefixed with `prefix` unless it already starts with it.

    Examples:

    ```python
    >>> from hf_s1.data import answer_text
    >>> answer_text("5")
    'Answer: 5'
    >>> answer_text("Answer: 5")
    'Answer: 5'

    ```
    """
    if not prefix or attempt.lstrip().startswith(prefix.strip()):
        return attempt
    return f"{prefix}{attempt}"


def to_messages(
    row: Mapping[str, Any],
    *,
    think_format: Union[str, ThinkFormat] = "s1",
    trace: Union[str, TraceSource, None] = None,
    system_prompt: str | None = None,
    question_column: str = "question",
    answer_prefix: str = ANSWER_PREFIX,
) -> list[dict[str, str]]:
    """One s1K row as chat messages: (system), user question, assistant `think + answer`.

    Args:
        row: a mapping with the question, trace and attempt columns.
        think_format: `"s1"` (`<|im_start|>think` ... `<|im_start|>answer`), `"r1"` (`<think>` ... `</think>`)
            or a `ThinkFormat`.
        trace: which columns hold the trace and attempt (`"s1k"`, `"gemini"`, `"deepseek"`, a `TraceSource`, or
            None to detect from the row's columns).
        system_prompt: a system message; None leaves the chat template's default (e.g. Qwen's).
        question_column: column holding the question.
        answer_prefix: written before the attempt when it lacks it (s1 uses `"Answer: "`).

    Returns:
        A list of `{"role", "content"}` dicts.

    Examples:

    ```python
    >>> from hf_s1.data import to_messages
    >>> row = {"question": "What is 2+3?", "thinking_trajectories": ["2+3=5"], "attempt": "5"}
    >>> to_messages(row)[-1]["content"]
    '<|im_start|>think\\n2+3=5\\n<|im_start|>answer\\nAnswer: 5'
    >>> to_messages(row, think_format="r1", system_prompt="Think step by step.")[0]
    {'role': 'system', 'content': 'Think step by step.'}

    ```
    """
    fmt = get_format(think_format)
    source = get_trace_source(trace, list(row))
    question = row.get(question_column)
    if not isinstance(question, str) or not question.strip():
        raise DataError(
            f"row has no {question_column!r} text; drop such rows first (hf_s1.data.curation.quality_filter) "
            f"or set question_column to the column holding the question."
        )
    # The trace keeps its own leading/trailing whitespace out: the markers supply the newlines.
    assistant = fmt.assistant_text(source.trace(row).strip(), answer_text(source.attempt(row).strip(), answer_prefix))
    messages = [] if system_prompt is None else [{"role": "system", "content": system_prompt}]
    return messages + [{"role": "user", "content": question}, {"role": "assistant", "content": assistant}]


def format_s1k(
    dataset: Any,
    *,
    think_format: Union[str, ThinkFormat] = "s1",
    trace: Union[str, TraceSource, None] = None,
    system_prompt: str | None = None,
    question_column: str = "question",
    output: Literal["messages", "text"] = "messages",
    tokenizer: Any = None,
    keep_columns: bool = False,
    num_proc: int | None = None,
):
    """Format a whole s1K-style `datasets.Dataset` for SFT.

    Args:
        dataset: the rows (see `load_s1k`).
        think_format, trace, system_prompt, question_column: as in `to_messages`.
        output: `"messages"` gives a conversational `messages` column (what TRL's `assistant_only_loss` needs);
            `"text"` renders it through `tokenizer`'s chat template into a `text` column.
        tokenizer: needed for `output="text"`.
        keep_columns: keep the source columns next to the new one.
        num_proc: worker processes for `Dataset.map`.

    Returns:
        `datasets.Dataset` with a `messages` (or `text`) column.

    Examples:

    ```python
    >>> from datasets import Dataset
    >>> from hf_s1.data import format_s1k
    >>> ds = Dataset.from_list([{"question": "1+1?", "thinking_trajectories": ["1+1=2"], "attempt": "2"}])
    >>> format_s1k(ds, think_format="r1")[0]["messages"][1]["content"]
    '<think>\\n1+1=2\\n</think>\\n\\nAnswer: 2'

    ```
    """
    if output not in ("messages", "text"):
        raise DataError(f"output must be 'messages' or 'text', got {output!r}.")
    if output == "text" and tokenizer is None:
        raise DataError("output='text' renders through a chat template: pass tokenizer=.")
    if output == "text" and not getattr(tokenizer, "chat_template", None):
        raise DataError("this tokenizer has no chat template: set tokenizer.chat_template or use output='messages'.")
    fmt = get_format(think_format)
    source = get_trace_source(trace, dataset.column_names)

    def convert(row: Mapping[str, Any]) -> dict[str, Any]:
        messages = to_messages(row, think_format=fmt, trace=source, system_prompt=system_prompt,
                               question_column=question_column)
        if output == "messages":
            return {"messages": messages}
        return {"text": tokenizer.apply_chat_template(messages, tokenize=False)}

    drop = [] if keep_columns else [c for c in dataset.column_names if c != output]
    return dataset.map(convert, remove_columns=drop, num_proc=num_proc, desc=f"formatting ({fmt.name})")
