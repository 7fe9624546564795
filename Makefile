# CareOps — `make run` starts the platform, `make test` runs the whole suite.
SHELL := /bin/bash
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTO_STAMP := gen/.stamp
PROTOS := $(shell find proto -name '*.proto')
LINTED := libs services cli tests tests_images bench scripts conftest.py

.PHONY: run test faults cluster-test proto lint typecheck bench bench-compare soak lock clean system-deps

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(PROTO_STAMP): $(STAMP) $(PROTOS) buf.yaml
	rm -rf gen && mkdir -p gen
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m grpc_tools.protoc -Iproto --python_out=gen --grpc_python_out=gen \
	  --mypy_out=gen --mypy_grpc_out=gen $(PROTOS)
	find gen -type d -exec touch {}/__init__.py \;
	rm -f gen/__init__.py
	$(BIN)/pip install -q --no-deps -e .
	touch $@

proto: $(PROTO_STAMP) ## generate Python code from proto/ and lint the protos
	$(BIN)/buf lint

system-deps: ## PostgreSQL for the test suite (Debian)
	bash scripts/system-deps.sh

run: $(PROTO_STAMP) ## the whole platform on embedded defaults
	$(BIN)/careops up

lint: $(PROTO_STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy $(LINTED)
	$(BIN)/lint-imports  # the dependency rules: pyproject.toml [tool.importlinter]

test: proto system-deps lint chart-check ## everything a fresh machine needs, then the whole suite
	$(BIN)/python -m pytest

faults: $(PROTO_STAMP) ## the fault suite at full size (make test runs it small)
	CAREOPS_FAULT_SCALE=$${CAREOPS_FAULT_SCALE:-5} $(BIN)/python -m pytest tests/faults -q --timeout 1800

.PHONY: images images-test images-kube-play
images: ## the five service images with podman on a bookworm base from mmdebstrap (docs/images.md)
	bash scripts/images.sh

# Not part of `make test`: building the images takes minutes. tests_images/ is outside testpaths.
images-test: images $(PROTO_STAMP) ## run each image as the chart does; health, uid, read-only /
	bash scripts/chart-check.sh fetch-helm >/dev/null
	$(BIN)/python -m pytest tests_images -q -p no:cacheprovider

images-kube-play: images $(PROTO_STAMP) ## podman kube play of the rendered chart: health of each pod
	bash scripts/images-kube-play.sh

# In `make test` too (small size); this runs it alone, five times in a row, printing resume times.
cluster-test: $(PROTO_STAMP) ## the three-node NATS cluster fault test (kill -9 leader, follower), five times
	for run in 1 2 3 4 5; do $(BIN)/python -m pytest tests/faults/test_cluster_failover.py -m cluster -q -s --timeout 600 || exit 1; done

.PHONY: chart-check
chart-check: $(STAMP) ## helm lint/template, kubernetes-validate, promtool on charts/careops
	bash scripts/chart-check.sh

bench: $(PROTO_STAMP) ## benchmarks (not part of the test suite)
	$(BIN)/python -m bench.run

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): requirements-bench.lock $(STAMP)
	$(BIN)/pip install -q -r requirements-bench.lock
	touch $@

SOAK_SECONDS ?= 1200
SOAK_RATE ?= 200
soak: $(PROTO_STAMP) $(BENCH_STAMP) ## [SOAK_SECONDS=1200] [SOAK_RATE=200]: the soak; writes docs/soak.csv, docs/soak.png
	$(BIN)/python -m bench.soak --seconds $(SOAK_SECONDS) --rate $(SOAK_RATE)

ONLY ?= open_ticket lag
ROUNDS ?= 2
# Checked before any prerequisite is built.
ifneq ($(filter bench-compare,$(MAKECMDGOALS)),)
ifeq ($(strip $(BASE)),)
$(error make bench-compare: BASE=<git revision> is required, e.g. make bench-compare BASE=main ONLY="open_ticket lag" ROUNDS=2)
endif
endif
bench-compare: $(PROTO_STAMP) ## BASE=<rev> [ONLY="open_ticket lag"] [ROUNDS=2]: BASE's benchmarks vs the working tree's
	$(BIN)/python -m bench.compare '$(BASE)' --only $(ONLY) --rounds $(ROUNDS)

lock: ## re-freeze requirements.lock from requirements.in
	$(BIN)/pip install -q -r requirements.in
	$(BIN)/pip freeze --exclude-editable | grep -vi '^careops' > requirements.lock

clean:
	rm -rf gen var $(VENV)
