#!/usr/bin/env bash
# One prepared GPU session, for a lent GPU host that has CUDA and PyTorch but no Node.js:
# the GPU tests, then our kernels and training step next to PyTorch's at the same shapes, in
# one run, with everything written under $OUT (at most 8 files; see below).
#
# Here (this machine, nvcc present):
#   npm install && ../shared/tools/portable-node.sh build node_modules dist build build-cuda
# On the GPU host, from the repo root, carrying .portable:
#   OUT=/some/dir bash bench/gpu-session.sh            # tests, kernels, train: at most ~9.8 minutes
#   PHASES="tests sanitize" OUT=... bash bench/gpu-session.sh          # + compute-sanitizer (4.5 min)
#   PHASES="tests kernels train compile" OUT=... bash bench/gpu-session.sh   # + torch.compile (1.5 min)
#   PHASES="scaling" OUT=... bash bench/gpu-session.sh   # --find-max with --recompute block (≤ 5 min): scaling.json
#
# Files under $OUT: env.txt, session.log, gpu-tests.log, pit-kernels.jsonl, torch-kernels.jsonl,
# pit-train.jsonl, torch-train.jsonl, compare.txt (sanitize.log with that phase). Each phase has
# its own time limit (they add up to 587 s for the default phases), so one that hangs or runs
# long cannot take the rest with it, and the whole fits one 10-minute device call. The GEMM
# cases (matmul_*, linear_*) come before attention in `pit bench kernels`, so a kernels phase
# cut short loses attention lines, not GEMM lines; each GEMM line says which path ran it.
#
# The bf16 attention kernels come in variants (native/cuda/attention_bf16.cuh, Config): v1,
# validated on an H200; v2, issue 15's FlashAttention-2-level rewrite, checked only in the
# emulator until this script runs; v3, v2 without its polynomial exp2 (D = 16, 32). The kernels
# phase times them at the same shapes in one run, all in pit-kernels.jsonl (every bf16 attention
# line says which: `variant`), and compare.txt gives each against PyTorch, v2 / v1 and v3 / v2
# per shape; the sanitize phase runs all of them under racecheck and synccheck.
# PIT_ATTENTION_VARIANT picks the one training uses (default v1).
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
  echo "-- cuBLASLt candidates (the run-time loader's search order: PIT_CUBLASLT, sonames, python3's nvidia/*/lib)"
  ldconfig -p | grep -i cublaslt
  python3 -c 'import glob, site; [print(f) for d in site.getsitepackages() for f in sorted(glob.glob(d + "/nvidia/*/lib/libcublasLt.so*"))]'
  ls -d /usr/local/cuda*/include/cublasLt.h /usr/local/cuda*/lib64/libcublasLt.so* 2>&1
  echo "-- our cuBLASLt declarations against this host's cublasLt.h (native/cuda/dev/cublaslt_check.cc, static_asserts)"
  for h in /usr/local/cuda/include/cublasLt.h $(python3 -c 'import glob, site; [print(f) for d in site.getsitepackages() for f in sorted(glob.glob(d + "/nvidia/*/include/cublasLt.h"))]' 2>/dev/null); do
    [ -f "$h" ] || continue
    if ${CXX:-g++} -std=c++17 -fsyntax-only -Inative -I"$(dirname "$h")" -I/usr/local/cuda/include native/cuda/dev/cublaslt_check.cc; then
      echo "cublaslt_check: every declared value, size, offset and prototype matches $h"
    else
      echo "cublaslt_check: MISMATCH against $h (the errors above)"
    fi
  done
  echo "-- tools"; command -v compute-sanitizer ncu cuobjdump
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

