#!/usr/bin/env bash
# The README's main command: set everything up, then run the main job on the embedded default
# (the simulated arm driven by the shipped model through the real policy node).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
set +u
# shellcheck disable=SC1091
source "$ROOT/env.sh"
set -u
cd "$ROOT"
if ! python -c 'import sys; from qt_common.cli import VERBS; sys.exit("demo" not in VERBS)'; then
  echo "[demo] setup is complete. The main job (sim + policy node + shipped model) is not built yet:"
  echo "[demo] it arrives with the end-to-end work (see README, 'Status'). Nothing else was run."
  exit 0
fi
exec qt demo "$@"
