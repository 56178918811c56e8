#!/usr/bin/env bash
# Installs what lumos's demo and tests need from Debian: the Go toolchain that builds the
# example programs (Go 1.19), bpftrace (the benchmark baseline), gcc, tmux, curl; for the
# USDT and Python tests: sys/sdt.h, Debian's python3.11 (USDT probes, semaphores) and its
# debug symbols (python3.11-dbg: /usr/lib/debug/.build-id DWARF for the eval loop); perl
# (runs flamegraph.pl for --svg), prometheus (scrapes `--prometheus` in the tests) and
# chromium (opens the flame graphs in the tests); for the kernel tools' tests: taskset and
# chrt (pin CPU hogs, a real-time sleeper), mkswap, swapon, losetup (swap space made in
# the test), static glibc for the static C test programs; for the lumos http/sql tests:
# PostgreSQL, wrk, openssl, and the Go sources of lib/pq and mattn/go-sqlite3 (built
# offline from /usr/share/gocode); zap and logrus sources (golang-go.uber-zap-dev,
# golang-github-sirupsen-logrus-dev) for the `lumos logs` tests.
set -euo pipefail
need=()
command -v go >/dev/null || need+=(golang-go)
command -v bpftrace >/dev/null || need+=(bpftrace)
command -v gcc >/dev/null || need+=(gcc)
command -v tmux >/dev/null || need+=(tmux)
command -v curl >/dev/null || need+=(curl)
command -v objdump >/dev/null || need+=(binutils)
command -v wrk >/dev/null || need+=(wrk)
command -v openssl >/dev/null || need+=(openssl)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ -d /usr/share/gocode/src/github.com/lib/pq ] || need+=(golang-github-lib-pq-dev)
[ -d /usr/share/gocode/src/github.com/mattn/go-sqlite3 ] || \
    need+=(golang-github-mattn-go-sqlite3-dev)
[ -x /usr/bin/time ] || need+=(time)
[ -e /usr/include/x86_64-linux-gnu/sys/sdt.h ] || need+=(systemtap-sdt-dev)
command -v python3.11 >/dev/null || need+=(python3.11-minimal)
dpkg -s python3.11-dbg >/dev/null 2>&1 || need+=(python3.11-dbg)
command -v perl >/dev/null || need+=(perl)
command -v prometheus >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
command -v taskset >/dev/null || need+=(util-linux)
PATH="$PATH:/sbin:/usr/sbin" command -v mkswap >/dev/null || need+=(util-linux)
PATH="$PATH:/sbin:/usr/sbin" command -v swapon >/dev/null || need+=(mount)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)
# zap and logrus sources for the `lumos logs` test programs (GOPATH builds)
[ -d /usr/share/gocode/src/go.uber.org/zap ] || need+=(golang-go.uber-zap-dev)
[ -d /usr/share/gocode/src/github.com/sirupsen/logrus ] || need+=(golang-github-sirupsen-logrus-dev)
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
