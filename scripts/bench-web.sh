#!/usr/bin/env bash
# Load benchmark of the review web app on a large catalogue: 100 000 images with five facets,
# one completed run that predicted every image and facet (500 000 predictions), and one
# similarity run with a 372-number vector per image.
#
# Builds the release `atelier` binary, seeds the catalogue with the `seed_bench` example
# (unless BENCH_DIR already holds one), starts `atelier serve` on 127.0.0.1, logs in as the
# viewer `bench`, warms up, then runs wrk (installed with apt-get when missing and run as
# root) against the F1 view and the false-negatives page (page 1, the facet and label with the
# most false negatives), HTML and their /api JSON twins, and an image page with its 8 most
# similar dresses (HTML, JSON) and a "same dress, another neckline" swap (JSON). Each is
# measured with 20 connections (2 wrk threads, 20 s), then with 1 connection (the service time
# without queueing). Prints a markdown table; exits non-zero on any response that is not 2xx or
# any socket error.
#
# wrk runs on the same machine as the server, so the two share its cores.
#
# Settings (environment variables):
#   BENCH_DIR          seeded catalogue folder (default /tmp/atelier-web-bench)
#   BENCH_DB           an empty PostgreSQL database to seed and serve instead of the SQLite
#                      file in BENCH_DIR (with pgvector, similarity is searched in it)
#   BENCH_IMAGES       images to seed (default 100000)
#   BENCH_PORT         port of the server (default 18080)
#   BENCH_DURATION     wrk duration of each 20-connection run (default 20s)
#   BENCH_CONNECTIONS  connections (default 20); BENCH_THREADS wrk threads (default 2)
#   BENCH_WARMUP       wrk duration of the warm-up per URL (default 3s)
#   BENCH_SINGLE       duration of the 1-connection run per URL; 0 skips it (default 5s)
#   BENCH_ANN_THRESHOLD  `atelier serve --ann-threshold`: similarity runs with at least this
#                      many vectors are searched through the HNSW index (default 50000; an exact
#                      scan of 100 000 vectors of 372 numbers answers about 200 requests/s on 2
#                      cores, too few for 20 clients at p95 < 100 ms)
#   CARGO_TARGET_DIR   build folder (default /root/.cache/atelier-target)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/atelier-target}"
dir="${BENCH_DIR:-/tmp/atelier-web-bench}"
images="${BENCH_IMAGES:-100000}"
port="${BENCH_PORT:-18080}"
duration="${BENCH_DURATION:-20s}"
connections="${BENCH_CONNECTIONS:-20}"
threads="${BENCH_THREADS:-2}"
warmup="${BENCH_WARMUP:-3s}"
single="${BENCH_SINGLE:-5s}"
ann_threshold="${BENCH_ANN_THRESHOLD:-50000}"
base="http://127.0.0.1:$port"

fail() {
    echo "bench-web: $*" >&2
    exit 1
}

loadavg() {
    cut -d' ' -f1-3 /proc/loadavg
}

if ! command -v wrk >/dev/null; then
    [ "$(id -u)" -eq 0 ] || fail "wrk is missing; install it (apt-get install wrk) and run again"
    echo "installing wrk with apt-get" >&2
    apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; } \
        || fail "apt-get install wrk failed; install wrk by hand"
fi
command -v curl >/dev/null || fail "curl is missing; install it (apt-get install curl)"

load_start=$(loadavg)
echo "load average at start: $load_start" >&2

echo "building the release binary (cargo build --release -p atelier-cli)" >&2
cargo build --release -p atelier-cli
bin="$CARGO_TARGET_DIR/release/atelier"

seed_json="$dir/seed.json"
if [ ! -f "$seed_json" ]; then
    [ ! -e "$dir/bench.db" ] || fail "$dir/bench.db exists without seed.json (an interrupted seeding?); delete $dir and run again"
    echo "seeding $images images into $dir" >&2
    cargo run --release -p atelier-web --example seed_bench -- --dir "$dir" --images "$images" \
        ${BENCH_DB:+--db "$BENCH_DB"} >&2
