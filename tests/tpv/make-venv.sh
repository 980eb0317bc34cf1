#!/usr/bin/env bash
# Build the venv the TPV tests and benchmarks/tpv_overhead.py route jobs in: the real
# total-perspective-vortex 3.3 with the real Galaxy libraries (about 1.6 GB, minutes to build).
#
# Why a venv of its own: the galaxy metapackage pins ~350 packages exactly (pydantic, fastapi,
# sqlalchemy, numpy, ...); installed next to the broker they would fight over versions. In
# production TPV runs inside Galaxy's venv, not the broker's, so this mirrors that split too.
#
# Reused as is when it was built from the same constraints, TPV spec and Python: the stamp file
# holds a hash of those and is written last, so an interrupted build is never taken as complete.
# Usage: tests/tpv/make-venv.sh   (env: PYTHON=python3.11, TPV_VENV=path)
# Default place: the user's cache directory, outside the checkout, so every clone on the machine
# (CI's fresh clones too) reuses one build; tests/support/real_tpv.py uses the same default.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${TPV_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tpv-broker/venv-tpv}"
mkdir -p "$(dirname "$VENV")"
PYTHON="${PYTHON:-python3}"
CONSTRAINTS="$ROOT/tests/tpv/constraints.txt"
TPV_SPEC="total-perspective-vortex[cli]==3.3.0"
STAMP="$VENV/.tpv-venv-stamp"
MYPY_CACHE="$VENV/.mypy_cache"

# `tpv lint` type-checks code blocks with mypy against Galaxy's sources: minutes the first time,
# seconds with a warm cache. Warm it once; the tests point MYPY_CACHE_DIR at the same place.
warm_mypy_cache() {
  local dir
  dir="$(mktemp -d)"
  printf 'tools:\n  t:\n    rank: |\n      candidate_destinations\n' >"$dir/tpv.yml"
  # Same mypy options as tests/support/real_tpv.py LINT_MYPY_INI, or the cache would not match.
  printf '[mypy]\nfollow_untyped_imports = True\n' >"$dir/mypy.ini"
  (cd "$dir" && MYPY_CACHE_DIR="$MYPY_CACHE.partial" "$VENV/bin/tpv" lint "$dir/tpv.yml" \
    >/dev/null 2>&1)
  rm -rf "$dir" "$MYPY_CACHE"
  mv "$MYPY_CACHE.partial" "$MYPY_CACHE"
}

# One build at a time (make test and a direct pytest run may both ask for it).
exec 9>"$VENV.lock"
flock 9

want="$( { cat "$CONSTRAINTS"; echo "$TPV_SPEC"; "$PYTHON" -c 'import sys; print(sys.version)'; } \
  | sha256sum | cut -d' ' -f1)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/tpv" ]; then
  if [ ! -d "$MYPY_CACHE" ]; then
    echo "tpv venv: warming the mypy cache of tpv lint"
    warm_mypy_cache
  fi
  echo "tpv venv: reusing $VENV (matches tests/tpv/constraints.txt)"
  exit 0
fi

echo "tpv venv: building $VENV with $TPV_SPEC (one-time cost of several minutes)"
start=$(date +%s)
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
# pip itself is pinned in the constraints file: the resolver that produced them is the one used.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$CONSTRAINTS" --upgrade pip
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$CONSTRAINTS" "$TPV_SPEC"
# The first import of Galaxy compiles thousands of modules (tens of seconds): pay it here, once,
# instead of inside the first test that routes a job.
(cd "$VENV" && "$VENV/bin/python" -W ignore -c \
  'import tpv.rules.gateway, tpv.commands.shell, tpv.commands.test.mock_galaxy' >/dev/null 2>&1)
warm_mypy_cache
echo "$want" >"$STAMP"
echo "tpv venv: built in $(($(date +%s) - start)) s, $(du -sh "$VENV" | cut -f1)"