if has tests; then
  phase "GPU tests (every CUDA op against the CPU, bf16 attention, whole-model parity), one process per file"
  # In parallel, each file under its own limit: the bf16 attention file alone takes ~2 minutes
  # (float64 references at L = 4096), and one file that hangs must not hide the others'
  # results. The emulator file runs on the CPU and in CI; it is left out here.
  # PIT_EXPECT_CUBLASLT: this host has cuBLASLt, so cuda-matmul-lt fails (not skips) without it.
  pids=()
  for f in dist/test/cuda-*.test.js dist/test/model-device.test.js; do
    [[ $f == *cuda-emulator* ]] && continue
    PIT_EXPECT_CUBLASLT=1 timeout -k 5 200 bash .portable/run ava "$f" > "/tmp/gpu-tests-$(basename "$f" .test.js).log" 2>&1 &
    pids+=($!)
  done
  # Named pids: a bare `wait` would also wait for the tee of this script's output (bash >= 5.1).
  wait "${pids[@]}"
  for f in /tmp/gpu-tests-*.log; do echo "######## $(basename "$f")"; cat "$f"; done > "$OUT/gpu-tests.log"
  grep -hE "✘|tests? (passed|failed|skipped)|Timed out" /tmp/gpu-tests-*.log
fi

if has sanitize; then
  # gpu-smoke runs the f32 kernels and every bf16 variant at every head dim, L = 1, 97, 130.
  phase "compute-sanitizer racecheck and synccheck on every attention kernel and variant at small L (dist/bench/gpu-smoke.js)"
  for tool in racecheck synccheck; do
    timeout -k 5 135 compute-sanitizer --tool $tool --print-limit 20 bash .portable/run node dist/bench/gpu-smoke.js > "/tmp/sanitize-$tool.log" 2>&1
    echo "$tool exit $?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|gpu-smoke:|Error" "/tmp/sanitize-$tool.log" | head -5
  done
  cat /tmp/sanitize-*.log > "$OUT/sanitize.log"
fi

LENS=${LENS:-1024,4096,16384}
AB_LENS=${AB_LENS:-4096,16384}   # the attention variants' A/B (kernels phase)
if has kernels; then
  phase "kernels: ours (bf16 attention variant v1)"
  PIT_ATTENTION_VARIANT=v1 timeout 75 "${PIT[@]}" bench kernels --device cuda --lens $LENS --budget 200 --out "$OUT/pit-kernels.jsonl" || echo "pit kernels exit $?"
  # The A/B against v1's lines above, at the long L of the goals: v2 at every D; v3 (v2 without
  # the polynomial exp2) where it differs from v2, D = 16, 32.
  phase "kernels: ours, bf16 attention variants v2 and v3"
  # Appended to pit-kernels.jsonl afterwards: $OUT brings back at most 8 files.
  rm -f /tmp/pit-kernels-v2.jsonl /tmp/pit-kernels-v3.jsonl
  PIT_ATTENTION_VARIANT=v2 timeout 25 "${PIT[@]}" bench kernels --device cuda --ops attention --dtype bf16 --lens $AB_LENS --budget 200 --out /tmp/pit-kernels-v2.jsonl || echo "pit kernels v2 exit $?"
  PIT_ATTENTION_VARIANT=v3 timeout 12 "${PIT[@]}" bench kernels --device cuda --ops attention --dtype bf16 --lens $AB_LENS --head-dims 16,32 --budget 200 --out /tmp/pit-kernels-v3.jsonl || echo "pit kernels v3 exit $?"
  cat /tmp/pit-kernels-v2.jsonl /tmp/pit-kernels-v3.jsonl >> "$OUT/pit-kernels.jsonl" 2>/dev/null
  # Our own bf16 tensor-core GEMM (gemm_bf16.cu), forced: where cuBLASLt loaded it ran the GEMM
  # lines above, so this table (into session.log; each line's [path] says mma or mma/split-K)
  # is our kernel's numbers beside them, at the same shapes.
  phase "kernels: our bf16 tensor-core GEMM (PIT_MATMUL=mma)"
  PIT_MATMUL=mma timeout 20 "${PIT[@]}" bench kernels --device cuda --ops linear_ --dtype bf16 --budget 50 || echo "pit kernels (mma) exit $?"
  phase "kernels: PyTorch (SDPA per backend, LayerNorm, copy, GEMMs)"
  rm -f "$OUT/torch-kernels.jsonl"
  timeout 60 python3 bench/pytorch/attention.py --device cuda --lens $LENS --budget 0.2 --out "$OUT/torch-kernels.jsonl" || echo "torch attention exit $?"
  timeout 25 python3 bench/pytorch/layernorm.py --device cuda --budget 0.2 --out "$OUT/torch-kernels.jsonl" || echo "torch layernorm exit $?"
  timeout 20 python3 bench/pytorch/matmul.py --device cuda --budget 0.1 --out "$OUT/torch-kernels.jsonl" || echo "torch matmul exit $?"
