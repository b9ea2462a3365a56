#!/usr/bin/env bash
# Every number in RESULTS.md: teachers trained, then compared over 5 seeds with the same
# data, initializations, batches and budget. ~40 min on 2 CPU cores. Usage:
#   bash scripts/reproduce_results.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-runs/results}
l2t=${L2T:-l2t}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # small students: one thread per run is fastest
mkdir -p "$runs"

train() {  # name, args...: train a teacher, resuming a cut-off run, skipping a finished one
  local name=$1; shift
  if [ -f "$runs/$name/summary.json" ]; then return; fi
  local resume=false
  if [ -f "$runs/$name/checkpoint.pt" ]; then resume=true; fi
  $l2t train-teacher "out=$runs/$name" "resume=$resume" "$@"
}

# 1. MNIST-1D / MLP (the default) and MNIST-1D / CNN, digits / LeNet
train mnist1d_mlp --config configs/mnist1d_mlp.yaml
train mnist1d_cnn1d --config configs/mnist1d_cnn1d.yaml
train digits_lenet --config configs/digits_lenet.yaml
methods=ce,ce_trainval,label_smoothing,focal,base_dln,teacher_online,teacher_learning,teacher_schedule
for name in mnist1d_mlp mnist1d_cnn1d digits_lenet; do
  $l2t compare "teacher=$runs/$name" seeds=5 "methods=$methods" "out=$runs/$name/compare"
done

# 2. Transfer: the MLP teacher applied to the CNN student, and to another dataset
$l2t compare "teacher=$runs/mnist1d_mlp" seeds=5 student=cnn1d \
  methods=ce,base_dln,teacher_online,teacher_schedule "out=$runs/transfer_mlp_to_cnn1d"
$l2t compare "teacher=$runs/mnist1d_mlp" seeds=5 dataset=digits student=lenet val_size=400 \
  val_batch=0 steps=1500 optim.lr=0.05 methods=ce,base_dln,teacher_online,teacher_schedule \
  "out=$runs/transfer_mnist1d_to_digits"
