"""Where a push or pull goes: a Hub repository or a local folder; token and offline checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from huggingface_hub import constants, get_token
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from .errors import HubAuthError, HubInputError, HubOfflineError

Target = Union[str, os.PathLike]
REPO_TYPES = ("model", "dataset")


def is_local_target(target: Target, *, existing_dirs: bool = True) -> bool:
    """A `Path`, or a string that reads as a path (`/…`, `./…`, `../…`, `~…`, or, when `existing_dirs`, an
    existing folder, as `from_pretrained` does); anything else is a Hub repo id."""
    if isinstance(target, os.PathLike):
        return True
    if not isinstance(target, str) or not target:
        raise HubInputError(f"a target must be a Hub repo id ('namespace/name') or a local folder, got {target!r}.")
    return target.startswith(("/", "./", "../", "~", ".\\", "..\\")) or os.path.isabs(target) or (
        existing_dirs and os.path.isdir(target))


def local_path(target: Target) -> Path:
    return Path(os.path.expanduser(os.fspath(target)))


def check_repo_id(repo_id: str, repo_type: str) -> None:
    if repo_type not in REPO_TYPES:
        raise HubInputError(f"repo_type must be one of {REPO_TYPES}, got {repo_type!r}.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise HubInputError(
            f"{repo_id!r} is not a valid Hub repo id ({exc}); use 'namespace/name', or a path starting with './' or '/' "
            f"for a local folder."
        ) from None


def check_online(repo_id: str, action: str) -> None:
    if constants.is_offline_mode():
        raise HubOfflineError(
            f"cannot {action} {repo_id!r}: offline mode is on (HF_HUB_OFFLINE=1). Unset HF_HUB_OFFLINE, push to a "
            f"local folder ('./folder'), or pass dry_run=True to see the plan."
        )


def resolve_token(token: Union[str, bool, None], repo_id: str) -> str:
    """The token to write with; never logged or put in a message."""
    if token is False:
        raise HubAuthError(f"pushing to {repo_id!r} needs a token, but token=False was passed: pass a token or omit it.")
    value = token if isinstance(token, str) and token else get_token()
    if not value:
        raise HubAuthError(
            f"no Hugging Face token found to push to {repo_id!r}: run `hf auth login`, set the HF_TOKEN environment "
            f"variable, or pass token=... (a token with write access)."
        )
    return value
