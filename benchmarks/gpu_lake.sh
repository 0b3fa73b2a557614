#!/bin/bash
# Within-alphabet one-shot on a GPU: what image size, width and augmentation buy on Lake's within-alphabet 20-way 1-shot proxy when compute is not the limit.
# ProtoNets (omniglot-20w1s-protonet: 60-way training episodes) on the Lake protocol, trained on
# within-alphabet episodes, RUNS configurations side by side on one GPU for TRAIN_MIN minutes each,
# then each best checkpoint scored on the same 600 within-alphabet 20-way 1-shot test episodes
# (`metalearn compare`, paired against the first configuration) and on 600 random 20-way episodes.
# Run in the repo root on any machine with a CUDA GPU; Omniglot's zips in $DATA/omniglot (default
# .gpu/data, git-ignored). Everything it keeps is packed into one file, $OUT/lake.tar.gz (runs' metrics, configs, logs and best checkpoints).
# Dry run without a GPU: DEV=cpu TRAIN_MIN=0.2 EPISODES=20 bash benchmarks/gpu_lake.sh
set -u
OUT=${OUT:-/tmp/gpu_lake}; mkdir -p "$OUT"
DEV=${DEV:-cuda}
TRAIN_MIN=${TRAIN_MIN:-5.5}
EPISODES=${EPISODES:-600}
DATA=${DATA:-$PWD/.gpu/data}
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
PY=python3
W=/tmp/lake; rm -rf $W; mkdir -p $W
LOG=$W/session.log
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  $PY -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
  nproc; } | tee $LOG

# name: --set overrides on top of the shared ones
declare -A RUNS=(
  [px28-w64]="task.image_size=28 model.width=64 task.augment=1.0"
  [px56-w64]="task.image_size=56 model.width=64 task.augment=1.0"
  [px105-w64]="task.image_size=105 model.width=64 task.augment=1.0"
  [px105-w128]="task.image_size=105 model.width=128 task.augment=1.0"
  [px28-w64-plain]="task.image_size=28 model.width=64 task.augment=0.0"
)
ORDER="px28-w64 px56-w64 px105-w64 px105-w128 px28-w64-plain"
echo "== train ${TRAIN_MIN} min each, side by side on $DEV" | tee -a $LOG
for name in $ORDER; do
  sets=(); for kv in ${RUNS[$name]}; do sets+=(--set "$kv"); done
  # 3 CPU threads each: episodes (sampling, affine augmentation) are built on the CPU
  timeout $(( ${TRAIN_MIN%.*} * 60 + 150 )) $PY -m metalearn train omniglot-20w1s-protonet --out $W/$name \
    --quiet --data-dir "$DATA" --set task.protocol=lake --set task.episodes=within_alphabet \
    --set train.device=$DEV --set train.threads=3 --set train.time_limit=$TRAIN_MIN \
    --set train.val_every=500 --set train.val_tasks=100 --set train.ckpt_every=1000 "${sets[@]}" \
    > $W/$name.train.log 2>&1 &
done
wait
for name in $ORDER; do
  echo "-- $name: $(tail -n 2 $W/$name.train.log | tr '\n' ' ')" | tee -a $LOG
done

echo "== within-alphabet 20-way 1-shot, $EPISODES episodes, paired against px28-w64" | tee -a $LOG
runs=(); for name in $ORDER; do [ -f $W/$name/checkpoints/best.pt ] && runs+=($W/$name); done
timeout 240 $PY -m metalearn compare "${runs[@]}" --episodes $EPISODES --device $DEV --out $W/compare 2>&1 \
  | tee -a $LOG
echo "== random 20-way 1-shot episodes (Lake's evaluation alphabets), $EPISODES episodes" | tee -a $LOG
for r in "${runs[@]}"; do
  echo "-- $(basename $r)" | tee -a $LOG
  timeout 90 $PY -m metalearn evaluate $r --episode-kind random --episodes $EPISODES --device $DEV \
    --no-baseline --quiet 2>&1 | tee -a $LOG
done
find $W -name 'last.pt' -delete
find $W -name 'step-*.pt' -delete
tar -czf "$OUT/lake.tar.gz" -C /tmp lake
cp $LOG "$OUT/session.log"
ls -la "$OUT"