else
    echo "reusing the catalogue in $dir (delete it to seed again)" >&2
fi

# seed.json is serde_json's pretty output: top-level fields are on their own lines, indented
# by two spaces; the ones read here are numbers or strings without commas or quotes.
seed_field() {
    sed -n "s/^  \"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p" "$seed_json"
}
db=$(seed_field db)
run=$(seed_field run)
facet=$(seed_field facet)
label=$(seed_field label)
seeded=$(seed_field images)
user=$(seed_field user)
password=$(seed_field password)
similarity_run=$(seed_field similarity_run)
query_image=$(seed_field query_image)
swap_facet=$(seed_field swap_facet)
swap_label=$(seed_field swap_label)
for name in db run facet label seeded user password similarity_run query_image swap_facet swap_label; do
    [ -n "${!name}" ] || fail "$seed_json has no field for $name; delete $dir and run again"
done
[ "$seeded" = "$images" ] || echo "note: $dir holds $seeded images, not BENCH_IMAGES=$images" >&2
echo "seeding times (s): $(jq -c .seconds "$seed_json" 2>/dev/null || grep -A8 '"seconds"' "$seed_json")" >&2

mkdir -p "$dir/run"
ATELIER_INDEX_DIR="$dir/run/indexes" "$bin" --db "$db" serve --addr "127.0.0.1:$port" \
    --checkpoint-dir "$dir/run/checkpoints" --thumbnail-cache "$dir/run/thumbs" \
    --ann-threshold "$ann_threshold" \
    >"$dir/run/serve.log" 2>&1 &
server=$!
stop_server() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
}
trap stop_server EXIT

for _ in $(seq 1 100); do
    kill -0 "$server" 2>/dev/null || fail "atelier serve exited: $(cat "$dir/run/serve.log")"
    curl -s -o /dev/null "$base/login" && break
    sleep 0.2
done
curl -s -o /dev/null "$base/login" || fail "atelier serve does not answer on $base after 20 s"

login_headers=$(curl -sS -D - -o /dev/null -H 'Content-Type: application/json' \
    -d "{\"user\":\"$user\",\"password\":\"$password\"}" "$base/api/login")
cookie=$(printf '%s\n' "$login_headers" | tr -d '\r' \
    | sed -n 's/^[Ss]et-[Cc]ookie: \(atelier_session=[^;]*\).*/\1/p' | head -n1)
[ -n "$cookie" ] || fail "logging in as $user gave no atelier_session cookie: $login_headers"

f1="/runs/$run/facets/$facet"
fn="/runs/$run/facets/$facet/review?kind=fn&label=$label"
image="/images/$query_image"
swap="$image?swap_facet=$swap_facet&swap_label=$swap_label"
names=("F1 view (HTML)" "F1 view (JSON)" "false negatives p. 1 (HTML)" "false negatives p. 1 (JSON)"
    "image page + 8 similar (HTML)" "8 similar dresses (JSON)" "swap: another $swap_facet (JSON)")
paths=("$f1" "/api$f1" "$fn" "/api$fn" "$image" "/api$image" "/api$swap")

# Each URL must answer 200 before it is measured (a 303 to the login page would be fast and
# meaningless).
for path in "${paths[@]}"; do
    status=$(curl -sS -o "$dir/run/check.out" -w '%{http_code}' -H "Cookie: $cookie" "$base$path")
    [ "$status" = 200 ] || fail "GET $path answered $status: $(head -c 500 "$dir/run/check.out")"
done
fn_total=$(curl -sS -H "Cookie: $cookie" "$base/api$fn" | jq -r .total 2>/dev/null || echo "?")

# Server CPU seconds so far (user + system), from /proc.
server_cpu() {
    awk -v tck="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / tck }' "/proc/$server/stat"
}

