#!/bin/bash
# The README's algorithm-family comparison: every algorithm trained from its Omniglot preset for
# the same wall-clock budget on one CPU thread, then scored on the same test episodes.
#   bash benchmarks/compare_family.sh WAYS MINUTES EPISODES PARALLEL [DATA_DIR] [OUT]
#   bash benchmarks/compare_family.sh 5 3 300 1 ../shared/data      # 5-way 1-shot table
#   bash benchmarks/compare_family.sh 20 6 200 2 ../shared/data     # 20-way 1-shot table
# PARALLEL=2 runs two trainings at a time (one core each).
set -eu
WAYS=$1 B=$2 EPISODES=$3 PAR=$4 DATA=${5:-${METALEARN_DATA_DIR:-}} OUT=${6:-runs/compare-${1}w1s}
mkdir -p "$OUT"
train() {  # name preset
  rm -rf "$OUT/$1"
  metalearn train "$2" --out "$OUT/$1" --quiet ${DATA:+--data-dir "$DATA"} --set train.time_limit=$B \
    --set train.threads=1 --set train.val_every=100 --set train.val_tasks=100 > "$OUT/$1.log" 2>&1
  echo "$1: $(tail -n 1 "$OUT/$1.log")"
}
P=omniglot-${WAYS}w1s
i=0
for spec in "maml $P" "fomaml $P-fo" "anil $P-anil" "metasgd $P-metasgd" "mamlpp $P-mamlpp" \
            "reptile $P-reptile" "protonet $P-protonet" "transfer $P-transfer"; do
  train $spec &
  i=$((i + 1)); [ $((i % PAR)) -eq 0 ] && wait
done
wait
metalearn compare "$OUT"/{maml,fomaml,anil,metasgd,mamlpp,reptile,protonet,transfer} --episodes "$EPISODES" \
  --scratch --out "$OUT"
