#!/usr/bin/env bash
# Builds what scripts/gpu-check.sh runs on a GPU machine that has no Rust toolchain: atelier
# and the throughput benchmark with the `cuda` feature (burn's CUDA backend, kernels compiled
# by NVRTC at run time; nothing is downloaded at build time), stripped and xz-compressed into
# gpu-bundle/ with their checksums. Copy gpu-bundle/ and the checkout's scripts/ to the GPU
# machine and run scripts/gpu-check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/atelier-target}"
bundle="${1:-gpu-bundle}"

cargo build --locked --release -p atelier-cli --features cuda
source scripts/bench-executable.sh
throughput="$(bench_executable throughput bench --locked -p atelier-train --features cuda)"
[ -x "$throughput" ] || { echo "could not find the throughput bench binary" >&2; exit 1; }

mkdir -p "$bundle"
for pair in "atelier:$CARGO_TARGET_DIR/release/atelier" "throughput:$throughput"; do
    name="${pair%%:*}"
    strip -o "$bundle/$name" "${pair#*:}"
    xz -9 -T0 -f "$bundle/$name"
done
{
    echo "built from $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with local changes)') on $(date -u +%Y-%m-%dT%H:%MZ)"
    rustc --version
} >"$bundle/BUILD"
(cd "$bundle" && sha256sum atelier.xz throughput.xz >SHA256SUMS)
du -ch "$bundle"/*.xz | tail -n 1
