"""Loading s1K-style data sets (s1K, s1K-1.1, or your own pool) from the Hub or local files, and choosing which
reasoning trace a row is trained on."""

from __future__ import annotations

import json

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from ..errors import DataError

__all__ = ["DataError", "TraceSource", "TRACE_SOURCES", "get_trace_source", "load_s1k", "S1K_HUB_IDS"]

# The two published sets; both have a single "train" split of 1,000 rows.
S1K_HUB_IDS = {"s1k": "simplescaling/s1K", "s1k-1.1": "simplescaling/s1K-1.1"}

_LOCAL_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class TraceSource:
    """Which columns hold the reasoning trace and the final attempt of a row.

    Args:
        name: a short name (`"s1k"`, `"gemini"`, `"deepseek"` or your own).
        trace_column: column with the thinking; a list-valued column (s1K's `thinking_trajectories`) uses its
            first entry.
        attempt_column: column with the written answer that follows the thinking.

    Examples:

    ```python
    >>> from hf_s1.data import get_trace_source
    >>> src = get_trace_source("deepseek")
    >>> src.trace_column, src.attempt_column
    ('deepseek_thinking_trajectory', 'deepseek_attempt')
    >>> src.trace({"deepseek_thinking_trajectory": "2+3 is 5.", "deepseek_attempt": "5"})
    '2+3 is 5.'

    ```
    """

    name: str
    trace_column: str
    attempt_column: str

    def trace(self, row: Mapping[str, Any]) -> str:
        """The thinking text of `row` (first entry of a list column); a `DataError` when missing or empty."""
        value = _get(row, self.trace_column, self)
        if isinstance(value, Sequence) and not isinstance(value, str):
            value = value[0] if len(value) else None
        if not isinstance(value, str) or not value.strip():
            raise DataError(
                f"row has no {self.trace_column!r} trace; drop such rows first "
                f"(hf_s1.data.curation.quality_filter does) or choose another trace source."
            )
        return value

    def attempt(self, row: Mapping[str, Any]) -> str:
        """The answer text of `row`; a `DataError` when missing or empty."""
        value = _get(row, self.attempt_column, self)
        if not isinstance(value, str) or not value.strip():
            raise DataError(
                f"row has no {self.attempt_column!r} attempt; drop such rows first "
                f"(hf_s1.data.curation.quality_filter does) or choose another trace source."
            )
        return value


def _get(row: Mapping[str, Any], column: str, source: TraceSource) -> Any:
    if column not in row:
        raise DataError(
            f"column {column!r} (trace source {source.name!r}) is not in the data set, which has "
            f"{sorted(row)}; pick the trace source that matches it: {sorted(TRACE_SOURCES)} or a TraceSource."
        )
    return row[column]


TRACE_SOURCES = {
    "s1k": TraceSource("s1k", "thinking_trajectories", "attempt"),
    "gemini": TraceSource("gemini", "gemini_thinking_trajectory", "gemini_attempt"),
    "deepseek": TraceSource("deepseek", "deepseek_thinking_trajectory", "deepseek_attempt"),
}


def get_trace_source(source: Union[str, TraceSource, None], columns: Sequence[str] | None = None) -> TraceSource:
    """A preset by name, a `TraceSource` as is, or (None) the one the `columns` hold.

    Auto-detection prefers s1K-1.1's DeepSeek-R1 traces (what s1.1 trains on), then s1K's Gemini trajectories.
    """
    if isinstance(source, TraceSource):
        return source
    if source is None:
        cols = set(columns or ())
        for preset in ("deepseek", "s1k", "gemini"):
            p = TRACE_SOURCES[preset]
            if p.trace_column in cols and p.attempt_column in cols:
                return p
        raise DataError(
            f"cannot tell which columns hold the reasoning trace among {sorted(cols)}; pass trace= one of "
            f"{sorted(TRACE_SOURCES)} or TraceSource(name, trace_column, attempt_column)."
        )
    try:
        return TRACE_SOURCES[source.lower()]
    except (KeyError, AttributeError):
        raise DataError(f"unknown trace source {source!r}; use one of {sorted(TRACE_SOURCES)} or a TraceSource.") from None


def _local_files(path: Path) -> tuple[str, list[str]]:
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix in _LOCAL_BUILDERS)
    kinds = {_LOCAL_BUILDERS.get(p.suffix) for p in files}
    if not files or None in kinds or len(kinds) != 1:
        raise DataError(
            f"{path} is not a .jsonl/.json/.parquet/.csv file or a folder of files of one such kind; "
            f"give a Hub id (e.g. {S1K_HUB_IDS['s1k']!r}) or such a file."
        )
    return kinds.pop(), [str(p) for p in files]


def load_s1k(source: Union[str, os.PathLike] = "s1k", *, split: str = "train", **kwargs: Any):
    """Load an s1K-style data set as a `datasets.Dataset`.

    Args:
        source: `"s1k"` / `"s1k-1.1"` (the published sets on the Hub), any Hub data set id, or a local
            `.jsonl` / `.json` / `.parquet` / `.csv` file or a folder of such files (e.g. `hf-s1 curate` output).
        split: split to load from a Hub data set (local files load as `"train"`).
        **kwargs: passed to `datasets.load_dataset` (e.g. `revision`, `cache_dir`).

    Returns:
        `datasets.Dataset` with the source's columns unchanged.

    Examples:

    ```python
    >>> import json, tempfile, os
    >>> from hf_s1.data import load_s1k
    >>> path = os.path.join(tempfile.mkdtemp(), "pool.jsonl")
    >>> with open(path, "w") as f:
    ...     _ = f.write(json.dumps({"question": "1+1?", "thinking_trajectories": ["1+1=2"], "attempt": "2"}) + "\\n")
    >>> ds = load_s1k(path)
    >>> ds.num_rows, ds[0]["attempt"]
    (1, '2')

    ```
    """
    import datasets

    name = S1K_HUB_IDS.get(str(source).lower(), str(source))
    path = Path(os.fspath(source)).expanduser()
    if path.exists():
        builder, files = _local_files(path)
        if builder == "json":
            for file in files:
                _check_json_lines(Path(file))
        return datasets.load_dataset(builder, data_files=files, split="train", **kwargs)
    if isinstance(source, os.PathLike) or Path(name).suffix in _LOCAL_BUILDERS or name.startswith((".", "/", "~")):
        raise DataError(f"no such file or folder: {path}; check the path or give a Hub data set id.")
    try:
        return datasets.load_dataset(name, split=split, **kwargs)
    except (ConnectionError, OSError) as err:  # offline, unknown id or gated set: say what to do instead
        raise DataError(
            f"could not load {name!r} from the Hub ({type(err).__name__}: {err}); check the id and your network "
            f"(HF_HUB_OFFLINE=1 allows only cached sets), or pass a local .jsonl/.parquet path."
        ) from err


def _check_json_lines(path: Path) -> None:
    """Refuse a .jsonl file with a malformed line, naming the line (datasets' own error does not)."""
    if path.suffix != ".jsonl":
        return
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not a JSON object ({exc.msg}); fix or remove the line.") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number}: each line must be a JSON object, got {type(row).__name__}.")
