#!/usr/bin/env bash
# Generate noisy-sine samples with 4 local processes, split them into train and
# valid groups, and train an MLP on them with scorch-train.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=runs/gen-demo
rm -rf "$work" && mkdir -p "$work" && cp examples/gen/datasets.py "$work/"
gen() { .venv/bin/scorch-gen "$@" --dir "$work"; }
gen generate noisy_sine -n 1200 --jobs 4 --local --time 5
gen move noisy_sine 1000 train
gen move noisy_sine 200 valid
gen list
gen need noisy_sine 5000 --group train --jobs 10
.venv/bin/scorch-train --model examples/gen/model.py --dataset examples/gen/dataset.py \
  --dataset-path "$work" --epochs 15 --batch-size 50 --lr 0.01 --optimizer adam \
  --run-root runs --name gen-demo-train --overwrite --no-progress
.venv/bin/python - <<'PY'
import csv
rows = list(csv.DictReader(open("runs/gen-demo-train/history.csv")))
print(f"gen demo: {len(rows)} epochs, valid/mse {float(rows[-1]['valid/mse']):.4f} "
      f"(noise variance 0.01)")
PY