rows=()
# Runs wrk on one URL and adds a table row; fails on any non-2xx response or socket error.
measure() {
    local name=$1 path=$2 conns=$3 thr=$4 secs=$5
    local cpu_before out line
    cpu_before=$(server_cpu)
    out=$(wrk -t"$thr" -c"$conns" -d"$secs" --timeout 10s -s "$root/scripts/bench-web.lua" \
        -H "Cookie: $cookie" "$base$path") || fail "wrk failed on $path: $out"
    line=$(printf '%s\n' "$out" | grep '^BENCH ') || fail "wrk printed no BENCH line for $path: $out"
    local requests="" rps="" p50="" p95="" p99="" max="" non2xx="" first="" socket="" field
    for field in ${line#BENCH }; do
        case ${field%%=*} in
            requests) requests=${field#*=} ;;
            rps) rps=${field#*=} ;;
            p50_ms) p50=${field#*=} ;;
            p95_ms) p95=${field#*=} ;;
            p99_ms) p99=${field#*=} ;;
            max_ms) max=${field#*=} ;;
            non2xx) non2xx=${field#*=} ;;
            first_non2xx) first=${field#*=} ;;
            socket_errors) socket=${field#*=} ;;
        esac
    done
    [ -n "$p95" ] && [ -n "$non2xx" ] && [ -n "$socket" ] || fail "cannot read wrk's BENCH line: $line"
    local cpu
    cpu=$(awk -v a="$cpu_before" -v b="$(server_cpu)" 'BEGIN { printf "%.1f", b - a }')
    local verdict="yes"
    awk -v p="$p95" 'BEGIN { exit !(p < 100) }' || verdict="**no**"
    rows+=("| $name | $conns | $rps | $p50 | $p95 | $p99 | $max | $requests | $non2xx | $cpu | $verdict |")
    echo "${rows[-1]}" >&2
    [ "$non2xx" = 0 ] || fail "$non2xx responses of GET $path were not 2xx (first: $first)"
    [ "$socket" = 0 ] || fail "$socket socket errors (connect/read/write/timeout) on GET $path"
}

echo "warming up ($warmup per URL)" >&2
for path in "${paths[@]}"; do
    wrk -t"$threads" -c"$connections" -d"$warmup" --timeout 10s -H "Cookie: $cookie" "$base$path" >/dev/null
done

load_before=$(loadavg)
echo "load average before measuring: $load_before" >&2
for i in "${!paths[@]}"; do
    measure "${names[$i]}" "${paths[$i]}" "$connections" "$threads" "$duration"
done
if [ "$single" != 0 ]; then
    for i in "${!paths[@]}"; do
        measure "${names[$i]}" "${paths[$i]}" 1 1 "$single"
    done
fi
load_after=$(loadavg)

cat <<EOF

Code: commit $(git rev-parse --short HEAD 2>/dev/null || echo "?")$( [ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || echo " with uncommitted changes"), built $(date -u -r "$bin" '+%Y-%m-%d %H:%M UTC'); measured $(date -u '+%Y-%m-%d %H:%M UTC').
Catalogue: $seeded images, run #$run, $facet ($label: $fn_total false negatives); similarity runs of $ann_threshold vectors or more searched through HNSW; $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)); wrk $threads threads, $duration per URL at $connections connections, ${single} at 1; wrk shares the cores with the server.
Load average (1, 5, 15 min): start $load_start, before measuring $load_before, after $load_after.

| page | connections | requests/s | p50 ms | p95 ms | p99 ms | max ms | requests | non-2xx | server CPU s | p95 < 100 ms |
|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|:-:|
EOF
printf '%s\n' "${rows[@]}"
echo
echo "URLs: F1 view $f1, false negatives $fn, image page $image (similarity run #$similarity_run, $seeded vectors of 372 numbers), swap $swap (JSON twins under /api)."
