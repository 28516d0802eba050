#!/usr/bin/env bash
# The main job: sets up .venv (first run only), then runs the demo of every package into demo_output/
# (or the folder given as the first argument):
#   carafe-ops      the op checked against the reference on every backend and dtype, and a benchmark
#   carafe-seg      tiny UperNet, bilinear baseline vs CARAFE, on a generated ADE20K-layout dataset
#   carafe-inpaint  tiny Global&Local, deconvolution baseline vs CARAFE (and Partial Conv), on shipped photographs
#   carafe-det      tiny Mask R-CNN, nearest/deconv baseline vs CARAFE, on a generated COCO-format dataset
# Each writes summary.md, metrics.json and its figures; demo_output/summary.md gathers the summaries.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_env
OUT="${1:-$REPO_ROOT/demo_output}"
mkdir -p "$OUT"

ran=()
for entry in carafe-ops:carafe_ops carafe-seg:carafe_seg carafe-inpaint:carafe_inpaint carafe-det:carafe_det; do
  package="${entry%%:*}" module="${entry##*:}"
  if ! "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$module.demo') is None)" 2>/dev/null; then
    log "$package: not installed, skipped"
    continue
  fi
  log "$package demo -> $OUT/$package"
  start=$SECONDS
  "$PY" -m "$module.demo" --output "$OUT/$package"
  ran+=("$package ($((SECONDS - start)) s)")
done

{
  echo "# CARAFE toolkit demo"
  echo
  echo "Ran: ${ran[*]}"
  for summary in "$OUT"/*/summary.md; do
    echo
    sed 's/^#/##/' "$summary"
  done
} > "$OUT/summary.md"
log "done: $OUT/summary.md gathers every package's metrics; figures in $OUT/*/*.png"
