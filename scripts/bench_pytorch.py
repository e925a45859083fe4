#!/usr/bin/env python3
"""PyTorch's side of atelier's throughput benchmark (crates/atelier-train/benches/throughput.rs).

Measures images/s of inference (eval mode, torch.inference_mode) and of one training step
(train mode: forward, cross-entropy vs random targets, loss.item(), backward, AdamW step; also
split into those phases) for
torchvision's resnet18/resnet50 and efficientnet_lite_pytorch's efficientnet-lite0, random
weights, with their 1000-class classifiers, on the CPU with a fixed thread count or on a CUDA
GPU. Prints one JSON object on stdout; a model that cannot be built gets an "error" instead of
a number.

Precisions: fp32 (PyTorch's defaults: on CUDA, cuDNN may use TF32 for convolutions) and, on
CUDA, bf16 (torch.autocast to bfloat16, model and images in channels_last, cudnn.benchmark on
as for any tuned GPU run).

    python3 scripts/bench_pytorch.py --models resnet18 --threads 2
    python3 scripts/bench_pytorch.py --device cuda --precisions fp32,bf16 --batch 128
"""

import contextlib

import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F
import torchvision

CLASSES = 1000


def build(name):
    if name == "resnet18":
        return torchvision.models.resnet18(weights=None, num_classes=CLASSES)
    if name == "resnet34":
        return torchvision.models.resnet34(weights=None, num_classes=CLASSES)
    if name == "resnet50":
        return torchvision.models.resnet50(weights=None, num_classes=CLASSES)
    if name == "efficientnet-lite0":
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:
            raise RuntimeError(
                f"needs efficientnet_lite_pytorch ({e}); pip install efficientnet_lite_pytorch"
            ) from e
        return EfficientNet.from_name("efficientnet-lite0", num_classes=CLASSES)
    raise RuntimeError(f"no PyTorch model for `{name}`")


def synchronize(device):
    """Waits for queued GPU work (a no-op on the CPU), so that a step's time is its own."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(warmup, iterations, batch, step, device):
    """Runs `step(timed)` `warmup` times untimed, then `iterations` times timed."""
    for _ in range(warmup):
        step(False)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(iterations):
        step(True)
    synchronize(device)
    return iterations * batch / (time.perf_counter() - start)


def autocast(args):
    """The precision's context: bf16 autocast on CUDA, nothing for fp32."""
    if args.precision == "bf16":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bench_inference(model, images, args):
    model.eval()

    def step(_timed):
        with torch.inference_mode(), autocast(args):
            # Reading the logits back waits for the GPU, as atelier's side does.
            model(images).float().cpu()

    rate = images_per_second(args.warmup, args.inference_iters, args.batch, step, images.device)
    return rate, None


def bench_training(model, images, args):
    """Images/s, and mean ms per timed step in forward (with the loss read back), backward and
    the optimiser, as atelier's side splits its step."""
    model.train()
    targets = torch.randint(0, CLASSES, (args.batch,), generator=torch.Generator().manual_seed(11))
    targets = targets.to(images.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    total = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}

    def step(timed):
        start = time.perf_counter()
        with autocast(args):
            loss = F.cross_entropy(model(images), targets)
        value = loss.item()
        if value != value:
            raise RuntimeError(f"training loss is {value}")
        forward = time.perf_counter()
        loss.backward()
        synchronize(images.device)
        backward = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(images.device)
        end = time.perf_counter()
        if timed:
            total["forward"] += forward - start
            total["backward"] += backward - forward
            total["optimizer"] += end - backward

    rate = images_per_second(args.warmup, args.training_iters, args.batch, step, images.device)
    return rate, {k: v * 1e3 / args.training_iters for k, v in total.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,resnet50,efficientnet-lite0")
    parser.add_argument("--modes", default="inference,training")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--inference-iters", type=int, default=5)
    parser.add_argument("--training-iters", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precisions", default="fp32")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(7)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("--device cuda: torch.cuda.is_available() is False")
        torch.backends.cudnn.benchmark = True
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = "cpu"
    results = []
    for name in [m for m in args.models.split(",") if m]:
        for mode in [m for m in args.modes.split(",") if m]:
            for precision in [p for p in args.precisions.split(",") if p]:
                results.append(measure(name, mode, precision, device, args))
    report = {
        "torch": torch.__version__,
        "device": device_name,
        "threads": torch.get_num_threads(),
        "results": results,
    }
    json.dump(report, sys.stdout)
    print()


def measure(name, mode, precision, device, args):
    """One model, mode and precision: its entry of the report."""
    entry = {"model": name, "mode": mode, "precision": precision}
    try:
        if precision not in ("fp32", "bf16"):
            raise RuntimeError(f"unknown precision `{precision}`")
        if precision == "bf16" and device.type != "cuda":
            raise RuntimeError("bf16 is measured on CUDA only")
        args.precision = precision
        layout = torch.channels_last if precision == "bf16" else torch.contiguous_format
        # A fresh model per mode, as atelier's side builds one per mode.
        model = build(name).to(device, memory_format=layout)
        images = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(7))
        images = images.to(device).contiguous(memory_format=layout)
        if mode == "inference":
            rate, phases = bench_inference(model, images, args)
        elif mode == "training":
            rate, phases = bench_training(model, images, args)
        else:
            raise RuntimeError(f"unknown mode `{mode}`")
        entry["images_per_second"] = rate
        if phases is not None:
            entry["phases"] = phases
    except RuntimeError as e:
        entry["images_per_second"] = None
        entry["error"] = str(e)
    print(f"pytorch {name} {mode} {precision}: {entry.get('images_per_second')}", file=sys.stderr)
    return entry


if __name__ == "__main__":
    main()