fi

if has train; then
  phase "training step: ours, f32 and mixed precision (bf16 GEMMs and attention, as torch.autocast)"
  timeout 50 "${PIT[@]}" bench train --device cuda --models pit-t,vit-t/2 --sides 32,64 --budget 1000 --out "$OUT/pit-train.jsonl" || echo "pit train exit $?"
  timeout 50 "${PIT[@]}" bench train --device cuda --models pit-t,vit-t/2 --sides 32,64 --budget 1000 --precision mixed --out /tmp/pit-train-mixed.jsonl || echo "pit train mixed exit $?"
  cat /tmp/pit-train-mixed.jsonl >> "$OUT/pit-train.jsonl" 2>/dev/null
  phase "training step: PyTorch (bf16 autocast, eager)"
  rm -f "$OUT/torch-train.jsonl"
  timeout 50 python3 bench/pytorch/vit_train.py --device cuda --models pit-t,vit-t/2 --sides 32,64 --steps-budget 1 --out "$OUT/torch-train.jsonl" || echo "torch train exit $?"
fi

if has scaling; then
  # The largest side PiT-S trains at on this GPU, without and with block recomputation (issue
  # 17's row that the CPU could only extrapolate: lib/train/fit.ts, `pit train --estimate`).
  # Each probe is one step; past ~300×300 a step takes minutes, hence the ceiling and limit.
  phase "scaling: pit-s find-max, --recompute none,block, mixed precision, batch 1"
  timeout -k 5 290 "${PIT[@]}" study scaling --device cuda --models pit-s --sides 32,64,128 --batch 1 --precision mixed \
    --recompute none,block --find-max --ceiling 512 --budget 300 --out /tmp/scaling || echo "scaling exit $?"
  cp /tmp/scaling/scaling.json "$OUT/scaling.json" 2>/dev/null
fi

if has compile; then
  phase "training step: PyTorch, torch.compile"
  timeout 90 python3 bench/pytorch/vit_train.py --device cuda --models pit-t --sides 32 --compile --steps-budget 1 --out "$OUT/torch-train.jsonl" || echo "torch compile exit $?"
fi

phase compare
{
  [ -s "$OUT/pit-kernels.jsonl" ] && [ -s "$OUT/torch-kernels.jsonl" ] && "${PIT[@]}" bench compare "$OUT/pit-kernels.jsonl" "$OUT/torch-kernels.jsonl"
  # B / A = v2 / v1 and v3 / v2 for each bf16 attention shape (the lines of each variant; the
  # first comparison pairs each variant's lines with PyTorch's, the impl column names it).
  for v in v1 v2 v3; do grep "\"variant\":\"$v\"" "$OUT/pit-kernels.jsonl" > "/tmp/ab-$v.jsonl" 2>/dev/null; done
  [ -s /tmp/ab-v1.jsonl ] && [ -s /tmp/ab-v2.jsonl ] && "${PIT[@]}" bench compare /tmp/ab-v1.jsonl /tmp/ab-v2.jsonl
  [ -s /tmp/ab-v2.jsonl ] && [ -s /tmp/ab-v3.jsonl ] && "${PIT[@]}" bench compare /tmp/ab-v2.jsonl /tmp/ab-v3.jsonl
  [ -s "$OUT/pit-train.jsonl" ] && [ -s "$OUT/torch-train.jsonl" ] && "${PIT[@]}" bench compare "$OUT/pit-train.jsonl" "$OUT/torch-train.jsonl"
} > "$OUT/compare.txt" 2>&1
cat "$OUT/compare.txt"
phase done
