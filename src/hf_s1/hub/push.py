"""Publish a model folder or a data set, with its thinking-budget policy, card and evaluation results, in one
atomic commit (or into a local folder, or as a dry-run plan)."""

from __future__ import annotations

import fnmatch
import io
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from huggingface_hub import CommitOperationAdd, DatasetCard, HfApi, ModelCard

from ..budget import ThinkingBudget
from ..formats import ThinkFormat
from ._target import Target, check_online, check_repo_id, is_local_target, local_path, resolve_token
from .cards import EvalSource, eval_results_files, load_eval_results, render_dataset_card, render_model_card
from .custom_generate import custom_generate_files
from .errors import HubConflictError, HubInputError, translate_hub_errors
from .policy import GENERATION_CONFIG_KEY, POLICY_FILE, BudgetPolicy

__all__ = ["PlannedFile", "PushPlan", "push_model", "push_dataset", "DEFAULT_IGNORE_PATTERNS"]

# Training leftovers that do not belong in a published model: Trainer / accelerate / DeepSpeed / FSDP
# checkpoints and optimizer states, logs, caches.
DEFAULT_IGNORE_PATTERNS = (
    "checkpoint-*/*", "global_step*/*", "optimizer*", "scheduler*.pt", "rng_state*", "training_args.bin",
    "pytorch_model_fsdp_*/*", "*.distcp", "runs/*", "wandb/*", ".git/*", ".cache/*", "__pycache__/*", "*.pyc",
    ".ipynb_checkpoints/*", ".DS_Store",
)


@dataclass(frozen=True)
class PlannedFile:
    """One file of a push: a file of the source folder (`source`) or generated content (`content`)."""

    path_in_repo: str
    size: int
    source: Union[Path, None] = None
    content: Union[bytes, None] = field(default=None, repr=False)

    @property
    def generated(self) -> bool:
        return self.content is not None

    def operation(self) -> CommitOperationAdd:
        data: Any = self.content if self.content is not None else str(self.source)
        return CommitOperationAdd(path_in_repo=self.path_in_repo, path_or_fileobj=data)


@dataclass
class PushPlan:
    """What a push writes, in one commit. Returned by `push_model` / `push_dataset` (filled with the commit after
    a real push; as is for `dry_run=True`).

    Attributes:
        target: the repo id, or the local folder.
        repo_type: `"model"` or `"dataset"`.
        local: whether the target is a local folder.
        files: every file of the commit, in order.
        skipped: files of the source folder left out (checkpoints, optimizer states, other training leftovers).
        replaced: files of the source folder superseded by generated ones (`README.md`, `generation_config.json`).
        card: the rendered `ModelCard` / `DatasetCard` (also in `files` as `README.md`).
        policy: the thinking-budget policy stored, if any.
        revision, private, create_pr, commit_message: the commit settings.
        commit_url, commit_oid, pr_url: set after a push to the Hub.
    """

    target: str
    repo_type: str
    local: bool
    files: list[PlannedFile]
    skipped: list[str]
    card: Union[ModelCard, DatasetCard]
    policy: Union[BudgetPolicy, None]
    revision: Union[str, None]
    private: Union[bool, None]
    create_pr: bool
    commit_message: str
    dry_run: bool = True
    commit_url: Union[str, None] = None
    commit_oid: Union[str, None] = None
    pr_url: Union[str, None] = None
    replaced: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        return [f.path_in_repo for f in self.files]

    def file(self, path_in_repo: str) -> PlannedFile:
        for f in self.files:
            if f.path_in_repo == path_in_repo:
                return f
        raise KeyError(path_in_repo)

    def read(self, path_in_repo: str) -> bytes:
        """The bytes a file of the plan will have."""
        f = self.file(path_in_repo)
        return f.content if f.content is not None else f.source.read_bytes()

    def operations(self) -> list[CommitOperationAdd]:
        """The `huggingface_hub` operations of the single commit."""
        return [f.operation() for f in self.files]

    def __str__(self) -> str:
        where = f"local folder {self.target}" if self.local else f"{self.repo_type} repo {self.target}"
        head = f"{'plan: ' if self.dry_run else ''}one commit to {where}"
        if self.revision:
            head += f" (revision {self.revision})"
        lines = [head, f"  message: {self.commit_message}"]
        lines += [f"  + {f.path_in_repo} ({_size(f.size)}{', generated' if f.generated else ''})" for f in self.files]
        lines += [f"  ~ {p} (source file replaced by the generated one)" for p in self.replaced]
        lines += [f"  - {p} (left out)" for p in self.skipped]
        if self.commit_url:
            lines.append(f"  commit: {self.commit_url}")
        return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _collect(folder: Path, ignore: Sequence[str], generated: set[str]) -> tuple[list[PlannedFile], list[str], list[str]]:
    files: list[PlannedFile] = []
    skipped: list[str] = []
    replaced: list[str] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        parts = rel.split("/")
        # A pattern "x/*" leaves out the whole folder x, at any depth below the root.
        dirs = ["/".join(parts[: i + 1]) + "/*" for i in range(len(parts) - 1)] + [d + "/*" for d in parts[:-1]]
        if rel in generated:
            replaced.append(rel)
        elif any(fnmatch.fnmatch(c, pat) for pat in ignore for c in (rel, parts[-1], *dirs)):
            skipped.append(rel)
        else:
            files.append(PlannedFile(rel, path.stat().st_size, source=path))
    return files, skipped, replaced


