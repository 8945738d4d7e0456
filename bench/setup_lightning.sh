#!/usr/bin/env bash
# bench/.venv-lightning: Lightning beside the same torch as .venv, never changing .venv.
# Idempotent: does nothing when Lightning already imports there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=bench/.venv-lightning
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import lightning, tensorboardX" 2>/dev/null; then
    exit 0
fi
TORCH_PIN=$(grep -E '^torch==' constraints.txt)
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q "$TORCH_PIN"
"$VENV/bin/python" -m pip install -q -c constraints.txt lightning tensorboardX
"$VENV/bin/python" -c "import torch, lightning; v = torch.__version__.split('+')[0]; assert v == '${TORCH_PIN#torch==}', v; print('bench: lightning', lightning.__version__, 'on torch', torch.__version__)"
