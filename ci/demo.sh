#!/usr/bin/env bash
# The main job: sets up .venv (first run only), then runs the demo of every package into demo_output/.
# carafe-ops: the op checked against the reference on every backend and dtype, a benchmark, and tiny
# segmentation models with nearest / bilinear / deconvolution / CARAFE upsamplers trained side by side.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_env
OUT="${1:-$REPO_ROOT/demo_output}"

log "carafe-ops demo -> $OUT/carafe-ops"
"$PY" -m carafe_ops.demo --output "$OUT/carafe-ops"

log "done: summaries in $OUT/*/summary.md, figures in $OUT/*/*.png"
