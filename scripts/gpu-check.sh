#!/usr/bin/env bash
# Measures atelier on an NVIDIA GPU against PyTorch on the same GPU, on a machine that has the
# NVIDIA driver and PyTorch (with its CUDA wheels) but no Rust toolchain and no network:
#   1. unpacks the prepared binaries (scripts/gpu-bundle.sh makes gpu-bundle/ on a build
#      machine: atelier and the throughput benchmark built with `--features cuda`, stripped,
#      xz-compressed);
#   2. finds NVRTC and CUDA's headers in PyTorch's nvidia wheels (or /usr/local/cuda) and checks
#      that `atelier devices` sees the GPU;
#   3. trains each model a few steps on the CPU and on the GPU from the same weights and batch
#      and compares the losses;
#   4. runs the throughput benchmark (inference and training steps of ResNet-18, ResNet-50 and
#      EfficientNet-Lite0 at 224 px) with PyTorch's fp32 and bf16 (autocast, channels_last)
#      numbers on the same GPU in the same run, and prints the table of atelier/PyTorch ratios.
# Everything it prints is also written to $OUT (or ./gpu-check-out).
#
#   scripts/gpu-check.sh [BUNDLE_DIR]   # on the GPU machine (default bundle: gpu-bundle/)
#   scripts/gpu-check.sh --dry-run      # on a CPU: the same steps on the CPU, small and quick;
#                                       # binaries from $ATELIER_BIN and $ATELIER_THROUGHPUT_BIN
# Settings: ATELIER_GPU_BATCH (default 128), ATELIER_GPU_ITERS (timed steps, default 10),
# ATELIER_GPU_MODELS (default resnet18,resnet50,efficientnet-lite0), ATELIER_GPU_MODEL_TIMEOUT
# (seconds per model, default 150: the whole check stays under 8 minutes), ATELIER_GPU_PYTHON
# (the interpreter with torch, default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0
if [ "${1:-}" = "--dry-run" ]; then
    dry_run=1
    shift
fi
bundle="${1:-gpu-bundle}"
out="${OUT:-gpu-check-out}"
mkdir -p "$out"
python="${ATELIER_GPU_PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
started=$SECONDS

say() { echo "== $* ($((SECONDS - started)) s)" | tee -a "$out/gpu-check.log"; }
fail() { echo "gpu-check: $*" | tee -a "$out/gpu-check.log" >&2; exit 1; }

# The binaries: unpacked from the bundle, or (dry run) the ones named by the environment.
unpack() {
    if [ "$dry_run" = 1 ]; then
        atelier="${ATELIER_BIN:?the dry run needs ATELIER_BIN (an atelier binary)}"
        throughput="${ATELIER_THROUGHPUT_BIN:?the dry run needs ATELIER_THROUGHPUT_BIN (the throughput bench binary)}"
        return
    fi
    [ -d "$bundle" ] || fail "no bundle at $bundle: run scripts/gpu-bundle.sh on a build machine and copy gpu-bundle/ here"
    (cd "$bundle" && sha256sum --check --quiet SHA256SUMS) || fail "$bundle: a file does not match SHA256SUMS"
    for name in atelier throughput; do
        if command -v xz >/dev/null; then
            xz -dc "$bundle/$name.xz" >"$work/$name"
        else
            "$python" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
                "$bundle/$name.xz" "$work/$name"
        fi
        chmod +x "$work/$name"
    done
    atelier="$work/atelier"
    throughput="$work/throughput"
    cat "$bundle/BUILD" | tee -a "$out/gpu-check.log"
}

