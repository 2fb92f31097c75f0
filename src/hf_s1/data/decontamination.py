"""N-gram decontamination: drop training questions that share a word n-gram with an evaluation set (s1 uses 8)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Union

from .loading import DataError

__all__ = ["normalize_words", "ngrams", "NgramIndex", "decontaminate"]

_WORD = re.compile(r"\w+", re.UNICODE)


def normalize_words(text: str) -> list[str]:
    """Lower-cased word tokens (punctuation, LaTeX symbols and spacing ignored), the unit n-grams are made of."""
    return _WORD.findall(text.lower())


def ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    """All contiguous `n`-word tuples of `words` (none when it has fewer than `n` words)."""
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


class NgramIndex:
    """The word n-grams of evaluation texts, to test training texts against.

    An evaluation text shorter than `n` words is matched as a whole (its full word sequence inside a training text),
    so short questions are not silently exempt.

    Args:
        texts: evaluation texts, or a mapping `{set name: texts}` to learn which set a hit comes from.
        n: n-gram length in words (s1: 8).

    Examples:

    ```python
    >>> from hf_s1.data.decontamination import NgramIndex
    >>> index = NgramIndex({"aime": ["Find the number of ordered pairs of positive integers a and b"]}, n=8)
    >>> index.hits("so find the number of ordered pairs of positive integers here")
    ['aime']
    >>> index.hits("a different question entirely")
    []

    ```
    """

    def __init__(self, texts: Union[Iterable[str], Mapping[str, Iterable[str]]], n: int = 8) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise DataError(f"n must be a positive int (s1 uses 8), got {n!r}.")
        self.n = n
        sets = texts if isinstance(texts, Mapping) else {"eval": texts}
        self._grams: dict[tuple[str, ...], set[str]] = {}
        self._short: list[tuple[str, str]] = []  # (" w1 w2 ", set name) for texts shorter than n words
        for name, items in sets.items():
            if isinstance(items, str):
                raise DataError(f"evaluation set {name!r} must be a list of texts, not one string.")
            for text in items:
                words = normalize_words(text or "")
                if not words:
                    continue
                if len(words) < n:
                    self._short.append((f" {' '.join(words)} ", name))
                for gram in ngrams(words, n):
                    self._grams.setdefault(gram, set()).add(name)

    def __len__(self) -> int:
        return len(self._grams) + len(self._short)

    def hits(self, text: str) -> list[str]:
        """Names of the evaluation sets `text` overlaps with (sorted; empty when clean)."""
        words = normalize_words(text or "")
        found: set[str] = set()
        for gram in ngrams(words, self.n):
            found |= self._grams.get(gram, set())
        if self._short:
            joined = f" {' '.join(words)} "
            found |= {name for short, name in self._short if short in joined}
        return sorted(found)


def decontaminate(
    dataset: Any,
    eval_texts: Union[Iterable[str], Mapping[str, Iterable[str]], NgramIndex],
    *,
    n: int = 8,
    columns: tuple[str, ...] = ("question",),
) -> tuple[Any, dict[str, int]]:
    """Drop rows whose `columns` share an `n`-gram with any evaluation text.

    Args:
        dataset: a `datasets.Dataset`.
        eval_texts: evaluation texts, `{set name: texts}`, or a prebuilt `NgramIndex`.
        n: n-gram length in words (ignored for a prebuilt index).
        columns: the text columns checked (the question by default).

    Returns:
        `(kept rows, {"overlap:<set name>": rows dropped})`.
    """
    index = eval_texts if isinstance(eval_texts, NgramIndex) else NgramIndex(eval_texts, n)
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise DataError(f"columns {missing} are not in the data set ({dataset.column_names}); set columns=.")
    hits = [index.hits(" \n ".join(str(row[c] or "") for c in columns)) for row in dataset]
    counts: dict[str, int] = {}
    for h in hits:
        for name in h:
            counts[f"overlap:{name}"] = counts.get(f"overlap:{name}", 0) + 1
    keep = [i for i, h in enumerate(hits) if not h]
    return dataset.select(keep), counts
