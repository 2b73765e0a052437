# The commands of the README, and what they need. Each step runs only once:
# re-running `make test` or `make demo` reuses the virtual environment and the weights.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= cpu

.PHONY: install weights test demo sample clean gpu-bundle

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e '.[test]'
	touch $@

install: $(VENV)/.installed

weights/lpips/alexnet.safetensors: | $(VENV)/.installed
	$(PY) scripts/prepare_lpips_weights.py --out weights/lpips

weights/fid/inception-2015-12-05.pt: | $(VENV)/.installed
	$(PY) scripts/prepare_fid_weights.py --out weights/fid

weights: weights/lpips/alexnet.safetensors weights/fid/inception-2015-12-05.pt

test: install weights
	REQUIRE_WEIGHTS=1 VQGAN_LPIPS_WEIGHTS=weights/lpips VQGAN_FID_WEIGHTS=weights/fid $(PY) -m pytest -q tests

sample: install
	$(PY) scripts/sample.py --model data/pretrained/emoji32_f2 --num 90 --cfg 2 --seed 0 --out runs/sample.png

demo: install weights
	$(PY) scripts/main_job.py --config configs/main/$(PRESET).yaml

clean:
	rm -rf $(VENV) weights runs

# What scripts/gpu_check.sh needs on a GPU machine without internet (carry gpu_bundle/ and weights/lpips/).
gpu-bundle: install weights/lpips/alexnet.safetensors
	$(PY) -m pip wheel --no-deps -w gpu_bundle omegaconf antlr4-python3-runtime==4.9.3 lpips
