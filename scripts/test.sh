#!/usr/bin/env bash
# Set up and run the test suite on a fresh Debian/Ubuntu machine (Python >= 3.10).
#   bash scripts/test.sh            fast tests and ruff (default tox envs py, lint)
#   bash scripts/test.sh -e slow    slow tests;  -e crosscheck: pyradiomics agreement;  -e lint: ruff
set -euo pipefail
cd "$(dirname "$0")/.."

# napari needs an X server in tests (pytest-xvfb starts Xvfb) and Qt's xcb libraries.
apt_packages="xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxcb-xinerama0
  libxkbcommon-x11-0 libegl1 libgl1 libdbus-1-3 libfontconfig1"
if ! command -v Xvfb >/dev/null 2>&1 || ! ldconfig -p | grep -q libxcb-cursor; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $apt_packages
fi

python3 -m pip install -q --upgrade "tox>=4"
python3 -m tox "$@"
