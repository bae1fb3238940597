#!/usr/bin/env bash
# One `device run` call for a session that is lent a GPU (see README, "The whole set in one command"):
#   smoke pass + the budgeted 128-px recipe (configs/train_all_gpu.yaml), then the GPU benchmarks, all logged to
#   $OUT/run.log, with the exported set ($OUT/*.pt + registry.json: at most 8 files) copied under $OUT.
# Needs, in the carried folder $CARRY (default datapack/, listed in .git/info/exclude): vidanime-data.pt from
# `python -m pipelines.pack_data` and lpips-alex.pth (the lpips wheel's weights/v0.1/alex.pth) unless lpips is installed.
# The tree + carry must fit 64 MiB: the pack is 49.6 MiB, so move vidanime/weights/*.pt (33 MB) out of the tree for
# the call (and back after).  Usage there:  BUDGET=8m bash bench/gpu_session.sh   (PYTHONPATH=. is set here)
set -u
CARRY=${CARRY:-datapack}
BUDGET=${BUDGET:-8m}
OUT=${OUT:-/tmp/gpu_out}
SET=${SET:-/tmp/gpu_set}
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
[ -f "$CARRY/lpips-alex.pth" ] && export VIDANIME_LPIPS_LIN="$CARRY/lpips-alex.pth"
mkdir -p "$OUT"
LOG="$OUT/run.log"
{
  echo "== $(date -u) $(nvidia-smi -L 2>/dev/null | head -1)"
  python -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  echo "== train-all (smoke pass, then budget $BUDGET)"
  python -m pipelines.cli train-all --config configs/train_all_gpu.yaml --budget "$BUDGET" --device cuda \
      --data "$CARRY/vidanime-data.pt" --out "$SET" --keep-going
  echo "rc=$?"
  python - "$SET" <<'PY'
import json, sys
s = json.load(open(f"{sys.argv[1]}/train-all.json"))
for r in s.get("smoke", []) + s.get("stages", []):
    print(f"{r['name']:14s} {r['status']:8s} {r['seconds']:7.1f} s step {r['step']} img/s {r['img_per_s']} {r['error'][:200]}")
print("exported", s.get("exported"), "in", round(s.get("seconds", 0)), "s")
PY
  tail -n 40 "$SET/train-all.log"
  echo "== translate model stages on the GPU (128-px set, 720p, one face)"
  python -m bench.bench_gpu --set "$SET" --data "$SET/data" --frames 128 --batch 16
  if [ -f vidanime/weights/styleanime-p2a.pt ]; then  # absent when the weights were moved out to fit the 64 MiB carry
    echo "== the same with the bundled 64-px set"
    python -m bench.bench_gpu --data "$SET/data" --frames 128 --batch 16
  fi
  echo "== $(date -u) done"
} > "$LOG" 2>&1
cp "$SET"/*.pt "$SET/registry.json" "$OUT/" 2>/dev/null
ls -la "$OUT"
tail -n 60 "$LOG"
