#!/usr/bin/env bash
# Train SimpleConvNet (examples/mnist_cnn.py) in a project-local virtual environment (.venv),
# creating it if needed. Arguments go to the example (e.g. --epochs 1 --init he).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
exec "$VENV/bin/python" examples/mnist_cnn.py "$@"
