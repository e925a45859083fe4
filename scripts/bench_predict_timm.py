#!/usr/bin/env python3
"""PyTorch's side of `scripts/bench-predict.sh`: timm's EfficientNet-Lite0 (random weights: the
speed is the same) on image files as `atelier backbone predict` takes them: PIL decode, shorter
side resized to 256, centre crop 224, normalised, batches of 32, top-5 of the softmax. Prints
images/s over all the files as one JSON object, timed as a user of `atelier backbone predict`
sees it: from building the model (after Python's imports) to the last batch, decoding and the
first (cold) batch included.

    python3 scripts/bench_predict_timm.py --threads 2 FILE...
"""

import argparse
import json
import time

import timm
import torch
from PIL import Image
from torchvision import transforms


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    prepare = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
    ])
    with torch.inference_mode():
        for i in range(0, len(args.files), args.batch):
            batch = torch.stack([prepare(Image.open(f).convert("RGB"))
                                 for f in args.files[i:i + args.batch]])
            torch.softmax(model(batch), 1).topk(5)
    seconds = time.perf_counter() - start
    print(json.dumps({"torch": torch.__version__, "images": len(args.files),
                      "seconds": seconds, "images_per_second": len(args.files) / seconds}))


if __name__ == "__main__":
    main()
