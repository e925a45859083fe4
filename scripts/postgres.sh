# Sourced by scripts/test: a throwaway PostgreSQL server on 127.0.0.1 for the test suite.
# start_postgres exports ATELIER_TEST_POSTGRES_URL; stop_postgres removes the server and its data.

find_pg_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

install_postgres() {
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        echo "PostgreSQL is not installed; install Debian's 'postgresql' package (or set ATELIER_TEST_POSTGRES_URL to a server of yours)" >&2
        return 1
    fi
    echo "installing PostgreSQL (Debian package 'postgresql')..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Starts a new PostgreSQL cluster with the binaries in $1, its files in the folder $2, on a
# free port of 127.0.0.1 (PostgreSQL refuses to run as root: as the unprivileged user
# `postgres` when we are root). Sets CLUSTER_PORT.
start_cluster() {
    local bin="$1" dir="$2"
    CLUSTER_PORT="$(free_port)"
    local run_as=()
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        mkdir -p "$dir/data"
        chown postgres "$dir" "$dir/data"
        run_as=(runuser -u postgres --)
    fi
    "${run_as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; return 1; }
    "${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-p $CLUSTER_PORT -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
        || { cat "$dir/server.log" >&2; return 1; }
}

# Stops the cluster that start_cluster started with the binaries in $1 in the folder $2, and
# removes its files.
stop_cluster() {
    local bin="$1" dir="$2"
    if [ -n "$dir" ] && [ -d "$dir/data" ]; then
        local run_as=()
        [ "$(id -u)" -eq 0 ] && run_as=(runuser -u postgres --)
        "${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$dir"
    fi
}

start_postgres() {
    if [ -n "${ATELIER_TEST_POSTGRES_URL:-}" ]; then
        echo "using PostgreSQL at $ATELIER_TEST_POSTGRES_URL" >&2
        return 0
    fi
    PG_BIN="$(find_pg_bin)"
    if [ -z "$PG_BIN" ]; then
        install_postgres
        PG_BIN="$(find_pg_bin)"
    fi
    PG_DIR="$(mktemp -d /tmp/atelier-pg.XXXXXX)"
    start_cluster "$PG_BIN" "$PG_DIR" || return 1
    export PG_BIN PG_DIR
    export ATELIER_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$CLUSTER_PORT/postgres"
    echo "started PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') at $ATELIER_TEST_POSTGRES_URL" >&2
}

stop_postgres() {
    stop_cluster "${PG_BIN:-}" "${PG_DIR:-}"
}
