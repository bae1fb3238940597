#!/usr/bin/env bash
# One `device run` call for a session that is lent a GPU (see README, "The whole set in one command"):
#   smoke pass + the budgeted recipe ($CONFIG, default configs/train_all_gpu64.yaml: the bundled 64-px architecture,
#   whose exports fit 16 MiB), then the GPU benchmarks (float32 + fine-tune it/s, float16), logged to $OUT/run.log.  $OUT gets
#   at most 8 files: the exported *.pt (6), run.log, and provenance.tar.gz (registry.json, train-all.json/.log, each
#   stage's config.yaml + metrics.jsonl and last sample grid).  The set is copied to $OUT as soon as train-all ends,
#   before the benchmarks, and train-all runs under `timeout $GUARD` so a stage that overruns cannot eat the call.
# Needs, in the carried folder $CARRY (default datapack/, listed in .git/info/exclude): vidanime-data.pt from
# `python -m pipelines.pack_data` and lpips-alex.pth (the lpips wheel's weights/v0.1/alex.pth) unless lpips is installed.
# The tree + carry must fit 64 MiB: the pack is 49.6 MiB, so move vidanime/weights/*.pt (33 MB) out of the tree for
# the call (and back after).  Usage there:  BUDGET=6m bash bench/gpu_session.sh   (PYTHONPATH=. is set here)
# To continue the bundled model instead (README, "The first GPU loan"): CONFIG=configs/train_all_gpu_refresh.yaml
# CARRY=datapack64 (a pack made with --anime-size 64, 27 MiB), with only ifnet-demo, parser-portrait-danet and
# upscaler-anime moved out of vidanime/weights/.
set -u
CARRY=${CARRY:-datapack}
CONFIG=${CONFIG:-configs/train_all_gpu64.yaml}
BUDGET=${BUDGET:-6m}
GUARD=${GUARD:-480}
OUT=${OUT:-/tmp/gpu_out}
SET=${SET:-/tmp/gpu_set}
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
[ -f "$CARRY/lpips-alex.pth" ] && export VIDANIME_LPIPS_LIN="$CARRY/lpips-alex.pth"
mkdir -p "$OUT"
LOG="$OUT/run.log"
{
  echo "== $(date -u) $(nvidia-smi -L 2>/dev/null | head -1)"
  python -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  echo "== train-all $CONFIG (smoke pass, then budget $BUDGET; guard ${GUARD} s)"
  timeout -s INT "$GUARD" python -m pipelines.cli train-all --config "$CONFIG" --budget "$BUDGET" --device cuda \
      --data "$CARRY/vidanime-data.pt" --out "$SET" --keep-going
  echo "rc=$?"
  python - "$SET" <<'PY'
import json, sys
s = json.load(open(f"{sys.argv[1]}/train-all.json"))
for r in s.get("smoke", []) + s.get("stages", []):
    print(f"{r['name']:18s} {r['status']:8s} {r['seconds']:7.1f} s step {r['step']} img/s {r['img_per_s']} {r['error'][:300]}")
print("exported", s.get("exported"), "in", round(s.get("seconds", 0)), "s")
PY
  tail -n 60 "$SET/train-all.log"
  ls -la "$SET"
} > "$LOG" 2>&1
cp "$SET"/*.pt "$OUT/" 2>/dev/null  # the exports only: FaceBanks and checkpoints stay under runs/
( cd "$SET" && tar czf "$OUT/provenance.tar.gz" registry.json train-all.json train-all.log runs/outputs.json \
    $(find runs -maxdepth 2 \( -name config.yaml -o -name 'metrics*.jsonl' -o -name done.json \) 2>/dev/null) \
    $(for d in runs/*/samples; do ls -t "$d"/*.png 2>/dev/null | head -1; done) ) >> "$LOG" 2>&1
{
  echo "== translate model stages on the GPU ($SET, 720p, one face), float32 then float16"
  timeout 120 python -m bench.bench_gpu --set "$SET" --data "$SET/data" --frames 128 --batch 16 --finetune 200
  timeout 90 python -m bench.bench_gpu --set "$SET" --data "$SET/data" --frames 128 --batch 16 --half
  echo "== the parser trainers' batch stream by worker processes (CPU side; train.loader_workers)"
  [ -d "$SET/data/faces" ] && timeout 60 python -m bench.bench_parser_data --data "$SET/data/faces" --workers 0,4,8
  echo "== $(date -u) done"
} >> "$LOG" 2>&1
ls -la "$OUT"
tail -n 80 "$LOG"
