#!/usr/bin/env bash
# The demo: installs what it needs, starts a local registry and Git server, pushes demo/nodeapp:1.0.0,
# creates a config repo whose Deployment runs it, pushes 2.0.0, runs `image-updater run --once` and
# shows the commit it pushed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py
