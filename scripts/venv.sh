#!/usr/bin/env bash
# Build (once) and link the project's virtualenv.
#   The venv lives outside the clone, at $SHIPYARD_VENV_CACHE/<hash of requirements.lock + python>,
#   so every clone, `make` and CI reuse it; `.venv` in the checkout is a symlink to it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
CACHE=${SHIPYARD_VENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shipyard/venvs}
key=$( { cat requirements.lock; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-16)
venv="$CACHE/$key"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  echo "venv: building $venv (first use of this lock file; ~3 minutes)"
  mkdir -p "$CACHE"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  # pip as shipped with Python 3.11 (23.x) keeps the local torch cap inside build environments
  # (DeepSpeed's sdist build imports torch): do not upgrade pip here.
  "$venv/bin/pip" install --no-input -q -r requirements.lock 2>&1 | { grep -v "^WARNING: Location" || true; }
  touch "$venv/.complete"
fi
ln -sfn "$venv" .venv
echo "venv: .venv -> $venv"
