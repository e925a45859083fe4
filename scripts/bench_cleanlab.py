#!/usr/bin/env python3
"""atelier's mistag queue against cleanlab, side by side on the same probabilities.

Reads one run's out-of-sample predictions (`atelier eval RUN --predictions --json`: test
images, and train images scored out of fold), its queue (`atelier mistags RUN --facet F
--json`) and the renderer's clean labels (`truth.csv` of `atelier synth --label-noise`), runs
cleanlab's `find_label_issues` (its defaults: prune by noise rate, ranked by self-confidence)
on exactly those probabilities, and prints per facet: the wrong labels among those rows, each
method's number of suspects, precision@50 and recall against the truth, and the confident
joint's estimate of wrong labels that the queue reports.

    pip install "cleanlab==2.9.0"
    python3 scripts/bench_cleanlab.py --atelier target/release/atelier \
        --db sqlite://atelier-demo/atelier.db --run 1 --truth atelier-demo/synth/truth.csv

Prints the table as Markdown, and with --json one JSON object instead.
"""

import argparse
import csv
import json
import os
import subprocess
import sys

import numpy as np
from cleanlab.filter import find_label_issues


def atelier(args, command):
    """Runs atelier with the run's catalogue and returns its standard output's lines."""
    full = [args.atelier, "--db", args.db, *command, "--json"]
    done = subprocess.run(full, check=True, capture_output=True, text=True)
    return [line for line in done.stdout.splitlines() if line.strip()]


def truth_by_path(path):
    """(absolute path, facet) -> clean label, from truth.csv (paths relative to its folder)."""
    folder = os.path.dirname(os.path.abspath(path))
    truth = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            image = os.path.realpath(os.path.join(folder, row["path"]))
            for facet, label in row.items():
                if facet not in ("path", "flipped") and label:
                    truth[(image, facet)] = label
    return truth


def facet_rows(predictions, facet, labels):
    """The facet's out-of-sample rows: image ids, paths, given label indices, probabilities."""
    rows = [
        p
        for p in predictions
        if p["facet"] == facet and (p["split"] == "test" or p["out_of_fold"]) and p["label"]
    ]
    ids = [p["image"] for p in rows]
    paths = [os.path.realpath(p["path"]) for p in rows]
    given = np.array([labels.index(p["label"]) for p in rows])
    # atelier stores float32 scores and computes with exactly those values: so does cleanlab here.
    probabilities = np.array([p["scores"] for p in rows], dtype=np.float32).astype(np.float64)
    return ids, paths, given, probabilities


def measure(flagged, wrong):
    """Size, precision@50 and recall of a ranked list of flagged row indices."""
    top = flagged[:50]
    precision = sum(1 for i in top if i in wrong) / len(top) if top else float("nan")
    recall = sum(1 for i in flagged if i in wrong) / len(wrong) if wrong else float("nan")
    return {"size": len(flagged), "precision_at_50": precision, "recall": recall}


def compare_facet(args, predictions, facet, labels, truth):
    ids, paths, given, probabilities = facet_rows(predictions, facet, labels)
    wrong = {
        i
        for i, (path, label) in enumerate(zip(paths, given))
        if (path, facet) in truth and truth[(path, facet)] != labels[label]
    }
    # cleanlab wants every class to have a column; probabilities are in the run's label order.
    ranked = find_label_issues(given, probabilities, return_indices_ranked_by="self_confidence")
    queue = json.loads(
        atelier(args, ["mistags", str(args.run), "--facet", facet, "--limit", "1000000"])[-1]
    )
    position = {image: i for i, image in enumerate(ids)}
    ours = [position[item["image_id"]] for item in queue["items"] if item["image_id"] in position]
    estimate = next(
        (e["estimated_wrong"] for e in queue.get("estimates", []) if e["facet"] == facet), None
    )
    return {
        "facet": facet,
        "rows": len(ids),
        "wrong_labels": len(wrong),
        "estimated_wrong": estimate,
        "atelier": measure(ours, wrong),
        "cleanlab": measure(list(ranked), wrong),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--atelier", default="target/release/atelier", help="the atelier binary")
    parser.add_argument("--db", required=True, help="the run's catalogue (--db URL)")
    parser.add_argument("--run", type=int, required=True)
    parser.add_argument("--truth", required=True, help="truth.csv of atelier synth")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    args = parser.parse_args()

    evaluation = json.loads(atelier(args, ["eval", str(args.run)])[-1])
    orders = {facet: table["labels"] for facet, table in evaluation["facets"].items()}
    predictions = [
        json.loads(line) for line in atelier(args, ["eval", str(args.run), "--predictions"])
    ]
    truth = truth_by_path(args.truth)
    results = [
        compare_facet(args, predictions, facet, labels, truth) for facet, labels in orders.items()
    ]
    if args.json:
        json.dump({"run": args.run, "facets": results}, sys.stdout, indent=1)
        print()
        return
    print(
        "| facet | wrong labels | queue's estimate | atelier: size, precision@50, recall "
        "| cleanlab: size, precision@50, recall |"
    )
    print("|---|---|---|---|---|")
    for r in results:
        a, c = r["atelier"], r["cleanlab"]
        print(
            f"| {r['facet']} | {r['wrong_labels']} of {r['rows']} | {r['estimated_wrong']} "
            f"| {a['size']}, {a['precision_at_50']:.2f}, {a['recall']:.2f} "
            f"| {c['size']}, {c['precision_at_50']:.2f}, {c['recall']:.2f} |"
        )


if __name__ == "__main__":
    main()
