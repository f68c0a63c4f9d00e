# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
DEMO   := data/demo

.PHONY: demo test lint format docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# torch is installed first and pinned: an unpinned torch would pull GBs of CUDA wheels.
$(VENV)/.base: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev,docs,torch,testing,dask,s3]'
	touch $@

demo: $(VENV)/.base
	rm -rf $(DEMO)
	$(BIN)/python -m packer.demo $(DEMO)/tree --per-class 80
	$(BIN)/pack convert $(DEMO)/tree $(DEMO)/demo-tar.pack --format tar --samples-per-shard 100
	$(BIN)/pack convert $(DEMO)/tree $(DEMO)/demo-zip.pack --format zip
	$(BIN)/pack inspect $(DEMO)/demo-tar.pack
	$(BIN)/pack verify $(DEMO)/demo-tar.pack --deep
	$(BIN)/pack verify $(DEMO)/demo-zip.pack
	$(BIN)/pack convert $(DEMO)/tree $(DEMO)/demo-tar.pack --format tar --samples-per-shard 100 --update
	$(BIN)/python -c "import packer; p = packer.open_pack('$(DEMO)/demo-zip.pack'); s = p[0]; \
	  print(f'first sample: key={s.key!r} label={s.label} ({p.classes[s.label]}) {len(s.data)} bytes .{s.ext}')"

test: $(VENV)/.dev
	$(BIN)/python -m pytest -q -m "slow or not slow"

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(VENV)/.dev
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

docs: $(VENV)/.dev
	$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) data site .pytest_cache .mypy_cache .ruff_cache .hypothesis
