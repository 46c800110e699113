#!/usr/bin/env bash
# Every check in one command: lint, format, types, tests (offline, CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
ruff format --check .
mypy
python -m pytest -q "$@"
