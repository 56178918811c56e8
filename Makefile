# lumos: `make demo` shows it working, `make test` runs the whole suite.
# Both install what they need first (Debian packages, .venv, Go toolchains).

PY        ?= python3
VENV      := .venv
LUMOS     := $(VENV)/bin/lumos
GO_VERSIONS := 1.21.13 1.23.9 1.27.3
export LUMOS_TOOLCHAINS ?= $(HOME)/.cache/lumos/toolchains

.PHONY: setup system venv toolchains goserver demo test lint bench clean proto

setup: system venv toolchains goserver

system:
	@scripts/setup-system.sh

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

toolchains:
	@scripts/setup-go-toolchains.sh $(GO_VERSIONS)

goserver: examples/goserver/goserver
examples/goserver/goserver: examples/goserver/main.go examples/goserver/go.mod
	cd examples/goserver && GOFLAGS=-mod=mod go build -o goserver .

demo: setup
	@scripts/demo.sh

lint: venv
	$(VENV)/bin/ruff check .

test: setup lint
	$(VENV)/bin/pytest -q tests

bench: setup
	$(VENV)/bin/python bench/funccount.py
	$(VENV)/bin/python bench/trace.py
	$(VENV)/bin/python bench/reliability.py
	$(VENV)/bin/python bench/funcs.py
	$(VENV)/bin/python bench/requests.py
	$(VENV)/bin/python bench/profiles.py
	$(VENV)/bin/python bench/logs.py
	$(VENV)/bin/python bench/stream.py
	$(VENV)/bin/python bench/programs.py

# profile_pb2.py from profile.proto (pprof's format); needs grpcio-tools, not a run-time
# dependency: the generated module is committed
proto:
	$(PY) -m venv /tmp/lumos-protoc && /tmp/lumos-protoc/bin/pip install -q grpcio-tools
	cd src/lumos/output/proto && /tmp/lumos-protoc/bin/python -m grpc_tools.protoc -I. \
		--python_out=. profile.proto

clean:
	rm -rf $(VENV) examples/goserver/goserver tests/programs/build
