"""Fetch models and data sets published with `push_model` / `push_dataset`: pinned revisions, offline use from the
Hugging Face cache, local folders; the thinking-budget policy comes back with the model. A pull never deletes or
overwrites a local file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, NamedTuple, Union

from huggingface_hub import snapshot_download

from ..budget import ThinkingBudget
from ._target import Target, check_repo_id, is_local_target, local_path
from .errors import HubConflictError, HubInputError, translate_hub_errors
from .policy import GENERATION_CONFIG_KEY, BudgetPolicy, warn_stored_policy

__all__ = ["PulledModel", "pull_model", "pull_snapshot", "pull_policy", "pull_dataset"]


class PulledModel(NamedTuple):
    """`(model, tokenizer, budget)`; `budget` is `None` when the repo stores no policy."""

    model: Any
    tokenizer: Any
    budget: Union[ThinkingBudget, None]


def pull_snapshot(
    source: Target,
    *,
    repo_type: str = "model",
    revision: str | None = None,
    token: Union[str, bool, None] = None,
    cache_dir: Union[str, os.PathLike, None] = None,
    local_dir: Union[str, os.PathLike, None] = None,
    local_files_only: bool = False,
    endpoint: str | None = None,
    allow_patterns: Union[list[str], None] = None,
) -> Path:
    """The folder holding a repo's files: the local folder itself, or a snapshot in the Hugging Face cache.

    Offline (`HF_HUB_OFFLINE=1` or `local_files_only=True`) the cached snapshot of `revision` is used.

    Args:
        source: a Hub repo id or a local folder.
        repo_type: `"model"` or `"dataset"`.
        revision: a branch, tag or commit hash (pin a commit for reproducible runs).
        token: a read token for private or gated repos (default: the saved login). Never printed or logged.
        cache_dir: another Hugging Face cache folder.
        local_dir: also copy the files there; it must be new or empty (nothing local is overwritten).
        local_files_only: use the cache only.
        endpoint: another Hub endpoint.
        allow_patterns: only these files (globs).
    """
    if is_local_target(source):
        folder = local_path(source)
        if not folder.is_dir():
            raise HubInputError(f"local folder {str(folder)!r} does not exist.")
        if revision is not None:
            raise HubInputError(f"revision={revision!r} applies to Hub repos; {str(folder)!r} is a local folder.")
        return _copy_to(folder, local_dir)
    repo_id = os.fspath(source)
    check_repo_id(repo_id, repo_type)
    dest = None if local_dir is None else _check_empty(Path(local_dir))
    with translate_hub_errors(repo_id, repo_type=repo_type, revision=revision, action="pull"):
        snapshot = snapshot_download(
            repo_id, repo_type=repo_type, revision=revision, cache_dir=cache_dir, token=token,
            local_files_only=local_files_only, endpoint=endpoint, allow_patterns=allow_patterns,
            library_name="hf-s1",
        )
    return _copy_to(Path(snapshot), dest)


def _check_empty(dest: Path) -> Path:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise HubConflictError(
            f"local_dir {str(dest)!r} exists and is not empty; a pull never overwrites local files. Choose a new or "
            f"empty folder, or omit local_dir to use the Hugging Face cache."
        )
    return dest


def _copy_to(folder: Path, local_dir: Union[str, os.PathLike, None]) -> Path:
    if local_dir is None:
        return folder
    dest = _check_empty(Path(local_dir))
    if dest.resolve() == folder.resolve():
        return folder
    if dest.exists():
        dest.rmdir()  # empty, checked above; copytree wants to create it
    shutil.copytree(folder, dest, symlinks=False)  # resolve cache symlinks into real files
    return dest


def pull_policy(source: Target, **kwargs: Any) -> BudgetPolicy | None:
    """The thinking-budget policy of a repo or folder (fetches only the two small JSON files). Takes
    `pull_snapshot`'s keyword arguments."""
    kwargs.setdefault("allow_patterns", ["thinking_budget.json", "generation_config.json"])
    return BudgetPolicy.load(pull_snapshot(source, **kwargs))


def pull_model(source: Target, *, dtype: Any = None, device: str | None = None, **snapshot: Any) -> PulledModel:
    """Load `(model, tokenizer, budget)` from a Hub repo or a local folder, with the published thinking budget.

    The policy's think format is kept on `model.generation_config.thinking_budget`, where
    `budget_forcing_generate` (and the `custom_generate` layout) read it. No repository code is executed.

    Args:
        source: a Hub repo id (`"me/s1-smollm2"`) or a local folder.
        dtype: weights dtype (default float32), device: where to put the model.
        snapshot: `pull_snapshot`'s keyword arguments: `revision` (branch, tag or commit hash), `token`,
            `cache_dir`, `local_dir`, `local_files_only`, `endpoint`.

    Examples:

    ```python
    >>> from hf_s1 import default_model_path
    >>> from hf_s1.hub import pull_model
    >>> model, tokenizer, budget = pull_model(default_model_path())   # a local folder without a policy
    >>> budget is None, tokenizer.padding_side
    (True, 'left')

    ```
    """
    from ..models import load_model

    folder = pull_snapshot(source, **snapshot)
    if not (folder / "config.json").is_file():
        raise HubInputError(f"{os.fspath(source)!r} holds no config.json: it is not a transformers model.")
    policy = BudgetPolicy.load(folder)
    model, tokenizer = load_model(folder, dtype=dtype, device=device)
    if policy is not None:
        setattr(model.generation_config, GENERATION_CONFIG_KEY, policy.to_dict())
        warn_stored_policy(model)  # (load_model warned already when generation_config.json held it)
    return PulledModel(model, tokenizer, None if policy is None else policy.budget)


def pull_dataset(
    source: Target,
    *,
    revision: str | None = None,
    split: str | None = None,
    token: Union[str, bool, None] = None,
    cache_dir: Union[str, os.PathLike, None] = None,
    local_files_only: bool = False,
    endpoint: str | None = None,
):
    """Load a data set written by `push_dataset` (parquet under `data/`) from the Hub or a local folder.

    Args:
        source: a Hub dataset repo id or a local folder.
        revision: branch, tag or commit hash.
        split: return this split as a `Dataset` (default: every split, as a `DatasetDict`).
        token, cache_dir, local_files_only, endpoint: as in `pull_snapshot`.
    """
    import datasets

    folder = pull_snapshot(source, repo_type="dataset", revision=revision, token=token, cache_dir=cache_dir,
                           local_files_only=local_files_only, endpoint=endpoint,
                           allow_patterns=["README.md", "data/*"])
    by_split: dict[str, list[str]] = {}
    for f in sorted((folder / "data").glob("*.parquet")):
        by_split.setdefault(f.name.split("-")[0], []).append(str(f))
    if not by_split:
        raise HubInputError(f"{os.fspath(source)!r} has no data/*.parquet files: was it written by push_dataset?")
    if split is not None and split not in by_split:
        raise HubInputError(f"no split {split!r} in {os.fspath(source)!r}; it has {sorted(by_split)}.")
    dd = datasets.DatasetDict({s: datasets.Dataset.from_parquet(files, keep_in_memory=True)
                               for s, files in by_split.items() if split in (None, s)})
    return dd[split] if split is not None else dd