def _generated(path: str, content: Union[str, bytes]) -> PlannedFile:
    data = content.encode() if isinstance(content, str) else content
    return PlannedFile(path, len(data), content=data)


def _generation_config(folder: Path, policy: BudgetPolicy) -> bytes | None:
    """The folder's generation config with the policy under `thinking_budget` (made from config.json if absent)."""
    path = folder / "generation_config.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise HubInputError(f"{path} is not valid JSON ({exc}): fix it or delete it before pushing.") from None
    else:
        from transformers import AutoConfig, GenerationConfig

        try:
            data = GenerationConfig.from_model_config(AutoConfig.from_pretrained(folder)).to_diff_dict()
        except (OSError, ValueError):
            return None  # not a transformers folder: thinking_budget.json alone carries the policy
    data[GENERATION_CONFIG_KEY] = policy.to_dict()
    # A config marked as derived from config.json is rebuilt from it at load time, which would drop the policy.
    data.pop("_from_model_config", None)
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _policy_of(budget: Any, think_format: Any, folder: Path | None) -> BudgetPolicy | None:
    if budget is None:
        if think_format is not None:
            raise HubInputError("think_format without budget: pass budget=ThinkingBudget(...) as well.")
        return BudgetPolicy.load(folder) if folder is not None else None
    if isinstance(budget, BudgetPolicy):
        return budget if think_format is None else BudgetPolicy(budget.budget, think_format)
    return BudgetPolicy(budget, think_format)


