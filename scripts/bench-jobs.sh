#!/usr/bin/env bash
# Measures the job queue with the release binary:
#   1. pick-up latency: an idle worker, 20 `check --queue` jobs on an empty catalogue queued one
#      after another; the latency of each is its started_at minus its created_at (both written
#      by the database's clients, so the CLI's own start-up is not counted). SQLite with the
#      default 2 s poll and with 0.2 s, and PostgreSQL (LISTEN/NOTIFY) when
#      BENCH_POSTGRES_URL names a database to use (it is emptied first: give a scratch one).
#   2. one worker against two on the feature pass: 4 training jobs that each compute frozen
#      EfficientNet-Lite0 features of 300 photos (distinct input sizes, so no job reuses
#      another's features) and train heads for one epoch, done by `worker --until-idle`
#      processes; wall time from the first worker's start to the last one's exit.
# Usage: scripts/bench-jobs.sh [WORKDIR]   (needs `atelier weights fetch efficientnet-lite0`)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/atelier-target}"
cargo build --release -p atelier-cli >&2
BIN="$CARGO_TARGET_DIR/release/atelier"
WORK="$(realpath -m "${1:-$(mktemp -d /tmp/atelier-bench-jobs.XXXXXX)}")"
mkdir -p "$WORK"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

latency() { # DB POLL LABEL
    local db=$1 poll=$2 label=$3
    "$BIN" --db "$db" --store "$WORK/store" worker --kinds check --poll "$poll" \
        --checkpoint-dir "$WORK/checkpoints" 2>/dev/null &
    local worker=$!
    sleep 1
    local values=()
    for _ in $(seq 20); do
        local job
        job=$("$BIN" --db "$db" check --queue --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"])')
        while :; do
            local shown
            shown=$("$BIN" --db "$db" jobs show "$job" --json)
            if python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1])["status"]=="succeeded" else 1)' "$shown"; then
                values+=("$(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(j["started_at"]-j["created_at"])' "$shown")")
                break
            fi
            sleep 0.05
        done
        # Queue the next one at a random point of the worker's wait.
        sleep "0.$((RANDOM % 10))"
    done
    kill "$worker"; wait "$worker" 2>/dev/null || true
    python3 - "$label" "${values[@]}" <<'EOF'
import statistics, sys
label, values = sys.argv[1], sorted(int(v) for v in sys.argv[2:])
print(f"{label}: pick-up latency p50 {statistics.median(values):.0f} ms, "
      f"mean {statistics.mean(values):.0f} ms, max {values[-1]} ms ({len(values)} jobs)")
EOF
}

latency "sqlite://$WORK/latency.db" 2 "SQLite, poll 2 s (default)"
latency "sqlite://$WORK/latency-fast.db" 0.2 "SQLite, poll 0.2 s"
if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
    PGOPTIONS='--client-min-messages=warning' psql "$BENCH_POSTGRES_URL" -qc \
        'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' >/dev/null
    latency "$BENCH_POSTGRES_URL" 2 "PostgreSQL, LISTEN/NOTIFY (poll 2 s as fallback)"
fi

throughput() { # WORKERS
    local workers=$1 db="sqlite://$WORK/throughput-$1.db"
    "$BIN" --db "$db" import "$WORK/photos/manifest.csv" --json >/dev/null
    "$BIN" --db "$db" check --json >/dev/null
    for size in 160 176 192 208; do
        "$BIN" --db "$db" --store "$WORK/store-$workers" train facets --backbone efficientnet-lite0 \
            --freeze-backbone true --image-size "$size" --epochs 1 --queue --json >/dev/null
    done
    local started=$SECONDS pids=()
    for w in $(seq "$workers"); do
        ATELIER_FEATURE_CACHE="$WORK/features-$workers-$w" "$BIN" --db "$db" --store "$WORK/store-$workers" \
            worker --until-idle --checkpoint-dir "$WORK/checkpoints-$workers-$w" >/dev/null 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    local seconds=$((SECONDS - started))
    local done
    done=$("$BIN" --db "$db" jobs list --status succeeded --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))')
    echo "$workers worker(s): $done of 4 jobs succeeded in $seconds s"
}

"$BIN" synth --out "$WORK/photos" --count 300 --size 256 --json >/dev/null
throughput 1
throughput 2
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
