# Sourced by the ci/ scripts: repository paths and the virtual environment they share.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CARAFE_VENV:-$REPO_ROOT/.venv}"
PY="$VENV/bin/python"
BUILD_DIR="${CARAFE_BUILD_DIR:-$REPO_ROOT/build}"

log() { printf '\n==> %s\n' "$*"; }

# The environment is usable when carafe_ops imports from it.
env_ready() { [ -x "$PY" ] && "$PY" -c "import carafe_ops" >/dev/null 2>&1; }

ensure_env() { env_ready || bash "$REPO_ROOT/ci/setup.sh"; }

# The venv with PyTorch and the build tools, without (re)building the packages.
ensure_tools() {
  "$PY" -c "import torch, scikit_build_core, wheel" >/dev/null 2>&1 || bash "$REPO_ROOT/ci/setup.sh" --tools-only
}
