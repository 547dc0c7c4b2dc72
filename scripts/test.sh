#!/usr/bin/env bash
# Run the test suite in a project-local virtual environment (.venv), creating it if needed.
# Installs Debian's graphviz (for rendering tests) when run as root with apt-get available.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
exec "$VENV/bin/python" -m pytest "$@"
