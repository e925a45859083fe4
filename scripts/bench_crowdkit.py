#!/usr/bin/env python3
"""crowd-kit's Dawid-Skene and majority vote on a simulated crowd's votes, against the truth.

Reads `votes.csv` (task,worker,label) and `truth.csv` (task,label) from DIR, as
`cargo run -p atelier-train --release --example crowd_simulation -- --votes 3 --out DIR`
writes them, runs crowd-kit's `DawidSkene` (its defaults: 100 iterations, tolerance 1e-5) and
`MajorityVote` on the votes, and prints each one's accuracy against the truth, and for
Dawid-Skene the tasks whose posterior of the chosen label is at least --threshold (the
changes a retagging would apply) with their precision.

    pip install "crowd-kit==1.4.2"
    python3 scripts/bench_crowdkit.py DIR [--threshold 0.9] [--json]
"""

import argparse
import json
import os
import time

import pandas as pd
from crowdkit.aggregation import DawidSkene, MajorityVote


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", help="folder holding votes.csv and truth.csv")
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--json", action="store_true", help="one JSON object instead")
    args = parser.parse_args()

    votes = pd.read_csv(os.path.join(args.dir, "votes.csv"))
    truth = pd.read_csv(os.path.join(args.dir, "truth.csv")).set_index("task")["label"]

    majority = MajorityVote().fit_predict(votes)
    started = time.perf_counter()
    model = DawidSkene(n_iter=100, tol=1e-5)
    probas = model.fit_predict_proba(votes)
    seconds = time.perf_counter() - started
    labels = probas.idxmax(axis="columns")
    confidence = probas.max(axis="columns")

    aligned = truth.loc[labels.index]
    applied = confidence >= args.threshold
    result = {
        "tasks": int(len(labels)),
        "majority_accuracy": float((majority.loc[truth.index] == truth).mean()),
        "dawid_skene_accuracy": float((labels == aligned).mean()),
        "dawid_skene_iterations": len(model.loss_history_),
        "dawid_skene_seconds": seconds,
        "applied": int(applied.sum()),
        "applied_precision": float((labels[applied] == aligned[applied]).mean()),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['tasks']} tasks")
    print(f"crowd-kit majority vote accuracy   {result['majority_accuracy']:.4f}")
    print(
        f"crowd-kit Dawid-Skene accuracy     {result['dawid_skene_accuracy']:.4f}"
        f"  ({result['dawid_skene_iterations']} iterations, {seconds * 1000:.0f} ms)"
    )
    print(
        f"posterior >= {args.threshold}: {result['applied']} tasks,"
        f" precision {result['applied_precision']:.4f}"
    )


if __name__ == "__main__":
    main()
