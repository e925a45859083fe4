#!/usr/bin/env bash
# The crowd loop on the demo's catalogue (a copy: the original is not touched): the first 1 500
# items of run 1's mistag queue (every facet) as tasks, answered by the simulated crowd
# (`atelier crowd simulate`: 30 workers, two spammers and an adversary) from the renderer's
# truth, 3 and then 5 votes a task, once per seed of SEEDS (default 7); prints the aggregated
# accuracy (atelier's aggregation and majority vote) and the precision of the changes
# `crowd apply` would make at posteriors 0.9 and 0.95. crowd-kit's DawidSkene and MajorityVote
# run on the same votes when it is installed, and its DawidSkene once more with each task's
# current label added as a vote of one more worker, as atelier's aggregation counts it.
set -euo pipefail
DEMO_DB="$(realpath "${1:?usage: scripts/bench-crowd-demo.sh ATELIER-DEMO/atelier.db [WORKDIR]}")"
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/atelier-target}"
cargo build --release -p atelier-cli >&2
B="$CARGO_TARGET_DIR/release/atelier"
W="${2:-$(mktemp -d /tmp/atelier-crowd.XXXXXX)}"; mkdir -p "$W"
for votes in 3 5; do for seed in ${SEEDS:-7}; do
  echo "seed $seed"
  cp "$DEMO_DB" $W/c$votes.db
  DB=sqlite://$W/c$votes.db
  $B --db $DB crowd export --run 1 --from mistags --limit 1500 --votes $votes --gold 0 --base-url https://crowd.example --out $W/b$votes --json | python3 -c 'import json,sys; e=json.load(sys.stdin)["export"]; print("tasks", e["tasks"])'
  $B --db $DB crowd simulate 1 --votes $votes --seed $seed --out $W/r$votes.csv --json > /dev/null
  $B --db $DB crowd import $W/r$votes.csv --json > /dev/null
  start=$(date +%s.%N)
  $B --db $DB crowd aggregate 1 --json > $W/agg$votes.json
  end=$(date +%s.%N)
  python3 - $W/c$votes.db $W/agg$votes.json $votes "$start" "$end" <<'PY'
import json, sqlite3, sys
db, agg, votes, start, end = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
c = sqlite3.connect(db)
truth = {(i, f): l for i, f, l in c.execute(
    "select t.image_id, f.name, fl.label from truth_labels t join facets f on f.id=t.facet_id join facet_labels fl on fl.id=t.label_id")}
tasks = json.load(open(agg))["tasks"]
flipped = [t for t in tasks if truth.get((t["image_id"], t["facet"])) != t["current_label"]]
def rate(rule):
    ok = sum(1 for t in tasks if rule(t) == truth.get((t["image_id"], t["facet"])))
    return ok / len(tasks)
print(f"votes {votes}: {len(tasks)} tasks, {len(flipped)} really wrong; accuracy DS {rate(lambda t: t['label']):.3f}, majority {rate(lambda t: t['majority']):.3f}; aggregate {end-start:.2f} s")
for th in (0.9, 0.95):
    applied = [t for t in tasks if t["posterior"] >= th and t["label"] != t["current_label"]]
    right = sum(1 for t in applied if truth.get((t["image_id"], t["facet"])) == t["label"])
    fixed = sum(1 for t in applied if truth.get((t["image_id"], t["facet"])) == t["label"] and t in flipped)
    print(f"  posterior >= {th}: {len(applied)} changes, precision {right/max(1,len(applied)):.3f}, fixes {fixed} of {len(flipped)} wrong labels")
PY
  # crowd-kit's DawidSkene and MajorityVote on the same votes (PyPI `crowd-kit`), facet by facet.
  python3 - $W/c$votes.db $W/r$votes.csv $W/agg$votes.json <<'PY' 2>/dev/null || echo "  (crowd-kit not installed: python3 -m pip install crowd-kit)"
import csv, json, sqlite3, sys
import pandas as pd
from crowdkit.aggregation import DawidSkene, MajorityVote
db, results, agg = sys.argv[1:4]
c = sqlite3.connect(db)
truth = {(i, f): l for i, f, l in c.execute(
    "select t.image_id, f.name, fl.label from truth_labels t join facets f on f.id=t.facet_id join facet_labels fl on fl.id=t.label_id")}
tasks = {t["token"]: t for t in json.load(open(agg))["tasks"]}
rows = list(csv.DictReader(open(results)))
total = ok_ds = ok_mv = ok_cat = 0
for facet in sorted({t["facet"] for t in tasks.values()}):
    df = pd.DataFrame([{"task": r["Input.task_id"], "worker": r["WorkerId"], "label": r["Answer.label"]}
                       for r in rows if tasks[r["Input.task_id"]]["facet"] == facet])
    ds = DawidSkene(n_iter=100).fit_predict(df)
    mv = MajorityVote().fit_predict(df)
    current = pd.DataFrame([{"task": k, "worker": "(catalogue)", "label": t["current_label"]}
                            for k, t in tasks.items() if t["facet"] == facet and t["current_label"]])
    with_catalogue = DawidSkene(n_iter=100).fit_predict(pd.concat([df, current]))
    for task, label in ds.items():
        right = truth.get((tasks[task]["image_id"], facet))
        total += 1; ok_ds += label == right; ok_mv += mv[task] == right
        ok_cat += with_catalogue[task] == right
print(f"  crowd-kit: DS {ok_ds/total:.3f}, majority {ok_mv/total:.3f} over {total} tasks; "
      f"DS with the current labels as a worker {ok_cat/total:.3f}")
PY
done done
