#!/usr/bin/env bash
# Regenerates the README gallery from a real run of the demo (seed 0) and the power plan
# of its two studies. Run from the repository root with the project installed
# (pip install -e ".[train]").
set -euo pipefail
out="${1:-optcmp-demo}"
optcmp demo --out "$out" --seed 0
cp "$out"/report/figures/*.png docs/gallery/
optcmp plan "$out/study-choi2019" --compare "$out/study-lr-only" \
  --protocol choi2019 --protocol lr-only --kind inclusion --kind protocol \
  --figure docs/gallery/plan.png
