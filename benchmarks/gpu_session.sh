#!/bin/bash
# MAML on a GPU, in one script: run it in the repo root of a checkout on any machine with a CUDA GPU
# (the figures in docs/speed/maml-gpu.md come from one H200). It runs, within DEADLINE seconds:
#   1. the machine's description (GPU, driver, Python, torch) into $OUT/env.log;
#   2. `metalearn train omniglot-5w1s` on CUDA on the default engine for MAML_MIN minutes, then
#      `metalearn evaluate` on the 600 test episodes: steps/s, so the time of the paper's 60,000 steps;
#   3. benchmarks/maml_peers.py on CUDA against higher, learn2learn and TorchOpt: the benchmark's work
#      unit (15 queries per class) and the paper's setting (1 query), second order;
#   4. `metalearn train l2l-mnist` on CUDA for L2L_MIN minutes; its best checkpoint comes back
#      without the optimizee state in flight, to be evaluated on a CPU;
#   5. first order, while time is left.
# Optional inputs placed beside the tree in .gpu/ (git-ignored): whl/ (peer wheels), src/
# (learn2learn's source tree: only its MAML module is imported), data/{omniglot,mnist}, cache/.
# Each part has its own time limit and is skipped when it would not end before DEADLINE seconds;
# what it prints goes to $OUT/*.log.
set -u
OUT=${OUT:-/tmp/gpu_session}; mkdir -p "$OUT"
MAML_MIN=${MAML_MIN:-2}
L2L_MIN=${L2L_MIN:-2.5}
DEADLINE=${DEADLINE:-575}
DEV=${DEV:-cuda}            # DEV=cpu BENCH_STEPS=1 WARMUP=0 MAML_MIN=0.1 L2L_MIN=0.1: a dry run without a GPU
BENCH_STEPS=${BENCH_STEPS:-20}
WARMUP=${WARMUP:-5}
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
PY=python3
fits() { [ $(( SECONDS + $1 )) -le "$DEADLINE" ] || { echo "skipped (needs $1 s, $(( DEADLINE - SECONDS )) s left): $2"; false; }; }
if [ -d .gpu/whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src:$PWD/.gpu/src${PYTHONPATH:+:$PYTHONPATH}
[ -d .gpu/cache ] && export METALEARN_CACHE_DIR=$PWD/.gpu/cache
DATA=${DATA:-$PWD/.gpu/data}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/env.log"
$PY -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())" | tee -a "$OUT/env.log"

# (no engine probe: metalearn's vmap engine gets the double backward of batch-statistics BatchNorm
#  wrong, which the float64 check of maml_peers.py shows, so Conv4 trains on the default loop)
echo "== 2. train omniglot-5w1s on $DEV for $MAML_MIN min, then evaluate"
RUN=/tmp/omni-gpu
timeout $(( ${MAML_MIN%.*} * 60 + 120 )) $PY -m metalearn train omniglot-5w1s --out $RUN --quiet --data-dir "$DATA" \
  --set train.device=$DEV --set train.time_limit=$MAML_MIN 2>&1 | tee "$OUT/train.log"
cp $RUN/metrics.jsonl "$OUT/omni_metrics.jsonl" 2>/dev/null
timeout 90 $PY -m metalearn evaluate $RUN --device $DEV --quiet 2>&1 | tee "$OUT/evaluate.log"

peers() {  # setting order impls
  timeout 150 $PY benchmarks/maml_peers.py --device $DEV --setting $1 --order $2 --impls $3 --repeats 1 \
    --steps $BENCH_STEPS --warmup $WARMUP 2>&1 | tee -a "$OUT/peers.log"
}
ALL=metalearn,metalearn-graph,higher,learn2learn,torchopt
echo "== 3. peers, second order"
fits 80 "peers 5w1s-q15 second" && peers 5w1s-q15 second $ALL
fits 70 "peers 5w1s second" && peers 5w1s second $ALL

echo "== 4. train l2l-mnist on $DEV for $L2L_MIN min"
L2L=/tmp/l2l-gpu
if fits $(( ${L2L_MIN%.*} * 60 + 70 )) "l2l-mnist"; then
  timeout $(( ${L2L_MIN%.*} * 60 + 90 )) $PY -m metalearn train l2l-mnist --out $L2L --quiet --data-dir "$DATA" \
    --set train.device=$DEV --set train.time_limit=$L2L_MIN 2>&1 | tee "$OUT/l2l_train.log"
  cp $L2L/metrics.jsonl "$OUT/l2l_metrics.jsonl"; cp $L2L/config.yaml "$OUT/l2l_config.yaml"
  $PY - "$L2L/checkpoints/best.pt" "$OUT/l2l_best.pt" <<'EOF'
import sys, torch
state = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
state["model"] = {k: ({} if k.endswith("_extra_state") else v) for k, v in state["model"].items()}
torch.save(state, sys.argv[2])
print("saved", sys.argv[2], "step", state.get("step"))
EOF
fi

echo "== 5. first order"
fits 50 "peers 5w1s-q15 first" && peers 5w1s-q15 first metalearn,metalearn-graph,learn2learn
echo "== done in $SECONDS s"
