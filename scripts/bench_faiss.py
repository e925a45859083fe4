#!/usr/bin/env python3
"""FAISS's side of atelier's search benchmark (crates/atelier-search/benches/search.rs).

Runs FAISS flat (IndexFlatIP, exact) and HNSW (IndexHNSWFlat, inner product) on the vectors
that the Rust bench wrote with `--out DIR`, and prints the same table: build time, memory,
query p50/p99 (one query per call, one thread) and recall@k against the Rust exact index's
top k (`truth.npy`), so the flat row's recall also checks that both exact searches agree.
The `filtered` rows allow the keys k with k % 10 == 3 (as the Rust bench does), through an
IDSelectorBitmap, with recall against FAISS flat under the same selector. The Rust rows of the
same data set (`rust.json`) are printed first.

    cargo bench -p atelier-search --bench search -- --sizes 100000 --dim 256 --out /tmp/search
    pip install faiss-cpu
    python3 scripts/bench_faiss.py /tmp/search --threads 2

DIR is the bench's --out folder (every data set in it) or one data set folder
(`<data>-<n>-<dim>/` holding base.npy, queries.npy, truth.npy). HNSW parameters default to the
Rust index's (M 32, efConstruction 128, efSearch 128; a list such as 64,128,256 measures each on
one graph, like the Rust bench's --ef-search); --threads is the build's thread count
(queries always run on one). Memory is the vectors for flat and the serialised index for HNSW.
Python adds a few microseconds to every query call.
"""

import argparse
import json
import pathlib
import sys
import time

import faiss
import numpy as np


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", type=pathlib.Path)
    p.add_argument("--threads", type=int, default=0, help="build threads (0: all cores)")
    p.add_argument("--m", type=int, default=32)
    p.add_argument("--ef-construction", type=int, default=128)
    p.add_argument(
        "--ef-search",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[128],
        help="efSearch values, comma-separated, each measured on the same graph",
    )
    return p.parse_args()


def data_sets(root):
    if (root / "base.npy").exists():
        return [root]
    found = sorted(d for d in root.iterdir() if (d / "base.npy").exists())
    if not found:
        sys.exit(f"{root}: no base.npy in it or its folders; run the Rust bench with --out {root}")
    return found


def timed_queries(queries, k, search):
    """Runs search(one_query_row) per query; returns latencies (s) and found ids."""
    latencies, found = [], []
    for i in range(len(queries)):
        q = queries[i : i + 1]
        start = time.perf_counter()
        _, ids = search(q, k)
        latencies.append(time.perf_counter() - start)
        found.append(ids[0])
    return np.array(latencies), np.array(found)


def recall(found, truth):
    hits = sum(len(set(f[f >= 0]) & set(t[t >= 0])) for f, t in zip(found, truth))
    total = sum(int((t >= 0).sum()) for t in truth)
    return hits / total if total else 1.0


def row(data, n, index, build, memory, latencies, rec, ef=None):
    return {
        "data": data,
        "n": n,
        "index": index,
        "ef_search": ef,
        "build_s": build,
        "memory_bytes": memory,
        "p50_us": float(np.percentile(latencies, 50) * 1e6),
        "p99_us": float(np.percentile(latencies, 99) * 1e6),
        "recall": rec,
    }


def print_row(r):
    build = "-" if r["build_s"] is None else f"{r['build_s']:.2f}"
    memory = "-" if r["memory_bytes"] is None else f"{r['memory_bytes'] / 1e6:.1f}"
    ef = "-" if r.get("ef_search") is None else str(r["ef_search"])
    print(
        f"{r['data']:<10} {r['n']:>9} {r['index']:<22} {ef:>5} {build:>9} {memory:>10} "
        f"{r['p50_us']:>10.1f} {r['p99_us']:>10.1f} {r['recall']:>9.4f}"
    )


def bench_flat(data, base, queries, truth, allowed):
    n, d = base.shape
    k = truth.shape[1]
    faiss.omp_set_num_threads(1)
    start = time.perf_counter()
    flat = faiss.IndexFlatIP(d)
    flat.add(base)
    build = time.perf_counter() - start
    latencies, found = timed_queries(queries, k, flat.search)
    rows = [row(data, n, "faiss flat", build, n * d * 4, latencies, recall(found, truth))]
    params = faiss.SearchParameters(sel=allowed)
    latencies, filtered_truth = timed_queries(
        queries, k, lambda q, k: flat.search(q, k, params=params)
    )
    rows.append(row(data, n, "faiss flat filt.", None, None, latencies, 1.0))
    return rows, filtered_truth


def bench_hnsw(data, base, queries, truths, allowed, args):
    n, d = base.shape
    truth, filtered_truth = truths
    k = truth.shape[1]
    faiss.omp_set_num_threads(args.threads or faiss.omp_get_max_threads())
    start = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(d, args.m, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = args.ef_construction
    hnsw.add(base)
    build = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    memory = faiss.serialize_index(hnsw).nbytes
    rows = []
    for ef in args.ef_search:
        hnsw.hnsw.efSearch = ef
        latencies, found = timed_queries(queries, k, hnsw.search)
        # The graph is built once: its time and memory go on its first row.
        first = not rows
        rows.append(
            row(
                data,
                n,
                "faiss hnsw",
                build if first else None,
                memory if first else None,
                latencies,
                recall(found, truth),
                ef,
            )
        )
        params = faiss.SearchParametersHNSW(sel=allowed, efSearch=ef)
        latencies, found = timed_queries(
            queries, k, lambda q, k: hnsw.search(q, k, params=params)
        )
        rows.append(
            row(
                data,
                n,
                "faiss hnsw filt.",
                None,
                None,
                latencies,
                recall(found, filtered_truth),
                ef,
            )
        )
    return rows


def main():
    args = parse_args()
    print(
        f"faiss {faiss.__version__}, HNSW M {args.m} efConstruction {args.ef_construction} "
        f"efSearch {','.join(map(str, args.ef_search))}, build threads {args.threads or faiss.omp_get_max_threads()}"
    )
    header = ("data", "n", "index", "ef", "build_s", "memory_MB", "p50_us", "p99_us", "recall")
    print(
        f"{header[0]:<10} {header[1]:>9} {header[2]:<22} {header[3]:>5} "
        + " ".join(f"{h:>10}" for h in header[4:])
    )
    for folder in data_sets(args.dir):
        data = folder.name.split("-")[0]
        base = np.load(folder / "base.npy")
        queries = np.load(folder / "queries.npy")
        truth = np.load(folder / "truth.npy")
        faiss.normalize_L2(base)  # already unit length; kept so other inputs work too
        faiss.normalize_L2(queries)
        rust = folder / "rust.json"
        if rust.exists():
            for r in json.loads(rust.read_text()):
                print_row({**r, "index": "rust " + r["index"]})
        bitmap = np.packbits(np.arange(len(base)) % 10 == 3, bitorder="little")
        allowed = faiss.IDSelectorBitmap(len(base), faiss.swig_ptr(bitmap))
        rows, filtered_truth = bench_flat(data, base, queries, truth, allowed)
        rows += bench_hnsw(data, base, queries, (truth, filtered_truth), allowed, args)
        for r in rows:
            print_row(r)


if __name__ == "__main__":
    main()
