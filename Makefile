# The two commands of the README, and what they need. Each step runs only once:
# re-running `make test` or `make demo` reuses the virtual environment and the weights.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= cpu

.PHONY: install weights test demo clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test]'
	touch $@

install: $(VENV)/.installed

weights/lpips/alexnet.safetensors: $(VENV)/.installed
	$(PY) scripts/prepare_lpips_weights.py --out weights/lpips

weights: weights/lpips/alexnet.safetensors

test: install weights
	VQGAN_LPIPS_WEIGHTS=weights/lpips $(PY) -m pytest -q tests

demo: install weights
	$(PY) scripts/train_vqgan.py --config configs/vqgan/emoji32.yaml run_dir=runs/demo

clean:
	rm -rf $(VENV) weights runs
