#!/usr/bin/env bash
# One prepared GPU session, for a lent GPU host that has CUDA and PyTorch but no Node.js:
# the GPU tests, then our kernels and training step next to PyTorch's at the same shapes, in
# one run, with everything written under $OUT (at most 8 files; see below).
#
# Here (this machine, nvcc present):
#   npm install && ../shared/tools/portable-node.sh build node_modules dist build build-cuda
# On the GPU host, from the repo root, carrying .portable:
#   OUT=/some/dir bash bench/gpu-session.sh            # tests, kernels, train: at most ~9 minutes
#   PHASES="tests kernels train compile" OUT=... bash bench/gpu-session.sh   # + torch.compile (1.5 min)
#
# Files under $OUT: env.txt, session.log, gpu-tests.log, pit-kernels.jsonl, torch-kernels.jsonl,
# pit-train.jsonl, torch-train.jsonl, compare.txt. Each phase has its own time limit (they add
# up to 530 s for the default phases), so one that hangs or runs long cannot take the rest
# with it, and the whole fits one 10-minute device call.
set -uo pipefail
OUT=${OUT:?set OUT to the folder for results}
PHASES=${PHASES:-"tests kernels train"}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
exec > >(tee -a "$OUT/session.log") 2>&1
export PYTHONUNBUFFERED=1
PIT=(bash .portable/run node dist/cli/pit.js)   # an array, not a function: `timeout` runs it
phase() { echo "== $(date -u +%H:%M:%S) $*"; }
has() { [[ " $PHASES " == *" $1 "* ]]; }

phase env
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  nvcc --version 2>/dev/null | tail -1
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'
  "${PIT[@]}" info
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

if has tests; then
  phase "GPU tests (every CUDA op against the CPU, bf16 attention, whole-model parity)"
  timeout 150 bash .portable/run npx ava --timeout 2m dist/test/cuda-*.test.js > "$OUT/gpu-tests.log" 2>&1
  echo "tests exit $?"; tail -5 "$OUT/gpu-tests.log"
fi

LENS=1024,4096,16384
if has kernels; then
  phase "kernels: ours"
  timeout 120 "${PIT[@]}" bench kernels --device cuda --lens $LENS --budget 200 --out "$OUT/pit-kernels.jsonl" || echo "pit kernels exit $?"
  phase "kernels: PyTorch (SDPA per backend, LayerNorm, copy)"
  rm -f "$OUT/torch-kernels.jsonl"
  timeout 70 python3 bench/pytorch/attention.py --device cuda --lens $LENS --budget 0.2 --out "$OUT/torch-kernels.jsonl" || echo "torch attention exit $?"
  timeout 25 python3 bench/pytorch/layernorm.py --device cuda --budget 0.2 --out "$OUT/torch-kernels.jsonl" || echo "torch layernorm exit $?"
fi

if has train; then
  phase "training step: ours, f32 and mixed precision (bf16 attention)"
  timeout 50 "${PIT[@]}" bench train --device cuda --models pit-t,vit-t/2 --sides 32,64 --budget 1000 --out "$OUT/pit-train.jsonl" || echo "pit train exit $?"
  timeout 50 "${PIT[@]}" bench train --device cuda --models pit-t,vit-t/2 --sides 32,64 --budget 1000 --precision mixed --out /tmp/pit-train-mixed.jsonl || echo "pit train mixed exit $?"
  cat /tmp/pit-train-mixed.jsonl >> "$OUT/pit-train.jsonl" 2>/dev/null
  phase "training step: PyTorch (bf16 autocast, eager)"
  rm -f "$OUT/torch-train.jsonl"
  timeout 50 python3 bench/pytorch/vit_train.py --device cuda --models pit-t,vit-t/2 --sides 32,64 --steps-budget 1 --out "$OUT/torch-train.jsonl" || echo "torch train exit $?"
fi

if has compile; then
  phase "training step: PyTorch, torch.compile"
  timeout 90 python3 bench/pytorch/vit_train.py --device cuda --models pit-t --sides 32 --compile --steps-budget 1 --out "$OUT/torch-train.jsonl" || echo "torch compile exit $?"
fi

phase compare
{
  [ -s "$OUT/pit-kernels.jsonl" ] && [ -s "$OUT/torch-kernels.jsonl" ] && "${PIT[@]}" bench compare "$OUT/pit-kernels.jsonl" "$OUT/torch-kernels.jsonl"
  [ -s "$OUT/pit-train.jsonl" ] && [ -s "$OUT/torch-train.jsonl" ] && "${PIT[@]}" bench compare "$OUT/pit-train.jsonl" "$OUT/torch-train.jsonl"
} > "$OUT/compare.txt" 2>&1
cat "$OUT/compare.txt"
phase done
