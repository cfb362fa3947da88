#!/usr/bin/env bash
# Install napari-diffseglung into .venv and run the main job on bundled data.
# Results go to the folder given as first argument (default: out/).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out}"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0      # CPU wheel; see README for GPU builds
.venv/bin/python -m pip install -q -e .
.venv/bin/diffseglung demo "$out"
