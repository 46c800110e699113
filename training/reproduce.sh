#!/usr/bin/env bash
# Reproduce the shipped default weights (asna-kadid-synth) from nothing, on the CPU.
#
# Usage: bash training/reproduce.sh [SHARED_DATA]   (default ../shared/data)
# Data: KADID-protocol pairs synthesised from the reference photographs
# (refs/kodak24, refs/cbsd68), labelled with KADID-10k human cell means.
# Every step is seeded (seed 0) and resumable: rerun the script after an
# interruption and each step continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${1:-../shared/data}
export OMP_NUM_THREADS=1

# 1. Data: 92 references x (25 types x 5 levels + 1 identity pair) = 11,592 pairs.
for set in kodak24 cbsd68; do
  asna-metric synth --refs "$SHARED/refs/$set" --out "runs/synth/$set" --seed 0 --identity
done
ln -sfn synth runs/data  # the configs read runs/data/*/labels.csv

# 2. The three paper variants and the leave-types-out model, one core each,
#    two at a time would also do; seed 0, content-disjoint 80/20 split of the
#    references (the same split for every run).
for name in asna_cpu siamese_diff_cpu siamese_diff_convlstm_cpu asna_cpu_leave_types_out; do
  asna-metric train --config "configs/$name.toml" --out "training/runs/$name" --resume \
    > "training/runs/$name.stdout" 2>&1 &
done
wait

# 3. The ensemble (see docs/model_card.md for which members and why).
asna-metric ensemble training/runs/asna_cpu training/runs/siamese_diff_cpu \
  --out src/asna_metric/_weights/asna-kadid-synth.safetensors --name asna-kadid-synth
