# `make demo` and `make test` install what they need (a virtualenv in .venv, Debian's Fashion-MNIST).
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: demo test data bench docs reference

$(INSTALLED): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,export,mlflow]'
	touch $@

# Debian packages: the embedded dataset, and the browser the report tests drive
data:
	@(test -d $(FASHION_MNIST) && command -v chromium >/dev/null) || \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist chromium)

demo: $(INSTALLED) data
	$(VENV)/bin/ppsearch run --space resnet-cifar --dataset fashion-mnist --budget demo --trials 6 --confirm-seeds 2
	$(VENV)/bin/ppsearch report runs/search/resnet-cifar-fashion-mnist-demo

test: $(INSTALLED) data
	$(VENV)/bin/ruff check .
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet -d site
	$(PY) -m pytest

# the documentation site (docs/, mkdocs.yml) into site/; --strict: a broken link or a missing page fails
docs: $(INSTALLED)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -d site

# rewrite docs/reference/ from the code (the CLI parser, the configuration schema, the run directory);
# tests/test_docs.py fails until this is run after such a change
reference: $(INSTALLED)
	$(PY) docs/generate_reference.py

bench: $(INSTALLED) data
	$(PY) benchmarks/bench_layers.py
	$(PY) benchmarks/bench_corruptions.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_search.py
	$(PY) benchmarks/bench_report.py
	$(PY) benchmarks/bench_verdicts.py
	$(PY) benchmarks/bench_data.py
