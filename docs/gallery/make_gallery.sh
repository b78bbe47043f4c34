#!/usr/bin/env bash
# Regenerates the README gallery from a real run of the demo (seed 0).
# Run from the repository root with the project installed (pip install -e ".[train]").
set -euo pipefail
out="${1:-optcmp-demo}"
optcmp demo --out "$out" --seed 0
cp "$out"/report/figures/*.png docs/gallery/
