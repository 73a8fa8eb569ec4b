# Two commands on a fresh machine with python3, pip and make: `make demo` and `make test`.
UV := python3 -m uv
RUN := $(UV) run --frozen

.PHONY: setup demo test lint isolated dist bench

setup:  ## install uv (through pip when absent) and the locked environment
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv \
		|| python3 -m pip install --quiet --user --break-system-packages uv
	$(UV) sync --locked --all-packages

demo: setup  ## Noisy Student and its robustness on the embedded digits (about 7 minutes on 2 cores)
	$(RUN) ns demo --out runs/demo

test: setup  ## the whole test suite
	$(RUN) pytest -q -n auto --dist loadfile  # one worker per core, each file on one worker

bench: setup  ## every benchmark at full size against its plain baseline; results in bench/results/
	$(RUN) ns bench

lint: setup
	$(RUN) ruff check packages tests bench
	$(RUN) ruff format --check packages tests bench
	$(RUN) mypy

isolated:  ## ns-data and ns-models tested alone, in environments without their siblings
	UV_PROJECT_ENVIRONMENT=.venv-ns-data $(UV) sync --locked --package ns-data --group dev
	.venv-ns-data/bin/python -m pytest -q -n auto --dist loadfile tests/ns_data
	UV_PROJECT_ENVIRONMENT=.venv-ns-models $(UV) sync --locked --package ns-models --group dev
	.venv-ns-models/bin/python -m pytest -q -n auto --dist loadfile tests/ns_models

dist: setup  ## a wheel and an sdist of each package, one shared version, into dist/
	rm -rf dist
	$(UV) build --all-packages --out-dir dist/
