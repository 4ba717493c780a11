#!/usr/bin/env bash
# The core test suite on the other supported CPythons (3.10 and 3.13; the main run uses the default one),
# each in a venv of its own that this script creates and keeps up to date. Part of `make test`.
# An interpreter that cannot be found is skipped with a note, except in CI (CI=true), where it is an error.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {  # a python$1 that really runs (a pyenv shim of a version not selected does not)
  local version=$1 candidate
  for candidate in \
    $( (command -v pyenv >/dev/null 2>&1 && ls -d "$(pyenv root)"/versions/"$version".*/bin/python3 2>/dev/null | sort -V -r) || true) \
    $(command -v "python$version" 2>/dev/null || true); do
    if "$candidate" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$version'.split('.')))" 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
}

for version in ${MINIAGENTS_OTHER_PYTHONS:-3.10 3.13}; do
  python=$(find_python "$version")
  if [ -z "$python" ]; then
    if [ "${CI:-}" = "true" ]; then
      echo "CPython $version was not found: the core suite must run on it in CI" >&2
      exit 1
    fi
    echo "note: CPython $version was not found; the core suite is not run on it"
    continue
  fi
  venv=".venv-py$version"
  stamp="$venv/.installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e '.[core-test]'
    touch "$stamp"
  fi
  echo "== core suite on $("$venv/bin/python" --version)"
  "$venv/bin/python" -m pytest -q -p no:cacheprovider -o addopts="" tests \
    --ignore=tests/notebook --ignore=tests/llm_real --ignore=tests/test_notebooks_report.py \
    --ignore=tests/test_secrets_never_leak.py
done
