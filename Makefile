# The two set-up commands of the README are `make demo` and `make test`; each creates what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test lint bench clean image image-test

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip==26.0"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/lusynth run --out runs/demo

# one pytest worker per CPU (whole test files per worker: module fixtures such as servers and
# pipeline runs stay in one process); pytest's exit 5 (nothing collected) still fails
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile tests

# ruff (lint + import order) and mypy (types of the library); CI runs this after the tests
lint: $(STAMP)
	$(BIN)/ruff check src components pipelines tools tests benchmarks
	$(BIN)/mypy

# the component image, built offline with podman + debootstrap (infra/README.md)
image:
	infra/build_image.sh

image-test: $(STAMP)
	LUSYNTH_IMAGE_TEST=1 $(BIN)/python -m pytest -q -m image tests/infra/test_image.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf runs .pytest_cache
