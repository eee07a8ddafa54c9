#!/usr/bin/env bash
# The whole test suite: installs what it needs, then lint and every test (unit, adapters, integration
# against a real registry and Git server started by the tests). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest -q "$@"
