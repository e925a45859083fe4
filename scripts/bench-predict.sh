#!/usr/bin/env bash
# `atelier backbone predict` (EfficientNet-Lite0, decoding included) against timm's Lite0 on
# the same files in the same run, as a new user would compare them: images/s for each side.
#   scripts/bench-predict.sh [ATELIER] FILE...   (PyTorch side: scripts/bench_predict_timm.py;
#   PYTHON=/path/to/python with torch, torchvision and timm; THREADS, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
B="${ATELIER:-${CARGO_TARGET_DIR:-$HOME/.cache/atelier-target}/release/atelier}"
THREADS="${THREADS:-2}"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s.%N)
RAYON_NUM_THREADS=$THREADS "$B" backbone predict --json "$@" > /dev/null
end=$(date +%s.%N)
python3 -c "import sys; n, s = int(sys.argv[1]), float(sys.argv[2]); print(f'atelier: {n} images in {s:.2f} s, {n/s:.1f} images/s (model load included)')" "$#" "$(echo "$end - $start" | bc)"
OMP_WAIT_POLICY=passive "${PYTHON:-python3}" scripts/bench_predict_timm.py --threads "$THREADS" "$@" |
  python3 -c "import json,sys; r=json.load(sys.stdin); print(f\"timm (torch {r['torch']}): {r['images']} images in {r['seconds']:.2f} s, {r['images_per_second']:.1f} images/s\")"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
