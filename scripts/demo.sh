#!/usr/bin/env bash
# The main job end to end on the embedded default (filled in as the areas land).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/opskit spec validate
