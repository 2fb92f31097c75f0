"""Stage the Space folder for the Hub (app, helpers, front matter, requirements, and a copy of the `hf_s1`
package, so the Space needs no hf-s1 release), then upload it with `huggingface_hub`.

    python spaces/deploy.py --out build/space                       # stage only, inspect the folder
    python spaces/deploy.py --out build/space --repo-id you/s1-demo # stage and upload (needs `hf auth login`)
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

__all__ = ["SPACE_FILES", "stage_space", "push_space", "main"]

HERE = Path(__file__).resolve().parent
SPACE_FILES = ("app.py", "space_settings.py", "thought_view.py", "requirements.txt", "README.md")


def _package_dir() -> Path:
    import hf_s1

    return Path(hf_s1.__file__).resolve().parent


def stage_space(out_dir: str | Path) -> Path:
    """Write a ready-to-upload Space into `out_dir` (replaced if it exists) and return it.

    The `hf_s1` package is copied beside `app.py`: a Space runs `app.py` from its own folder, so
    `import hf_s1` finds the copy, and `requirements.txt` only lists hf-s1's dependencies.

    Args:
        out_dir: the folder to write; anything in it is removed first.
    """
    out = Path(out_dir).resolve()
    if out == HERE or HERE in out.parents:
        raise ValueError(f"stage the Space outside spaces/ (got {out}): e.g. --out build/space.")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in SPACE_FILES:
        shutil.copy2(HERE / name, out / name)
    shutil.copytree(_package_dir(), out / "hf_s1", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return out


def push_space(folder: str | Path, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Create the Space `repo_id` (Gradio SDK) if needed and upload `folder` in one commit; returns its URL.

    Args:
        folder: a folder made by `stage_space`.
        repo_id: `namespace/name` of the Space.
        private: create the Space private.
        token: a Hub token with write access; by default the one saved by `hf auth login` or `HF_TOKEN`.
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="space",
                      commit_message="Deploy the hf-s1 budget-forcing Space")
    return str(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Stage (and optionally upload) the hf-s1 Gradio Space.")
    parser.add_argument("--out", default="build/space", help="folder to stage into (default: build/space)")
    parser.add_argument("--repo-id", help="upload to this Space (namespace/name); without it, stage only")
    parser.add_argument("--private", action="store_true", help="create the Space private")
    args = parser.parse_args(argv)
    folder = stage_space(args.out)
    print(f"staged the Space in {folder}")
    if args.repo_id:
        print(f"uploaded: {push_space(folder, args.repo_id, private=args.private)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
