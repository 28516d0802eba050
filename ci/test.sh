#!/usr/bin/env bash
# The test suite: libcarafe's C++ tests (CTest; CPU, and the CUDA build where nvcc is found), then each
# package's pytest suite. Extra arguments go to pytest (e.g. -m heavy for the slow, memory-hungry tests).
# CUDA tests skip where there is no GPU.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_env
export PATH="$VENV/bin:$PATH"  # cmake, ninja from the venv

log "libcarafe: C++ tests, CPU backend"
cmake -S "$REPO_ROOT/core" -B "$BUILD_DIR/core-cpu" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCARAFE_CUDA=OFF >/dev/null
cmake --build "$BUILD_DIR/core-cpu"
ctest --test-dir "$BUILD_DIR/core-cpu" --output-on-failure

if command -v nvcc >/dev/null 2>&1 || [ -n "${CUDACXX:-}" ]; then
  log "libcarafe: C++ tests, CUDA backend (${CARAFE_CUDA_ARCHITECTURES:-auto} architectures; skipped without a GPU)"
  cmake -S "$REPO_ROOT/core" -B "$BUILD_DIR/core-cuda" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCARAFE_CUDA=ON \
    -DCARAFE_CUDA_ARCHITECTURES="${CARAFE_CUDA_ARCHITECTURES:-auto}" >/dev/null
  cmake --build "$BUILD_DIR/core-cuda"
  ctest --test-dir "$BUILD_DIR/core-cuda" --output-on-failure
else
  log "libcarafe: no nvcc on PATH, CUDA backend not built"
fi

status=0
log "ci: the device check's parsing and reporting"
"$PY" -m pytest "$REPO_ROOT/ci/tests" -q "$@" || status=1
for tests in "$REPO_ROOT"/packages/*/tests; do
  package="$(basename "$(dirname "$tests")")"
  log "$package: pytest"
  # one run per package: each has its own conftest.py
  "$PY" -m pytest "$tests" -q "$@" || status=1
done
exit $status
