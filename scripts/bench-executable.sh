# Sourced by scripts/test and scripts/gpu-bundle.sh.
# bench_executable NAME CARGO_ARGS...: builds bench NAME with `cargo CARGO_ARGS... --no-run` and
# prints its executable's path (cargo puts a hash in the file name and tells it only in its
# JSON messages).
bench_executable() {
    local name="$1"
    shift
    cargo "$@" --bench "$name" --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
name = sys.argv[1]
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message["target"]["name"] == name and message.get("executable"):
        print(message["executable"])
' "$name"
}
