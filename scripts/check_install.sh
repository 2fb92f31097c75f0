#!/usr/bin/env bash
# The README's by-hand install, checked verbatim: copy the repository (tracked files and untracked files git does
# not ignore; no .venv, no build outputs) into a temporary folder, create a fresh venv there, run the README's
# CPU by-hand lines exactly as written (taken from README.md, not copied here), then `hf-s1 env` and one offline
# generation on the embedded model. Exit status non-zero on the first failure. About 8 minutes on a 2-core machine
# (most of it pip).
#
#   bash scripts/check_install.sh            # what .ci/run calls
#   KEEP=1 bash scripts/check_install.sh     # keep the temporary folder for a look afterwards
set -euo pipefail
# Where a package index of the README's lines cannot be reached (CI reaches package registries only), fail over to
# the next source quickly instead of pip's 5 retries with back-off per file; the lines themselves stay verbatim.
export PIP_RETRIES=${PIP_RETRIES:-2} PIP_TIMEOUT=${PIP_TIMEOUT:-15}
repo=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/hf-s1-install-check.XXXXXX")
if [ -z "${KEEP:-}" ]; then trap 'rm -rf "$work"' EXIT; else echo "keeping $work"; fi
start=$SECONDS
step() { echo "== [$((SECONDS - start))s] $*"; }

step "clean copy of $repo in $work/repo"
mkdir -p "$work/repo"
if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$repo" && git ls-files -z --cached --others --exclude-standard \
    | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$work/repo"
else
  (cd "$repo" && tar --exclude=./.venv -cf - .) | tar -xf - -C "$work/repo"
fi

# The README's CPU lines: in the code block of "Installing by hand", the paragraphs (separated by blank lines) that
# start with "# CPU-only machine" and "# Either machine".
lines=$("$PY" - "$work/repo/README.md" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
start = text.find("Installing by hand")
block = re.search(r"```bash\n(.*?)```", text[start:], re.S) if start >= 0 else None
if block is None:
    sys.exit("check_install: README.md has no bash block after 'Installing by hand'")
paragraphs = [p.strip("\n") for p in block.group(1).split("\n\n")]
chosen = [p for p in paragraphs if p.startswith(("# CPU-only machine", "# Either machine"))]
if len(chosen) != 2 or not all(any(l and not l.startswith("#") for l in p.splitlines()) for p in chosen):
    sys.exit("check_install: README.md's by-hand block lost its '# CPU-only machine' / '# Either machine' commands")
print("\n\n".join(chosen))
EOF
)

step "fresh venv ($("$PY" --version))"
"$PY" -m venv "$work/venv"
. "$work/venv/bin/activate"
cd "$work/repo"

step "the README's CPU by-hand lines, verbatim:"
printf '%s\n' "$lines" | sed 's/^/    /'
bash -euo pipefail -c "$lines"

# A first-hour user: nothing cached from earlier runs, no network for models.
export HF_HOME="$work/hf-home" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
cd "$work"

step "hf-s1 env"
hf-s1 env

step "hf-s1 generate \"What is 2+3?\" --max-thinking 16 --json"
out=$(hf-s1 generate "What is 2+3?" --max-thinking 16 --json)
printf '%s\n' "$out"
printf '%s\n' "$out" | python -c '
import json, sys
rows = [json.loads(line) for line in sys.stdin if line.strip()]
keys = {"prompt", "thinking", "answer", "thinking_tokens", "answer_tokens", "waits", "capped", "finish_reason"}
assert len(rows) == 1 and rows[0]["prompt"] == "What is 2+3?" and set(rows[0]) == keys, rows
assert 0 < rows[0]["thinking_tokens"] <= 16, rows  # a 135M model may answer with nothing: not checked
'
step "install check passed"
