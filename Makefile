# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FRONTEND_STAMP := frontend/node_modules/.installed
FRONTEND_SOURCES := $(shell find frontend/src frontend/index.html frontend/vite.config.* frontend/tsconfig*.json -type f 2>/dev/null)

.PHONY: demo test lint pytest frontend-test e2e build stack bench bench-quick soak clean

demo: build ## Seed 1,000+ demo images and serve the picker on http://127.0.0.1:8080
	$(BIN)/thumbs demo

test: build lint frontend-test pytest ## ruff and mypy, the frontend's unit tests, then pytest (unit, integration, e2e)

build: $(STAMP) frontend/dist/index.html

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(FRONTEND_STAMP): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

frontend/dist/index.html: $(FRONTEND_STAMP) $(FRONTEND_SOURCES)
	cd frontend && npm run build --silent

# mypy over the product packages and the code that drives them (bench/, tests/): a fake that
# drifts from the interface it stands in for fails here, not in a benchmark run.
# (~20 s from a cold cache on a 2-core host.)
MYPY_PATHS := thumbs proxy library_api httpkit bench tests
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy $(MYPY_PATHS)

frontend-test: $(FRONTEND_STAMP)
	cd frontend && npm test --silent

# Under coverage, subprocesses included ([tool.coverage] in pyproject.toml); prints the total and
# writes var/coverage/report.txt, and still fails when a test fails. PYTEST_ARGS narrows the run.
PYTEST_ARGS ?=
pytest: $(STAMP)
	rm -rf var/coverage && mkdir -p var/coverage
	status=0; $(BIN)/coverage run -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) || status=$$?; \
	$(BIN)/coverage combine -q && \
	$(BIN)/coverage report --skip-covered --sort=cover > var/coverage/report.txt && \
	echo "coverage: $$($(BIN)/coverage report --format=total)% of thumbs/, proxy/, library_api/, httpkit/ (report: var/coverage/report.txt)"; \
	exit $$status

e2e: build
	$(BIN)/pytest -q -p no:cacheprovider tests/e2e

stack: build ## The production shape: nginx edge + app workers (+ warm worker with Redis)
	$(BIN)/thumbs stack

clean:
	rm -rf var frontend/dist

# Benchmarks (bench/): results JSON in bench/results/, rendered into docs/BENCHMARKS.md + docs/bench-*.png.
BENCH_TOOLS := bench/.venv-thumbor/.installed

$(BENCH_TOOLS): bench/peers/package-lock.json
	command -v wrk >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	test -x bench/.venv-thumbor/bin/python || $(PYTHON) -m venv bench/.venv-thumbor
	bench/.venv-thumbor/bin/pip install --quiet thumbor==7.8.0 pycurl
	# Next.js 16 and ipx 3 (sharp) from the committed lock, into the gitignored bench/peers/node_modules.
	command -v npm >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm)
	cd bench/peers && npm ci --no-audit --no-fund
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

bench: build $(BENCH_TOOLS) ## Everything, side by side with thumbor, Next.js, ipx, Pillow and nginx (< 25 min)
	$(BIN)/python -m bench.run

bench-quick: build $(BENCH_TOOLS) ## Fewer images, shorter runs (< 3 min)
	$(BIN)/python -m bench.run --quick

# Longer reliability runs (not part of `make test`): fuzzing and schemathesis at 20x the
# examples, then 60 s of wrk against `thumbs stack` (figures in bench/results/soak_load.json).
soak: build
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	THUMBS_SOAK_SCALE=20 $(BIN)/pytest -q -p no:cacheprovider tests/reliability/test_fuzz.py tests/reliability/test_schema.py
	$(BIN)/python -m bench.soak_load --seconds 60 --sources 3000 --out bench/results/soak_load.json
