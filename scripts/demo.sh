#!/usr/bin/env bash
# The main job: budget-forced generation on the embedded default model (SmolLM2-135M-Instruct), offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
if [ $# -eq 0 ]; then
  set -- "What is 17 * 23?" "Is 221 prime?" --min-thinking 64 --max-thinking 256 --num-waits 2 --max-answer 64
fi
exec hf-s1 generate "$@"
