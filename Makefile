# citystream: `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PACKAGES := engine operators actors protos cluster benchmarks

.PHONY: install run test lint bench loadtest lock clean protos

# The virtual environment, with the locked dependencies (constraints.txt) and citystream itself.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/citystream run

lint: $(STAMP)
	$(VENV)/bin/ruff check $(PACKAGES) tests
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m benchmarks.engine_throughput
	$(PY) -m benchmarks.ray_executor
	$(PY) -m benchmarks.ray_compiled_graphs
	$(PY) -m benchmarks.nexmark.run
	$(PY) -m benchmarks.updating_aggregate
	$(PY) -m benchmarks.checkpoints

# The load tests of the city job on Ray (about 5 minutes): 10,000 and 1,000,000 detections/s,
# and ramps to the highest rate with p99 under 50 ms and 250 ms; results in benchmarks/results/loadtest/.
LOADTEST := $(VENV)/bin/citystream loadtest --no-progress
loadtest: $(STAMP)
	$(LOADTEST) --rate 10000 --duration 30 --out benchmarks/results/loadtest/rate-10k
	$(LOADTEST) --rate 1000000 --duration 30 --out benchmarks/results/loadtest/rate-1m
	$(LOADTEST) --ramp 10000,30000,100000,200000,300000,500000,1000000 --step 10 --p99-bound 50 --out benchmarks/results/loadtest/ramp
	$(LOADTEST) --ramp 10000,30000,100000,200000,300000,500000,700000,1000000 --step 10 --p99-bound 250 --out benchmarks/results/loadtest/ramp-250ms

# The Python stubs of the gRPC contracts (committed; tests/protos/test_stubs.py fails if stale).
PROTOS := $(wildcard protos/citystream/v1/*.proto)
protos: $(STAMP)
	$(PY) -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. --pyi_out=. $(PROTOS)

# Re-pins every dependency to what is installed now (after changing pyproject.toml).
lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable | grep -v '^citystream' > constraints.txt

# The code of a cluster job as a zip with one top folder (a Ray working_dir URI on object
# storage, as cluster/kuberay/rayjob.yaml uses it): dist/citystream-<commit>.zip.
.PHONY: cluster-package
cluster-package:
	mkdir -p dist
	git archive --format=zip --prefix=citystream/ -o dist/citystream-$$(git rev-parse --short HEAD).zip HEAD
	@echo dist/citystream-$$(git rev-parse --short HEAD).zip

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# citystream against Bytewax and PyFlink on the same workloads (creates their venvs under
# benchmarks/peers/.venvs when missing); writes benchmarks/RESULTS.md and benchmarks/results/peers.json.
.PHONY: peers
peers: $(STAMP)
	$(PY) -m benchmarks.peers.run
