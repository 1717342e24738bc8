# The two commands of the README. Each creates the virtual environment it needs (.venv) on a
# fresh machine and reinstalls when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-export: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[export]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[export,dev,split]'
	touch $@

## demo: the main job: the model table, then mobileunet trained on the embedded shapes data
## and exported to every format, each artifact validated against the Keras model
demo: $(VENV)/.installed-export
	$(BIN)/python -m zoo summary --alphas 1.0,0.5 --input-size 224
	$(BIN)/python train.py --arch mobileunet --alpha 0.5 --input-size 128 --epochs 20 --lr 2e-3
	$(BIN)/python export.py --format all

## test: lint and the whole test suite, on TEST_WORKERS pytest-xdist workers (CI has 2 cores;
## tests/conftest.py hands out whole test files, longest first; TEST_WORKERS=0: one process)
TEST_WORKERS ?= 2
test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)
