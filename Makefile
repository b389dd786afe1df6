# The two commands of the README: `make dev` (set up and run) and `make test` (set up and test).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install dev test lint checkov browser sam-build bench clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

install: $(INSTALLED)

dev: $(INSTALLED)
	$(BIN)/tgops dev

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# checkov in a venv of its own: its pins (boto3, packaging) would fight the project's.
CHECKOV := $(VENV)-checkov/bin/checkov
$(CHECKOV):
	$(PYTHON) -m venv $(VENV)-checkov
	$(VENV)-checkov/bin/python -m pip install --quiet 'checkov==3.3.30'

checkov: $(CHECKOV)
	$(CHECKOV) --file template.yaml --framework cloudformation --quiet --compact --skip-download

# The Lambda artifacts, as `sam build` makes them for `sam deploy`: functions/Makefile and layers/Makefile
# fetch arm64 python3.12 wheels from PyPI with the venv's pip (no python3.12, no Docker). Then the size of
# all of them together, which bounds any one function with its layers, against Lambda's 250 MB unzipped.
SAM_BUILD_DIR := .aws-sam/build
LAMBDA_UNZIPPED_LIMIT_KIB := 256000
sam-build: $(INSTALLED)
	PATH="$(abspath $(BIN)):$$PATH" sam build --build-dir $(SAM_BUILD_DIR)
	@du -sk $(SAM_BUILD_DIR)/*Layer
	@total=$$(du -sk -c $(SAM_BUILD_DIR)/*/ | tail -n 1 | cut -f 1); \
		echo "functions and layers unzipped: $$total KiB (Lambda's limit: $(LAMBDA_UNZIPPED_LIMIT_KIB) KiB)"; \
		test $$total -lt $(LAMBDA_UNZIPPED_LIMIT_KIB)

# The dashboard's browser tests drive Debian's Chromium (Playwright never downloads a browser here).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

test: lint checkov browser
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(VENV)-checkov .pytest_cache
