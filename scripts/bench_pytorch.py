#!/usr/bin/env python3
"""PyTorch's side of atelier's throughput benchmark (crates/atelier-train/benches/throughput.rs).

Measures images/s of inference (eval mode, torch.inference_mode) and of one training step
(train mode: forward, cross-entropy vs random targets, loss.item(), backward, AdamW step; also
split into those phases) for
torchvision's resnet18/resnet50 and efficientnet_lite_pytorch's efficientnet-lite0, random
weights, with their 1000-class classifiers, on the CPU with a fixed thread count. Prints one
JSON object on stdout; a model that cannot be built gets an "error" instead of a number.

    python3 scripts/bench_pytorch.py --models resnet18 --threads 2
"""

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


def images_per_second(warmup, iterations, batch, step):
    """Runs `step(timed)` `warmup` times untimed, then `iterations` times timed."""
    for _ in range(warmup):
        step(False)
    start = time.perf_counter()
    for _ in range(iterations):
        step(True)
    return iterations * batch / (time.perf_counter() - start)


def bench_inference(model, images, args):
    model.eval()

    def step(_timed):
        with torch.inference_mode():
            model(images)

    return images_per_second(args.warmup, args.inference_iters, args.batch, step), None


def bench_training(model, images, args):
    """Images/s, and mean ms per timed step in forward (with the loss read back), backward and
    the optimiser, as atelier's side splits its step."""
    model.train()
    targets = torch.randint(0, CLASSES, (args.batch,), generator=torch.Generator().manual_seed(11))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    total = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}

    def step(timed):
        start = time.perf_counter()
        loss = F.cross_entropy(model(images), targets)
        value = loss.item()
        if value != value:
            raise RuntimeError(f"training loss is {value}")
        forward = time.perf_counter()
        loss.backward()
        backward = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        end = time.perf_counter()
        if timed:
            total["forward"] += forward - start
            total["backward"] += backward - forward
            total["optimizer"] += end - backward

    rate = images_per_second(args.warmup, args.training_iters, args.batch, step)
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
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(7)
    images = torch.randn(args.batch, 3, args.size, args.size)
    results = []
    for name in [m for m in args.models.split(",") if m]:
        for mode in [m for m in args.modes.split(",") if m]:
            entry = {"model": name, "mode": mode}
            try:
                # A fresh model per mode, as atelier's side builds one per mode.
                model = build(name)
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
            print(f"pytorch {name} {mode}: {entry.get('images_per_second')}", file=sys.stderr)
            results.append(entry)
    json.dump(
        {"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results},
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
