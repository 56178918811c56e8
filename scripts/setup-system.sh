#!/usr/bin/env bash
# Installs what lumos's demo and tests need from Debian: the Go toolchain that builds the
# example programs (Go 1.19), bpftrace (the benchmark baseline), gcc, tmux, curl, perl (runs
# flamegraph.pl for --svg), prometheus (scrapes `--prometheus` in the tests) and chromium
# (opens the flame graphs in the tests).
set -euo pipefail
need=()
command -v go >/dev/null || need+=(golang-go)
command -v bpftrace >/dev/null || need+=(bpftrace)
command -v gcc >/dev/null || need+=(gcc)
command -v tmux >/dev/null || need+=(tmux)
command -v curl >/dev/null || need+=(curl)
command -v objdump >/dev/null || need+=(binutils)
command -v perl >/dev/null || need+=(perl)
command -v prometheus >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