# NVRTC and CUDA's headers, which burn's CUDA backend loads at run time: from a CUDA toolkit
# if there is one, else from the nvidia wheels PyTorch was installed with.
find_cuda_runtime() {
    local site wheel_lib header
    site="$("$python" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null || true)"
    if [ -n "$site" ] && [ -d "$site/nvidia" ]; then
        wheel_lib="$(find "$site/nvidia" -name 'libnvrtc.so*' -not -name '*builtins*' 2>/dev/null | sort | tail -n 1)"
        if [ -n "$wheel_lib" ]; then
            export LD_LIBRARY_PATH="$(dirname "$wheel_lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        fi
        if [ -z "${CUDA_PATH:-}" ] && [ ! -f /usr/local/cuda/include/cuda_fp16.h ]; then
            header="$(find "$site/nvidia" -name cuda_fp16.h -path '*include*' 2>/dev/null | sort | tail -n 1)"
            if [ -n "$header" ]; then
                export CUDA_PATH="$(dirname "$(dirname "$header")")"
            fi
        fi
    fi
    echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-} CUDA_PATH=${CUDA_PATH:-(unset: /usr/local/cuda)}" | tee -a "$out/gpu-check.log"
}

# `atelier devices` must see the device the benchmark runs on.
check_device() {
    local device="$1"
    "$atelier" devices --json | tee "$out/devices.json"
    "$python" - "$out/devices.json" "$device" <<'PY' || fail "atelier does not see a $device device (see devices.json above)"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
row = next((r for r in rows if r["device"] == sys.argv[2]), None)
sys.exit(0 if row and row["available"] else 1)
PY
}

# One run of the benchmark per model, each under its own time limit, so that a slow model
# (kernel compilation and autotuning happen in its warm-up) cannot take the others' results.
run_benchmark() {
    local device="$1" models model failed=0
    if [ "$dry_run" = 1 ]; then
        models="${ATELIER_GPU_MODELS:-resnet18}"
    else
        models="${ATELIER_GPU_MODELS:-resnet18,resnet50,efficientnet-lite0}"
    fi
    for model in ${models//,/ }; do
        say "$model on $device"
        if ! benchmark_one "$device" "$model" 2>>"$out/throughput.stderr" | tee -a "$out/throughput.txt"; then
            failed=1
            echo "gpu-check: $model failed or ran out of time (its stderr is in $out/throughput.stderr)" | tee -a "$out/gpu-check.log" >&2
        fi
    done
    return "$failed"
}

benchmark_one() {
    local device="$1" model="$2"
    (
        export ATELIER_BENCH_DEVICE="$device" ATELIER_BENCH_MODELS="$model"
        export ATELIER_BENCH_PYTHON="$python"
        export ATELIER_BENCH_PYTORCH_SCRIPT="$PWD/scripts/bench_pytorch.py"
        export OMP_WAIT_POLICY=passive
        if [ "$dry_run" = 1 ]; then
            export ATELIER_BENCH_BATCH=2 ATELIER_BENCH_SIZE=32 ATELIER_BENCH_ITERS=1
            export ATELIER_BENCH_WARMUP=1 ATELIER_BENCH_LOSS_CHECK=2
            export ATELIER_BENCH_PRECISIONS=fp32
        else
            export ATELIER_BENCH_BATCH="${ATELIER_GPU_BATCH:-128}"
            export ATELIER_BENCH_ITERS="${ATELIER_GPU_ITERS:-10}"
            # Kernels are compiled and tuned on their first batches.
            export ATELIER_BENCH_WARMUP=3 ATELIER_BENCH_LOSS_CHECK=3
            export ATELIER_BENCH_PRECISIONS=fp32,bf16
        fi
        timeout "${ATELIER_GPU_MODEL_TIMEOUT:-150}" "$throughput" --bench
    )
}

say "unpacking"
unpack
if [ "$dry_run" = 1 ]; then
    device=cpu
else
    device=cuda
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$out/gpu-check.log"
    find_cuda_runtime
fi
say "checking that atelier sees the $device device"
check_device "$device"
if [ "$dry_run" = 0 ]; then
    "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))' | tee -a "$out/gpu-check.log" \
        || fail "$python cannot use torch on CUDA (PyTorch's numbers are half the table): set ATELIER_GPU_PYTHON"
fi
say "loss check and throughput on $device"
if ! run_benchmark "$device"; then
    tail -n 20 "$out/throughput.stderr" >&2
    fail "the benchmark failed for at least one model (above; all of its stderr is in $out/throughput.stderr)"
fi
say "done"
