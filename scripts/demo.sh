#!/usr/bin/env bash
# The article's demo, live: start the Go web server, send it requests, and watch lumos
# count its calls, trace them with decoded Go arguments, and time them by argument.
set -euo pipefail
cd "$(dirname "$0")/.."
LUMOS=.venv/bin/lumos
PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
LOG=$(mktemp /tmp/lumos-demo.XXXXXX)

examples/goserver/goserver -addr "127.0.0.1:$PORT" 2>"$LOG.server" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -f "$LOG" "$LOG.server"' EXIT
for _ in $(seq 50); do grep -q listening "$LOG.server" 2>/dev/null && break; sleep 0.1; done
sleep 0.2
if ! kill -0 "$SERVER" 2>/dev/null; then
    echo "demo: goserver did not start:" >&2; cat "$LOG.server" >&2; exit 1
fi

requests() {
    for q in "name=GopherConRussia2020&year=2020" "name=Gopher&year=2021" \
             "name=%E4%B8%96%E7%95%8C&year=2021" "name=&year=2022" "name=Marko&year=2020"; do
        curl -s "http://127.0.0.1:$PORT/?$q" >/dev/null
    done
}

# run_traced TITLE LUMOS-ARGS...: start lumos, wait until it is attached, send the
# requests, stop it with Ctrl-C (SIGINT) and let it print.
run_traced() {
    local title=$1; shift
    printf '\n\033[1m$ lumos %s\033[0m\n' "$*"
    echo "# $title"
    "$LUMOS" "$@" 2>"$LOG" &
    local pid=$!
    for _ in $(seq 100); do grep -q '^Tracing' "$LOG" 2>/dev/null && break; sleep 0.1; done
    requests
    sleep 0.5
    kill -INT "$pid"
    wait "$pid" || true
    grep -v '^Tracing' "$LOG" >&2 || true
}

echo "goserver (PID $SERVER) listens on 127.0.0.1:$PORT; its own log of prepareAnswer calls:"
run_traced "count every main.* call, in the kernel" funccount -p "$SERVER" 'main.*'
run_traced "every call with its Go arguments and return values" \
    trace -p "$SERVER" 'main.*' --ret
run_traced "latency of prepareAnswer, one histogram per year" \
    latency -p "$SERVER" main.prepareAnswer --by year
run_traced "goroutines created and ended per request" goroutines -p "$SERVER"
run_traced "each HTTP request served, and the /ping call checkSite's goroutine makes for it" \
    http -p "$SERVER" --client
printf '\n# what the server logged itself (ground truth):\n'
grep prepareAnswer "$LOG.server"

# lumos sql on the test service (tests/programs/go/reqsvc): SQLite is always at hand
# (cgo driver); PostgreSQL too when Debian's postgresql is installed.
SVC_DIR=$(mktemp -d /tmp/lumos-demo-sql.XXXXXX)
trap 'kill $SERVER 2>/dev/null; kill $SVC 2>/dev/null; [ -n "${PGDATA:-}" ] && su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $PGDATA -m immediate stop" >/dev/null 2>&1; rm -rf "$LOG" "$LOG.server" "$SVC_DIR"' EXIT
(cd tests/programs/go/reqsvc && GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=1 \
    go build -o "$SVC_DIR/reqsvc" .)
PGARGS=()
PGBIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | tail -1)" 2>/dev/null || true)
if [ -x "$PGBIN/initdb" ] && id postgres >/dev/null 2>&1; then
    PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    PGDATA=$SVC_DIR/pg
    chown postgres "$SVC_DIR"
    su postgres -s /bin/sh -c "$PGBIN/initdb -D $PGDATA -A trust -U lumos >/dev/null && \
        $PGBIN/pg_ctl -D $PGDATA -l $SVC_DIR/pg.log -w -o '-p $PGPORT -k $SVC_DIR \
        -c listen_addresses=127.0.0.1' start >/dev/null"
    PGARGS=(-pg "host=127.0.0.1 port=$PGPORT user=lumos dbname=postgres sslmode=disable")
fi
"$SVC_DIR/reqsvc" -sqlite "$SVC_DIR/demo.db" "${PGARGS[@]}" >"$SVC_DIR/reqsvc.log" 2>&1 &
SVC=$!
for _ in $(seq 50); do grep -q listening "$SVC_DIR/reqsvc.log" && break; sleep 0.1; done
SVC_URL=$(awk '/^listening http:/ {print $2}' "$SVC_DIR/reqsvc.log")
requests() {
    curl -s "$SVC_URL/db/lite?k=1" >/dev/null; curl -s "$SVC_URL/db/litebad" >/dev/null
    if [ ${#PGARGS[@]} -gt 0 ]; then
        for p in "query?id=41" types sleep bad tx stmt; do curl -s "$SVC_URL/db/$p" >/dev/null; done
    fi
}
run_traced "every database/sql query: text, args, rows or error, and the request it served" \
    sql -p "$SVC"
printf '\n# what reqsvc logged itself (ground truth):\n'
grep -E '^(query|exec|error|served) ' "$SVC_DIR/reqsvc.log"
