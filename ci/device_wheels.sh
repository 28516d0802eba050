#!/usr/bin/env bash
# Collects, on a machine with network access, the wheels that the lent GPU machine lacks (Python 3.12,
# manylinux x86_64, no network) for ci/device_check.sh --wheels: poetry-core (to install the task packages),
# pycocotools (COCO evaluation), fvcore and its iopath, yacs and termcolor. Versions: those of the local .venv
# where it has them. Pure-Python packages published only as source (fvcore) are built into wheels here.
#   bash ci/device_wheels.sh [DIR]     (default .whl, which .gitignore ignores; carry it with the device call)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
dir="${1:-$REPO_ROOT/.whl}"
mkdir -p "$dir"
python="$PY"; [ -x "$python" ] || python=python3
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
for package in poetry-core pycocotools fvcore iopath yacs termcolor; do
  version="$("$python" -c "import importlib.metadata as m; print(m.version('$package'))" 2>/dev/null || true)"
  spec="$package${version:+==$version}"
  if ! "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      "${platforms[@]}" -d "$dir" "$spec" 2>/dev/null; then
    "$python" -m pip wheel --quiet --no-deps --no-build-isolation -w "$dir" "$spec"  # a pure-Python sdist
  fi
done
ls -1 "$dir"
