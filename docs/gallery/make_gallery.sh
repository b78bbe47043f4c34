#!/usr/bin/env bash
# Regenerates the README gallery from a real run of the demo (seed 0) and the power plan
# of its two studies. Run from the repository root with the project installed
# (pip install -e ".[train]").
set -euo pipefail
out="${1:-optcmp-demo}"
optcmp demo --out "$out" --seed 0
# The figures the README shows (the aggregate over one workload is left out there).
for fig in budget rank inclusion protocol-choi2019-vs-lr-only targets curves profiles \
  boundary-teacher_mlp; do
  cp "$out/report/figures/$fig.png" docs/gallery/
done
optcmp plan "$out/study-choi2019" --compare "$out/study-lr-only" \
  --protocol choi2019 --protocol lr-only --kind inclusion --kind protocol \
  --figure docs/gallery/plan.png
