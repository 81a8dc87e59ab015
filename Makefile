# Every target installs what it needs first (uv from PyPI, then the locked environment).
# Bytecode is compiled at install: where it is not (and PYTHONDONTWRITEBYTECODE is set), every
# process parses its imports from source, which costs each daemon ~10 MiB and its start time.
UV_VERSION := 0.13.9
UV := python3 -m uv

.PHONY: up test check bench proto env screenshots

env:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --quiet --compile-bytecode

up: env                       ## a local cluster: one gateway, six nodes, SQLite, data in ./data
	$(UV) run diststorage up

test: env                     ## the whole test suite (starts real processes on loopback)
	$(UV) run pytest

check: env                    ## lint, format, types, import contracts, generated code up to date
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run lint-imports
	$(UV) run scripts/gen-proto
	git diff --exit-code -- src/diststorage/proto || (echo "generated gRPC code is stale: run scripts/gen-proto" && exit 1)

bench: env                    ## throughput, latency and memory figures (not part of the tests)
	$(UV) run python -m bench.transfer

proto: env
	$(UV) run scripts/gen-proto

screenshots: env              ## PNGs of each dashboard screen of a small live cluster, one node stopped
	$(UV) run python scripts/screenshots
