#!/usr/bin/env bash
# The build matrix: builds one carafe-ops wheel per entry, labels it (+cpu, +cu130, ...), and checks it with
# ci/check_wheel.py (imports, claimed backends and architectures present in the binary, agrees with the
# reference). libcarafe never links libtorch, so the matrix is CUDA toolkits, not torch versions.
#
#   bash ci/wheels.sh [ENTRY ...]      (default: cpu system pip-13.2 cuda12)
#
# Entries:
#   cpu          CPU-only build
#   system       the CUDA toolkit whose nvcc is on PATH (or CUDACXX)
#   pip-X.Y      a CUDA X.Y toolkit installed from PyPI (nvidia-cuda-nvcc, -runtime, -crt, -cccl, nvidia-nvvm;
#                CUDA 13 and later: NVIDIA's CUDA 12 PyPI wheels carry no nvcc) into build/toolkits
#   cuda12       the CUDA 12 toolkit at $CARAFE_CUDA12_HOME (e.g. /usr/local/cuda-12.9); skipped when unset
#   PATH         any other CUDA toolkit root (holding bin/nvcc)
# Wheels land in build/wheels/<entry>/; a summary table is printed and written to build/wheels/matrix.json.
# CARAFE_CUDA_ARCHITECTURES restricts the architectures (default: every major one the toolkit supports).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_tools
export PATH="$VENV/bin:$PATH"

TOOLKITS="$BUILD_DIR/toolkits"
OUT="$BUILD_DIR/wheels"
mkdir -p "$OUT"
entries=("$@")
[ ${#entries[@]} -gt 0 ] || entries=(cpu system pip-13.2 cuda12)

# A pip-installed toolkit for CUDA X.Y (cached in build/toolkits/cuda-X.Y); prints its root.
pip_toolkit() {
  local version="$1" root="$TOOLKITS/cuda-$1"
  if [ ! -x "$root/nvidia/cu${version%%.*}/bin/nvcc" ]; then
    rm -rf "$root"
    "$PY" -m pip install --quiet --target "$root" --no-deps \
      "nvidia-cuda-nvcc==$version.*" "nvidia-cuda-runtime==$version.*" "nvidia-cuda-crt==$version.*" \
      "nvidia-cuda-cccl==$version.*" "nvidia-nvvm==$version.*" >&2
  fi
  echo "$root/nvidia/cu${version%%.*}"
}

# cuobjdump for the checks: on PATH, or from PyPI
cuobjdump_path() {
  if command -v cuobjdump >/dev/null 2>&1; then command -v cuobjdump; return; fi
  local root="$TOOLKITS/cuobjdump"
  [ -x "$root/nvidia/cu13/bin/cuobjdump" ] || "$PY" -m pip install --quiet --target "$root" --no-deps \
    "nvidia-cuda-cuobjdump>=13.2" >&2
  echo "$root/nvidia/cu13/bin/cuobjdump"
}

# "cu130" for the toolkit whose nvcc is given
cuda_label() { "$1" --version | sed -n 's/.*release \([0-9]*\)\.\([0-9]*\).*/cu\1\2/p'; }

summary=()
status=0
for entry in "${entries[@]}"; do
  toolkit="" cuda=ON
  case "$entry" in
    cpu) cuda=OFF; label=cpu ;;
    system)
      nvcc="${CUDACXX:-$(command -v nvcc || true)}"
      if [ -z "$nvcc" ]; then summary+=("$entry|skipped: no nvcc on PATH"); continue; fi
      label=$(cuda_label "$nvcc") ;;
    pip-*) toolkit=$(pip_toolkit "${entry#pip-}"); label=$(cuda_label "$toolkit/bin/nvcc") ;;
    cuda12)
      if [ -z "${CARAFE_CUDA12_HOME:-}" ]; then
        summary+=("$entry|skipped: set CARAFE_CUDA12_HOME to a CUDA 12 toolkit (PyPI's nvidia-cuda-nvcc-cu12 has no nvcc)")
        continue
      fi
      toolkit="$CARAFE_CUDA12_HOME"; label=$(cuda_label "$toolkit/bin/nvcc") ;;
    *) toolkit="$entry"; label=$(cuda_label "$toolkit/bin/nvcc") ;;
  esac
  log "wheel $entry (+$label)"
  dest="$OUT/$entry"
  rm -rf "$dest" && mkdir -p "$dest"
  start=$SECONDS
  if ! CARAFE_CUDA=$cuda CARAFE_CUDA_TOOLKIT_ROOT="$toolkit" "$PY" -m pip wheel --quiet --no-deps \
      --no-build-isolation -C build-dir="$BUILD_DIR/wheel-build/$entry" -w "$dest" "$REPO_ROOT/packages/carafe-ops"; then
    summary+=("$entry|FAIL: build"); status=1; continue
  fi
  wheel=$("$PY" "$REPO_ROOT/ci/relabel_wheel.py" "$dest"/carafe_ops-*.whl "$label")
  if "$PY" "$REPO_ROOT/ci/check_wheel.py" "$wheel" --cuobjdump "$(cuobjdump_path)" --json "$dest/check.json"; then
    summary+=("$entry|ok|$(basename "$wheel")|$((SECONDS - start))s")
  else
    summary+=("$entry|FAIL: check|$(basename "$wheel")"); status=1
  fi
done

log "matrix"
printf '%s\n' "${summary[@]}" | column -t -s '|'
printf '%s\n' "${summary[@]}" | "$PY" -c "import json,sys; print(json.dumps([l.rstrip().split('|') for l in sys.stdin], indent=2))" > "$OUT/matrix.json"
exit $status
