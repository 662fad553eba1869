# hpsearch: the two commands of the README are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED_DATA ?= $(abspath ../shared/data)
CACHE_DIR ?= $(HOME)/.cache/hpsearch
# Datasets are looked for here first (then Debian's /usr/share/datasets, then ~/.keras/datasets).
HPSEARCH_DATA_DIR ?= $(SHARED_DATA):$(CACHE_DIR)
export HPSEARCH_DATA_DIR
RUNS ?= runs/demo

.PHONY: install data demo test test-fast benchmarks benchmark-search-efficiency clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Find the data: Fashion-MNIST from $(SHARED_DATA) or Debian's package (installed when root),
# CIFAR-10 converted once from $(SHARED_DATA)/cifar10 into $(CACHE_DIR) (outside the repository).
data: install
	@$(BIN)/hpsearch data fashion_mnist >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Fashion-MNIST with apt-get install dataset-fashion-mnist"; \
	    apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null; } || true; \
	  fi; }
	@if [ -f "$(SHARED_DATA)/cifar10/prepare.py" ] && [ ! -d "$(CACHE_DIR)/cifar10/cifar-10-batches-py" ]; then \
	  echo "Preparing CIFAR-10 from $(SHARED_DATA)/cifar10 into $(CACHE_DIR)/cifar10"; \
	  $(BIN)/python "$(SHARED_DATA)/cifar10/prepare.py" "$(CACHE_DIR)/cifar10"; fi
	-@$(BIN)/hpsearch data fashion_mnist cifar10

# The main job on a small budget (minutes on 2 CPU cores): search the MLP space on Fashion-MNIST (bohb),
# retrain the top 3 on CIFAR-10 (skipped with a note when CIFAR-10 is missing), write the report.
demo: data
	$(BIN)/hpsearch tune mlp --dataset fashion_mnist --run-dir $(RUNS)/mlp --subset 10000 --max-epochs 6
	@if $(BIN)/hpsearch data cifar10 >/dev/null 2>&1; then \
	  $(BIN)/hpsearch transfer $(RUNS)/mlp --dataset cifar10 --run-dir $(RUNS)/mlp-cifar10 --subset 10000; \
	else echo "CIFAR-10 not found: skipping transfer (see 'hpsearch data cifar10' for how to provide it)"; fi
	$(BIN)/hpsearch report $(RUNS)/mlp $$(test -d $(RUNS)/mlp-cifar10 && echo $(RUNS)/mlp-cifar10) --out $(RUNS)/report
	@echo "Report: $(RUNS)/report/report.html"

test: data
	$(BIN)/python -m pytest -n 2

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not integration"

benchmarks: data
	$(BIN)/python benchmarks/bench_steps_per_execution.py
	$(BIN)/python benchmarks/bench_dataset_loading.py
	$(BIN)/python benchmarks/bench_precision.py
	$(BIN)/python benchmarks/bench_precision_accuracy.py
	$(BIN)/python benchmarks/bench_trial_speed.py
	$(BIN)/python benchmarks/bench_search_overhead.py

# About an hour on 2 cores: best validation accuracy against epochs spent, hpsearch's tuners and
# Optuna's TPE + Hyperband pruner, 3 seeds (docs/benchmarks/search-efficiency*).
benchmark-search-efficiency: data
	$(BIN)/pip install -q optuna
	$(BIN)/python benchmarks/bench_search_efficiency.py --out docs/benchmarks

clean:
	rm -rf $(VENV) build *.egg-info runs
