#!/usr/bin/env bash
# Installs what lumos's demo and tests need from Debian: the Go toolchain that builds the
# example programs (Go 1.19), bpftrace (the benchmark baseline), gcc, tmux, curl,
# zap and logrus sources.
set -euo pipefail
need=()
command -v go >/dev/null || need+=(golang-go)
command -v bpftrace >/dev/null || need+=(bpftrace)
command -v gcc >/dev/null || need+=(gcc)
command -v tmux >/dev/null || need+=(tmux)
command -v curl >/dev/null || need+=(curl)
command -v objdump >/dev/null || need+=(binutils)
# zap and logrus sources for the `lumos logs` test programs (GOPATH builds)
[ -d /usr/share/gocode/src/go.uber.org/zap ] || need+=(golang-go.uber-zap-dev)
[ -d /usr/share/gocode/src/github.com/sirupsen/logrus ] || need+=(golang-github-sirupsen-logrus-dev)
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
