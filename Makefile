# relift: two commands on a fresh machine.
#   make demo   make install, then run the whole workflow on the embedded default (plain `snakemake`)
#   make test   create .venv, install everything, run the test suite
# make install  create .venv, install everything, and link profiles/slurm into your Snakemake
#               profile folder so that `snakemake --profile slurm` finds it (never replaces a
#               profile of yours of that name; undo: make uninstall-profile)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, pinned: on these machines a CPU wheel of 2.13.0 is on disk; a looser spec
# would pull a multi-GB CUDA build. Override on a GPU machine: make demo TORCH_SPEC='torch>=2.4'
TORCH_SPEC ?= torch==2.13.0
# extra snakemake arguments, e.g. make demo ARGS='--configfile config/paper-regpt.yaml'
ARGS ?=

export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
# DeepSpeed's JIT-compiled ops (the CPU comm op of the ZeRO-2 tests) are built once, here
export TORCH_EXTENSIONS_DIR ?= $(abspath $(VENV))/torch_extensions
# the virtualenv's tools first: torch builds those ops with `ninja` from PATH, and the one the
# deepspeed wheel brings must build and load them (a system ninja of another version discards
# the other's build log and rebuilds the op in the middle of a test; none may be installed)
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install deepspeed-ops install-profile uninstall-profile demo test test-fast lint format dag rulegraph bench gpu-wheels profile clean

install: $(VENV)/.installed deepspeed-ops install-profile

# ~/.config/snakemake/slurm -> profiles/slurm (python -m relift.profiles --help)
install-profile: $(VENV)/.installed
	$(BIN)/python -m relift.profiles install --checkout $(CURDIR)

uninstall-profile: $(VENV)/.installed
	$(BIN)/python -m relift.profiles uninstall --checkout $(CURDIR)

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev,deepspeed]" "$(TORCH_SPEC)"
	touch $@

# DeepSpeed's CPU comm op (deepspeed_shm_comm), the one op a CPU ZeRO-2 run JIT-compiles: built
# once (~3 min on 2 cores) into TORCH_EXTENSIONS_DIR, where the tests and later runs load it
deepspeed-ops: $(TORCH_EXTENSIONS_DIR)/.built

$(TORCH_EXTENSIONS_DIR)/.built: $(VENV)/.installed tools/build_deepspeed_ops.py
	DS_ACCELERATOR=cpu $(BIN)/python tools/build_deepspeed_ops.py
	touch $@

# a plain `snakemake` runs locally with the settings of profiles/local (workflow profile
# profiles/default)
demo: install
	$(BIN)/snakemake $(ARGS)
	$(BIN)/snakemake $(ARGS) --report results/report.html
	@echo "report: $(CURDIR)/results/report.html"

# the tests never touch your Snakemake profile folder (they link into a temporary one)
test: $(VENV)/.installed deepspeed-ops
	$(BIN)/python -m pytest -q --durations=15

# the developers' loop: everything but the real snakemake DAG runs (marked slow)
test-fast: $(VENV)/.installed deepspeed-ops
	$(BIN)/python -m pytest -q -m "not slow" --durations=10

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --cores 1

format: $(VENV)/.installed
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench
	$(BIN)/snakefmt Snakefile workflow/rules

# DAG pictures: results/dag.svg (every job) and results/rulegraph.svg (every rule)
dag: $(VENV)/.installed
	command -v dot >/dev/null || apt-get install -y -qq graphviz
	mkdir -p results
	$(BIN)/snakemake --dag $(ARGS) | dot -Tsvg > results/dag.svg
	$(BIN)/snakemake --rulegraph $(ARGS) | dot -Tsvg > results/rulegraph.svg
	@echo "wrote results/dag.svg results/rulegraph.svg"

# the rule graph shown in the README (tests/test_workflow.py checks it matches the rules)
rulegraph: $(VENV)/.installed
	command -v dot >/dev/null || apt-get install -y -qq graphviz
	$(BIN)/snakemake --rulegraph | dot -Tsvg > docs/rulegraph.svg

# throughput benchmarks (ratios against baselines run alongside); most read results/ of `make demo`
# per-rule wall/CPU time of the last run (Snakemake log + benchmark TSVs) and job start-up costs
profile: $(VENV)/.installed
	$(BIN)/python bench/profile_demo.py

bench: $(VENV)/.installed
	$(BIN)/python bench/bench_phrase_table.py
	$(BIN)/python bench/bench_regpt_train.py
	$(BIN)/python bench/bench_bm25.py
	$(BIN)/python bench/bench_candidates.py
	$(BIN)/python bench/bench_dag.py
	$(BIN)/python bench/bench_demo_chain.py

# bench/wheels/: what bench/gpu_smoke.sh installs on an offline CUDA machine (its image has torch,
# transformers and accelerate), for that machine's Python (tools/gpu_wheels.py --help)
GPU_PYTHON ?= 3.12
gpu-wheels: $(VENV)/.installed
	$(BIN)/python tools/gpu_wheels.py --dest bench/wheels --python-version $(GPU_PYTHON)

clean:
	rm -rf results .snakemake
