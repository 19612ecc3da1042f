# The two commands of the README. Both create ./.venv and install mmkd into it first.
#   make quickstart   # run the offline quickstart sweep (CPU, ~15 min cold)
#   make test         # unit + integration tests, ruff and mypy
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install quickstart test lint

$(BIN)/mmkd: pyproject.toml
	$(PY) -m venv $(VENV)
	# The CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet --disable-pip-version-check "torch==2.13.0"
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(BIN)/mmkd

install: $(BIN)/mmkd

quickstart: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/mmkd sweep run quickstart $(ARGS)

lint: install
	$(BIN)/ruff check mmkd tests benchmarks
	$(BIN)/ruff format --check mmkd tests benchmarks
	$(BIN)/mypy

test: lint
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/pytest -q -rs
