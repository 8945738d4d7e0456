#!/usr/bin/env bash
# Train the digits CNN on 2 ranks under mpirun; print the final validation accuracy.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
start=$(date +%s)
mpirun -np 2 .venv/bin/scorch-train \
  --model examples/digits/model.py --dataset examples/digits/dataset.py \
  --epochs 12 --batch-size 32 --lr 0.002 --monitor valid/accuracy \
  --run-root runs --name digits-demo --overwrite
.venv/bin/python - "$start" <<'PY'
import csv, sys, time
rows = list(csv.DictReader(open("runs/digits-demo/history.csv")))
acc = float(rows[-1]["valid/accuracy"])
print(f"digits demo: {len(rows)} epochs, valid/accuracy {acc:.4f}, {time.time() - float(sys.argv[1]):.0f} s; run directory runs/digits-demo")
sys.exit(0 if acc >= 0.95 else f"digits demo: accuracy {acc:.4f} is below 0.95")
PY
