#!/usr/bin/env bash
# Creates .venv and installs PyTorch, the build and test tools, and every package of the monorepo.
# Re-run it after changing C++/CUDA code: it rebuilds carafe-ops.
#   --tools-only                     only the venv, PyTorch and the build/test tools (what ci/wheels.sh needs)
#   CARAFE_OPS_WHEEL=path.whl        install carafe-ops from that wheel (e.g. one ci/wheels.sh built and checked)
#   CARAFE_CUDA=AUTO|ON|OFF          otherwise build it: the CUDA backend where nvcc is found (default AUTO)
#   CARAFE_CUDA_ARCHITECTURES=...    CMake CUDA architectures (default: every major one the toolkit supports)
#   CARAFE_TORCH_INDEX_URL=...       where to get PyTorch from (e.g. https://download.pytorch.org/whl/cu129 for a
#                                    CUDA 12.9 PyTorch beside a +cu129 carafe-ops); default: the package index
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [ ! -x "$PY" ]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
log "installing PyTorch and tools"
"$PY" -m pip install --quiet --upgrade pip
# torch 2.14.1 / torchvision 0.29.1 are the versions this project is tested with (a CUDA build that also runs on CPU)
"$PY" -m pip install --quiet torch==2.14.1 torchvision==0.29.1 \
  ${CARAFE_TORCH_INDEX_URL:+--index-url "$CARAFE_TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple}
"$PY" -m pip install --quiet "scikit-build-core>=0.10" "pybind11>=2.12" "poetry-core>=2.0" ninja cmake wheel \
  pytest matplotlib
# deployment checks: ONNX export and onnxruntime, fvcore's FLOP counter
"$PY" -m pip install --quiet onnx onnxscript onnxruntime fvcore
[ "${1:-}" = "--tools-only" ] && exit 0

if [ -n "${CARAFE_OPS_WHEEL:-}" ]; then
  log "installing carafe-ops from $CARAFE_OPS_WHEEL"
  "$PY" -m pip install --quiet --force-reinstall --no-deps $CARAFE_OPS_WHEEL
else
  log "building and installing carafe-ops (CARAFE_CUDA=${CARAFE_CUDA:-AUTO})"
  "$PY" -m pip install --quiet --no-build-isolation "$REPO_ROOT/packages/carafe-ops"
fi
"$PY" -c "import carafe_ops, json; print('carafe-ops', carafe_ops.__version__, json.dumps(carafe_ops.build_info()))"

# the pure-Python packages, in dependency order (carafe-engine first: the task packages train with it)
for package in carafe-engine carafe-seg carafe-inpaint carafe-det; do
  if [ -d "$REPO_ROOT/packages/$package" ]; then
    log "installing $package"
    "$PY" -m pip install --quiet --no-build-isolation -e "$REPO_ROOT/packages/$package"
  fi
done
