# Two entry points do all set-up on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test test-slow bench clean

# -qq: errors only (setuptools warns on every editable install; pip on each missing local index).
# CPU torch from local disk first, so nothing later pulls the multi-GB CUDA build.
# xautodl 1.0.0 pins numpy<=1.19.5, which cannot be built; it works with numpy 2, hence --no-deps.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -qq --upgrade pip
	$(BIN)/pip install -qq torch==2.13.0
	$(BIN)/pip install -qq -e '.[live,dev]'
	$(BIN)/pip install -qq --no-deps xautodl==1.0.0
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/calnas search --objective acc,ece --budget 500 --seed 0 --out runs/default

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) runs
