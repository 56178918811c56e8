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
printf '\n# what the server logged itself (ground truth):\n'
grep prepareAnswer "$LOG.server"
