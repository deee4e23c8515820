#!/usr/bin/env bash
# Set up (with test tools) and run the default test suite: lint, then pytest.
# Extra arguments go to pytest, e.g.  scripts/test.sh -m slow   or   scripts/test.sh tests/sim
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh" --dev
set +u
# shellcheck disable=SC1091
source "$ROOT/env.sh"
set -u
cd "$ROOT"
echo "[test] ruff check"
ruff check .
echo "[test] pytest"
python -m pytest "$@"