def push_model(
    folder: Union[str, os.PathLike],
    target: Target,
    *,
    budget: Union[ThinkingBudget, BudgetPolicy, Mapping[str, Any], None] = None,
    think_format: Union[str, ThinkFormat, None] = None,
    eval_results: EvalSource | None = None,
    custom_generate: bool = True,
    private: bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    ignore_patterns: Sequence[str] = (),
    token: Union[str, bool, None] = None,
    endpoint: str | None = None,
    dry_run: bool = False,
    **card_fields: Any,
) -> PushPlan:
    """Publish a model folder with its thinking-budget policy, card and evaluation results in one commit.

    The commit holds the folder's files (checkpoints, optimizer states and other training leftovers left out),
    plus `README.md` (the card), `thinking_budget.json` and `generation_config.json` (policy under
    `thinking_budget`), `.eval_results/<benchmark>.yaml` and, with `custom_generate=True`, the
    `custom_generate/` layout for `model.generate(custom_generate=repo, trust_remote_code=True)`.

    Args:
        folder: a `save_pretrained` folder.
        target: a Hub repo id (`"me/s1-smollm2"`), or a local folder (a `Path`, or a string starting with `/`,
            `./`, `../` or `~`), which must be new or empty.
        budget: the default `ThinkingBudget` (or a `BudgetPolicy` / dict); default: the folder's own policy.
        think_format: the model's think format (`"s1"`, `"r1"`, a `ThinkFormat`); default: detected at use.
        eval_results: see `load_eval_results` (records, rows, or an evaluation output folder).
        custom_generate: add the `custom_generate/` layout.
        private: create the repo private (only used when it does not exist yet).
        revision: branch to commit to (created from the default branch if missing).
        create_pr: open a pull request instead of committing to the branch.
        commit_message: default `"Upload model with hf-s1 (<policy>)"`.
        ignore_patterns: more glob patterns to leave out (`"name"`, `"path/*"`).
        token: a write token; default: the saved login or `HF_TOKEN`. Never printed or logged.
        endpoint: another Hub endpoint (e.g. a private Hub).
        dry_run: return the plan (operations and rendered card) without writing or using the network.
        card_fields: card content, `render_model_card`'s keyword arguments: `base_model`, `datasets`, `tags`,
            `license`, `language` (default `"en"`), `model_name`, `description`.

    Returns:
        The `PushPlan`; after a Hub push it holds `commit_url` / `commit_oid` (and `pr_url`).

    Examples:

    ```python
    >>> import tempfile, json, pathlib
    >>> from hf_s1 import ThinkingBudget
    >>> from hf_s1.hub import push_model
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    >>> _ = (folder / "optimizer.pt").write_bytes(b"...")
    >>> plan = push_model(folder, "me/s1-smollm2", budget=ThinkingBudget(max_thinking_tokens=512), dry_run=True,
    ...                   base_model="HuggingFaceTB/SmolLM2-135M-Instruct", datasets=["simplescaling/s1K"])
    >>> plan.skipped
    ['optimizer.pt']
    >>> "thinking_budget.json" in plan.paths and "custom_generate/generate.py" in plan.paths
    True
    >>> plan.card.data.datasets
    ['simplescaling/s1K']

    ```
    """
    src = Path(folder)
    if not src.is_dir():
        raise HubInputError(f"model folder {str(src)!r} does not exist: pass the folder written by save_pretrained.")
    if not (src / "config.json").is_file():
        raise HubInputError(f"{str(src)!r} has no config.json: pass a folder written by model.save_pretrained(...).")
    local = is_local_target(target, existing_dirs=False)
    target_str = os.fspath(target)
    if not local:
        check_repo_id(target_str, "model")
    policy = _policy_of(budget, think_format, src)
    records = load_eval_results(eval_results)

    card = render_model_card(target_str, policy=policy, eval_results=records, custom_generate=custom_generate,
                             **card_fields)
    generated = [_generated("README.md", str(card))]
    if policy is not None:
        generated.append(_generated(POLICY_FILE, policy.to_json()))
        gen_config = _generation_config(src, policy)
        if gen_config is not None:
            generated.append(_generated("generation_config.json", gen_config))
    if custom_generate:
        generated += [_generated(p, c) for p, c in custom_generate_files(policy).items()]
    generated += [_generated(p, c) for p, c in eval_results_files(records).items()]

    files, skipped, replaced = _collect(src, (*DEFAULT_IGNORE_PATTERNS, *ignore_patterns),
                                        {g.path_in_repo for g in generated})
    message = commit_message or f"Upload model with hf-s1 ({policy.describe() if policy else 'no thinking budget'})"
    plan = PushPlan(target_str, "model", local, files + generated, skipped, card, policy, revision, private,
                    create_pr, message, replaced=replaced)
    return _execute(plan, token=token, endpoint=endpoint, dry_run=dry_run)


def _execute(plan: PushPlan, *, token: Union[str, bool, None], endpoint: str | None, dry_run: bool) -> PushPlan:
    if plan.local and (plan.revision or plan.create_pr):
        raise HubInputError(f"revision= and create_pr= apply to Hub repos; {plan.target!r} is a local folder target.")
    if dry_run:
        return plan
    plan.dry_run = False
    if plan.local:
        _write_local(plan)
        plan.commit_url = str(local_path(plan.target).resolve())
        return plan
    check_online(plan.target, "push to")
    api = HfApi(endpoint=endpoint, token=resolve_token(token, plan.target))
    with translate_hub_errors(plan.target, repo_type=plan.repo_type, revision=plan.revision, action="push to"):
        api.create_repo(plan.target, repo_type=plan.repo_type, private=plan.private, exist_ok=True)
        if plan.revision and not plan.create_pr:
            api.create_branch(plan.target, repo_type=plan.repo_type, branch=plan.revision, exist_ok=True)
        info = api.create_commit(
            plan.target, plan.operations(), commit_message=plan.commit_message, repo_type=plan.repo_type,
            revision=plan.revision, create_pr=plan.create_pr,
        )
    plan.commit_url, plan.commit_oid, plan.pr_url = info.commit_url, info.oid, info.pr_url
    return plan


