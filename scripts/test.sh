#!/usr/bin/env bash
# Run the test suite on real engines (transformers, vLLM on CPU, accelerate, Gradio in headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
# Browser tests drive Debian's Chromium (playwright cannot download its own browser here).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: chromium not installed"
fi
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# One torch thread per process: the suite runs several processes at once (accelerate, the vLLM server),
# and more threads than free cores make CPU decoding collapse (bench/README.md, Space section).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# Two workers (one file per worker at a time: module fixtures stay in one process), as many as the CI machine has
# cores; HF_S1_TEST_WORKERS=0 runs in one process.
exec python -m pytest -q -n "${HF_S1_TEST_WORKERS:-2}" --dist loadfile --durations=30 "$@"
