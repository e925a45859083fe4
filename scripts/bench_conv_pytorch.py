"""PyTorch's side of `cargo bench -p atelier-models --bench conv`: the same convolution layers
(batch 8, no bias, random input), best of N runs after one warm-up, in ms per batch:
inference (no_grad forward) and one training step (forward, sum, backward with the weights
and the input requiring gradients).

    OMP_WAIT_POLICY=passive python3 scripts/bench_conv_pytorch.py [--threads 2] [--iterations 5]
"""

import argparse
import time

import torch
from torch import nn

# name, input channels, output channels, kernel, stride, groups, input size: the rows of
# crates/atelier-models/benches/conv.rs.
LAYERS = [
    ("resnet stem 7x7 s2", 3, 64, 7, 2, 1, 224),
    ("resnet18 3x3 64", 64, 64, 3, 1, 1, 56),
    ("resnet18 3x3 128 s2", 64, 128, 3, 2, 1, 56),
    ("resnet18 3x3 128", 128, 128, 3, 1, 1, 28),
    ("resnet18 3x3 256", 256, 256, 3, 1, 1, 14),
    ("resnet18 3x3 512", 512, 512, 3, 1, 1, 7),
    ("lite0 stem 3x3 s2", 3, 32, 3, 2, 1, 224),
    ("lite0 dw 3x3 96 s2", 96, 96, 3, 2, 96, 112),
    ("lite0 dw 5x5 240", 240, 240, 5, 1, 240, 28),
    ("lite0 dw 3x3 480", 480, 480, 3, 1, 480, 14),
]
BATCH = 8


def best_ms(run, iterations):
    run()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"PyTorch {torch.__version__}, {args.threads} threads, batch {BATCH}, best of {args.iterations}; ms per batch")
    print(f"{'layer':<22} {'inference':>10} {'training':>10}")
    for name, cin, cout, kernel, stride, groups, size in LAYERS:
        conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        x = torch.randn(BATCH, cin, size, size)
        with torch.no_grad():
            inference = best_ms(lambda: conv(x), args.iterations)
        learning = x.clone().requires_grad_()

        def step():
            conv.zero_grad()
            learning.grad = None
            conv(learning).sum().backward()

        print(f"{name:<22} {inference:>10.1f} {best_ms(step, args.iterations):>10.1f}")


if __name__ == "__main__":
    main()
