# Two commands on a fresh machine:  `make run`  (set up, open the app)  and  `make test`.
# Both create .venv on first use and reinstall only when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint setup benchmark clean

# The example model plugin is installed too: the tests train and open its models (README, "Model plugins").
$(STAMP): pyproject.toml examples/latent-explorer-vqvae/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet -e examples/latent-explorer-vqvae
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/latent-explorer

# The style check and the layer rules (pyproject.toml: [tool.ruff], [tool.importlinter]).
lint: $(STAMP)
	$(BIN)/ruff check explorer tests benchmarks packaging scripts examples
	$(BIN)/lint-imports

test: $(STAMP) lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

benchmark: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# A one-folder desktop app in dist/latent-explorer/ (PyInstaller), self-tested; see README.
.PHONY: package
package: $(STAMP)
	packaging/build.sh
