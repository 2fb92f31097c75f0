#!/usr/bin/env bash
# The main job: budget-forced generation on the embedded default model (SmolLM2-135M-Instruct), offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
if [ $# -eq 0 ]; then
  # Settings that read naturally on a 135M model: the r1 format (the model writes "<think>" text fluently; the
  # s1 format makes it continue the role name), a Wait on its own line, a cut that leaves room for an answer.
  echo "SmolLM2-135M does not reason; the point is the control: injected Waits are marked [+...], thinking is cut at 96 tokens." >&2
  set -- "What is 17 * 23?" "Is 221 prime?" "What is 2+2?" --format r1 --min-thinking 48 --max-thinking 96 \
    --num-waits 1 --extrapolation $'\nWait,' --max-answer 48
fi
exec hf-s1 generate "$@"
