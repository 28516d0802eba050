#!/usr/bin/env bash
# The one-call device check (ci/device_check.py says what it runs and writes):
#   bash ci/device_check.sh OUTDIR [--wheels DIR] [--budget SECONDS] [--steps NAME ...]
# With an NVIDIA GPU it builds carafe-ops for that GPU, runs the CUDA tests, benchmarks and short trainings; without
# one it runs the same steps' plumbing on the CPU and reports the CUDA steps as skipped (.ci/run does that).
# PYTHON: the interpreter whose PyTorch to use (default python3); nothing is installed into it.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "${BASH_SOURCE[0]}")/device_check.py" "$@"
