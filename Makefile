# Two commands: `make run` and `make test`. Everything else is a helper.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install lint check-gen gen buf clean

# One line per step, and pip's own lines while the dependencies arrive (~35 s the first time).
# The generated stubs' distribution (proto/python) first: the server and the Python client
# both depend on it, and no package index has it.
$(STAMP): pyproject.toml proto/python/pyproject.toml clients/python/pyproject.toml
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "honcho-grpc needs Python 3.11 or newer; $(PY) is $$($(PY) -V 2>&1)" >&2; exit 1; }
	@echo "==> [1/4] Python environment in $(VENV)"
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "==> [2/4] pip"
	@$(BIN)/pip install -q --upgrade pip
	@echo "==> [3/4] the generated stubs (proto/python)"
	@$(BIN)/pip install -q -e proto/python
	@echo "==> [4/4] honcho-grpc, its client and their dependencies"
	$(BIN)/pip install --progress-bar on -e '.[dev,standalone]' -e clients/python
	@touch $(STAMP)
	@echo "==> installed"

install: $(STAMP)

run: $(STAMP)
	$(BIN)/honcho-grpc up

gen: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

# Regenerate into a scratch dir and fail on any difference with the committed stubs
# (proto/python/src/honcho_grpc_proto); the README's settings table likewise.
check-gen: $(STAMP)
	$(BIN)/python scripts/gen_protos.py --check
	$(BIN)/python scripts/settings_table.py --check

# Lint, format, and wire/source compatibility with the previous commit (FILE level: what
# Python imports need). A clone without history has no previous commit to compare with.
buf: $(STAMP)
	$(BIN)/buf lint
	$(BIN)/buf format -d --exit-code
	if git rev-parse -q --verify HEAD~1 >/dev/null; then \
	  $(BIN)/buf breaking --against '.git#ref=HEAD~1'; \
	else echo "buf breaking: no previous commit, skipped"; fi

lint: $(STAMP)
	$(BIN)/ruff check honcho_grpc tests bench scripts clients/python examples
	$(BIN)/mypy honcho_grpc clients/python/src

test: $(STAMP) check-gen buf lint
	$(BIN)/pytest -q

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
