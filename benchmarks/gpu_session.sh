#!/bin/bash
# One GPU session for issue 3, run once on a lent H100/H200 (the `device` tool), in the repo root.
#   1. which engine (per-task loop or vmap) is faster for the Omniglot MAML meta-step on CUDA;
#   2. `metalearn train omniglot-5w1s` on CUDA with that engine for TRAIN_MIN minutes, then
#      `metalearn evaluate` on the 600 test episodes: steps/s, so the time of the paper's 60,000 steps;
#   3. benchmarks/maml_peers.py on CUDA against higher, learn2learn and TorchOpt.
# Optional inputs carried beside the tree in .gpu/ (git-ignored): whl/ (peer wheels), src/
# (learn2learn's source tree: only its MAML module is imported), data/omniglot/*.zip, cache/.
# Every part has its own time limit, and what it prints goes to $OUT/*.log.
set -u
OUT=${OUT:-/tmp/gpu_session}; mkdir -p "$OUT"
TRAIN_MIN=${TRAIN_MIN:-3}
DEV=${DEV:-cuda}            # DEV=cpu BENCH_STEPS=1 TRAIN_MIN=0.2: a dry run of this script without a GPU
BENCH_STEPS=${BENCH_STEPS:-30}
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
PY=python3
if [ -d .gpu/whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src:$PWD/.gpu/src${PYTHONPATH:+:$PYTHONPATH}
[ -d .gpu/cache ] && export METALEARN_CACHE_DIR=$PWD/.gpu/cache
DATA=${DATA:-$PWD/.gpu/data}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/env.log"
$PY -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())" | tee -a "$OUT/env.log"

echo "== 1. engine probe"
best=loop; best_rate=0
for engine in loop vmap; do
  line=$(timeout 120 $PY benchmarks/maml_peers.py --worker metalearn-$engine --device $DEV --setting 5w1s \
         --order second --steps $BENCH_STEPS --warmup 5 | tail -n 1)
  echo "$engine: $line" | tee -a "$OUT/probe.log"
  rate=$(echo "$line" | $PY -c "import json,sys; print(json.loads(sys.stdin.read()).get('tasks_s', 0))" 2>/dev/null || echo 0)
  if $PY -c "import sys; sys.exit(0 if float('$rate') > float('$best_rate') else 1)"; then best=$engine; best_rate=$rate; fi
done
echo "training engine: $best" | tee -a "$OUT/probe.log"

echo "== 2. train omniglot-5w1s on CUDA for $TRAIN_MIN min"
RUN=/tmp/omni-gpu
timeout $(( ${TRAIN_MIN%.*} * 60 + 150 )) $PY -m metalearn train omniglot-5w1s --out $RUN --quiet --data-dir "$DATA" \
  --set train.device=$DEV --set algo.engine=$best --set train.time_limit=$TRAIN_MIN 2>&1 | tee "$OUT/train.log"
cp $RUN/metrics.jsonl "$OUT/train_metrics.jsonl" 2>/dev/null
timeout 120 $PY -m metalearn evaluate $RUN --device $DEV --quiet 2>&1 | tee "$OUT/evaluate.log"

echo "== 3. peers on CUDA"
for spec in "5w1s second" "5w1s-q15 second" "5w1s-q15 first"; do
  set -- $spec
  timeout 150 $PY benchmarks/maml_peers.py --device $DEV --setting $1 --order $2 --repeats 1 --steps $BENCH_STEPS 2>&1 | tee -a "$OUT/peers.log"
done
echo "== done"
