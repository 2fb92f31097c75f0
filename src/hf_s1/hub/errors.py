"""Typed errors of the Hub helpers, each naming the fix, and the translation of `huggingface_hub` errors.

The access token never appears in a message: messages are built from the repo id, the revision and the
endpoint only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from huggingface_hub import errors as hf_errors

from ..errors import HfS1Error

# The error types, as `hf_s1.hub` exports them.
HUB_ERRORS = ("HubError", "HubInputError", "HubAuthError", "HubPermissionError", "HubOfflineError",
              "HubNotFoundError", "HubConflictError")
__all__ = [*HUB_ERRORS, "HUB_ERRORS", "translate_hub_errors"]


class HubError(RuntimeError):
    """Base class of the errors raised by `hf_s1.hub`; the message says what to do."""


class HubInputError(HubError, HfS1Error):
    """Bad input: a folder that is not a model, an unknown benchmark, a malformed policy file, ... (an
    `hf_s1.HfS1Error`, so a `ValueError`)."""


class HubAuthError(HubError):
    """No token, or a token the Hub rejects."""


class HubPermissionError(HubError, PermissionError):
    """The token is valid but may not write to (or read) this repository."""


class HubOfflineError(HubError, ConnectionError):
    """Offline (`HF_HUB_OFFLINE=1` or no network) and the files are not in the local cache."""


class HubNotFoundError(HubError, FileNotFoundError):
    """The repository, revision or file does not exist (or is private and the token cannot see it)."""


class HubConflictError(HubError, FileExistsError):
    """The operation would overwrite or delete something local; nothing was changed."""


_LOGIN = "run `hf auth login`, set the HF_TOKEN environment variable, or pass token=..."


@contextlib.contextmanager
def translate_hub_errors(repo_id: str, *, repo_type: str = "model", revision: str | None = None,
                         action: str = "access") -> Iterator[None]:
    """Turn `huggingface_hub` exceptions raised inside the block into `HubError`s that name the fix.

    Args:
        repo_id: the repository the block works on (used in messages).
        repo_type: `"model"` or `"dataset"`.
        revision: the branch, tag or commit asked for, if any.
        action: a verb for messages (`"push to"`, `"pull"`).
    """
    where = f"{repo_type} repo {repo_id!r}" + (f" at revision {revision!r}" if revision else "")
    try:
        yield
    except hf_errors.OfflineModeIsEnabled as exc:
        raise HubOfflineError(
            f"cannot {action} the {where}: offline mode is on (HF_HUB_OFFLINE=1). Unset HF_HUB_OFFLINE, or use a "
            f"local folder (or dry_run=True for a push)."
        ) from exc
    except hf_errors.LocalEntryNotFoundError as exc:
        raise HubOfflineError(
            f"the {where} is not in the local cache and the Hub cannot be reached: run the pull once online "
            f"(or point cache_dir= at a cache that holds it)."
        ) from exc
    except hf_errors.RevisionNotFoundError as exc:
        raise HubNotFoundError(
            f"revision {revision!r} does not exist in the {repo_type} repo {repo_id!r}: pass an existing branch, tag "
            f"or commit hash."
        ) from exc
    except hf_errors.GatedRepoError as exc:
        raise HubPermissionError(
            f"the {where} is gated: accept its conditions on the Hub page, then retry with a token of that account."
        ) from exc
    except hf_errors.RepositoryNotFoundError as exc:
        raise HubNotFoundError(
            f"the {where} was not found: check the repo id (namespace/name) and repo type; if it is private, "
            f"{_LOGIN} with an account that can see it."
        ) from exc
    except hf_errors.EntryNotFoundError as exc:
        raise HubNotFoundError(f"a file is missing in the {where}: {_first_line(exc)}") from exc
    except hf_errors.HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 401:
            raise HubAuthError(f"the Hub rejected the token while trying to {action} the {where}: {_LOGIN} "
                               f"with a valid token.") from exc
        if status == 403:
            raise HubPermissionError(
                f"the token may not {action} the {where}: use a token with write access to that namespace "
                f"(fine-grained tokens need the repo or organization listed), or push to your own namespace."
            ) from exc
        raise HubError(f"the Hub answered HTTP {status} while trying to {action} the {where}: "
                       f"{_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
