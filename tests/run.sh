#!/usr/bin/env bash
# Runs the template's whole test suite from nothing: a virtualenv with the test tools, then
# pytest. Downloads are cached (pip's and uv's caches), the environments are not.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
venv=${TEST_VENV:-.venv-tests}
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r tests/requirements.txt

export PATH="$PWD/$venv/bin:$PATH"
exec "$venv/bin/python" -m pytest "$@"