def _write_local(plan: PushPlan) -> None:
    """Write every file into a fresh sibling folder, then move it into place: all or nothing."""
    target = local_path(plan.target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise HubConflictError(
            f"local target {str(target)!r} exists and is not empty; nothing was written. Push to a new or empty folder."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for f in plan.files:
            out = tmp / f.path_in_repo
            out.parent.mkdir(parents=True, exist_ok=True)
            if f.content is not None:
                out.write_bytes(f.content)
            else:
                shutil.copyfile(f.source, out)
        if target.exists():
            target.rmdir()  # empty, checked above
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---- data sets -----------------------------------------------------------------------------------------

_TRACE_COLUMNS = ("thinking_trajectories", "gemini_thinking_trajectory", "deepseek_thinking_trajectory", "cot",
                  "thinking", "reasoning")
_ANSWER_COLUMNS = ("attempt", "solution", "answer", "gemini_attempt", "deepseek_attempt")


def _as_dataset_dict(data: Any, split: str):
    import datasets

    if isinstance(data, datasets.DatasetDict):
        return data
    if isinstance(data, datasets.Dataset):
        return datasets.DatasetDict({split: data})
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.is_file():
            raise HubInputError(f"data file {str(path)!r} does not exist: pass a .jsonl, .json or .parquet file, or a Dataset.")
        if path.suffix == ".parquet":
            ds = datasets.Dataset.from_parquet(str(path))
        elif path.suffix in (".jsonl", ".json"):
            ds = datasets.Dataset.from_json(str(path))
        else:
            raise HubInputError(f"unsupported data file {path.name!r}: use .jsonl, .json or .parquet.")
        return datasets.DatasetDict({split: ds})
    if isinstance(data, Sequence) and data and all(isinstance(r, Mapping) for r in data):
        return datasets.DatasetDict({split: datasets.Dataset.from_list(list(data))})
    raise HubInputError(
        f"data must be a datasets.Dataset / DatasetDict, a list of row dicts, or a .jsonl/.json/.parquet path, got "
        f"{type(data).__name__}."
    )


def push_dataset(
    data: Any,
    target: Target,
    *,
    split: str = "train",
    private: bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    token: Union[str, bool, None] = None,
    endpoint: str | None = None,
    dry_run: bool = False,
    **card_fields: Any,
) -> PushPlan:
    """Publish an s1K-style data set (questions with reasoning traces) as parquet plus a dataset card, in one commit.

    Every split needs a `question` column and a trace or answer column (`thinking_trajectories`, `attempt`,
    `solution`, ... as in `simplescaling/s1K`).

    Args:
        data: a `Dataset`, a `DatasetDict`, a list of row dicts, or a `.jsonl` / `.json` / `.parquet` file.
        target: a Hub dataset repo id, or a local folder (as in `push_model`).
        split: the split name for a single data set.
        card_fields: card content, `render_dataset_card`'s keyword arguments: `pretty_name`, `description`,
            `license`, `language` (default `"en"`), `source_datasets`, `tags`.
        private, revision, create_pr, commit_message, token, endpoint, dry_run: as in `push_model`.

    Examples:

    ```python
    >>> from hf_s1.hub import push_dataset
    >>> rows = [{"question": "1+1?", "thinking_trajectories": ["1+1=2"], "attempt": "2"}]
    >>> plan = push_dataset(rows, "me/s1k-mini", license="mit", dry_run=True)
    >>> plan.paths
    ['data/train-00000-of-00001.parquet', 'README.md']
    >>> plan.card.data.configs[0]["data_files"]
    [{'split': 'train', 'path': 'data/train-*.parquet'}]

    ```
    """
    local = is_local_target(target, existing_dirs=False)
    target_str = os.fspath(target)
    if not local:
        check_repo_id(target_str, "dataset")
    dd = _as_dataset_dict(data, split)
    trace_column = None
    for name, ds in dd.items():
        cols = set(ds.column_names)
        if "question" not in cols:
            raise HubInputError(f"split {name!r} has no 'question' column (columns: {sorted(cols)}): s1K-style data "
                                f"needs question plus a trace or answer column; rename your columns.")
        if not cols & set(_TRACE_COLUMNS + _ANSWER_COLUMNS):
            raise HubInputError(f"split {name!r} has no trace or answer column: add one of "
                                f"{list(_TRACE_COLUMNS + _ANSWER_COLUMNS)}.")
        trace_column = trace_column or next((c for c in _TRACE_COLUMNS if c in cols), None)
    files = []
    for name, ds in dd.items():
        buf = io.BytesIO()
        ds.to_parquet(buf)
        files.append(_generated(f"data/{name}-00000-of-00001.parquet", buf.getvalue()))
    first = next(iter(dd.values()))
    card = render_dataset_card(target_str, splits={n: ds.num_rows for n, ds in dd.items()},
                               columns=first.column_names, trace_column=trace_column, **card_fields)
    files.append(_generated("README.md", str(card)))
    message = commit_message or f"Upload data set with hf-s1 ({sum(ds.num_rows for ds in dd.values())} rows)"
    plan = PushPlan(target_str, "dataset", local, files, [], card, None, revision, private, create_pr, message)
    return _execute(plan, token=token, endpoint=endpoint, dry_run=dry_run)
