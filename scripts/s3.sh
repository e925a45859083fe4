# Sourced by scripts/test: a throwaway S3 server (moto, from PyPI) on 127.0.0.1 for the model
# store's tests. start_s3 exports ATELIER_TEST_S3_ENDPOINT; stop_s3 stops the server.
# The tests create their own buckets; fault tests start further servers of their own.

install_moto() {
    if python3 -c 'import moto.server, boto3' >/dev/null 2>&1; then
        return 0
    fi
    if ! python3 -m pip --version >/dev/null 2>&1; then
        echo "moto is not installed and python3 -m pip is not available: install pip, then 'python3 -m pip install \"moto[server]\"' (or set ATELIER_TEST_S3_ENDPOINT to an S3 server of yours)" >&2
        return 1
    fi
    echo "installing moto (PyPI 'moto[server]') for the S3 tests..." >&2
    python3 -m pip install --quiet 'moto[server]' >&2 \
        || { echo "pip could not install moto[server] (offline?)" >&2; return 1; }
}

start_s3() {
    if [ -n "${ATELIER_TEST_S3_ENDPOINT:-}" ]; then
        echo "using the S3 server at $ATELIER_TEST_S3_ENDPOINT" >&2
        return 0
    fi
    install_moto
    S3_DIR="$(mktemp -d /tmp/atelier-s3.XXXXXX)"
    local port
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
    python3 -m moto.server -H 127.0.0.1 -p "$port" >"$S3_DIR/server.log" 2>&1 &
    S3_PID=$!
    local tries=0
    until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null; do
        tries=$((tries + 1))
        if [ "$tries" -gt 300 ] || ! kill -0 "$S3_PID" 2>/dev/null; then
            echo "moto did not start on port $port:" >&2
            cat "$S3_DIR/server.log" >&2
            return 1
        fi
        sleep 0.1
    done
    export S3_PID S3_DIR
    export ATELIER_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
    echo "started moto $(python3 -c 'import moto; print(moto.__version__)') S3 at $ATELIER_TEST_S3_ENDPOINT" >&2
}

stop_s3() {
    if [ -n "${S3_PID:-}" ]; then
        kill "$S3_PID" 2>/dev/null || true
        wait "$S3_PID" 2>/dev/null || true
        S3_PID=""
    fi
    if [ -n "${S3_DIR:-}" ]; then
        rm -rf "$S3_DIR"
    fi
}
