#!/usr/bin/env bash
# Issue 23's tables of RESULTS.md (the composite family: the teacher starts at the best fixed
# loss chosen on validation), 10 paired seeds each, one thread per process. About three
# hours on 2 CPU cores; a table already written is skipped. Usage:
#   bash scripts/reproduce_composite.sh [RUNS_DIR]
runs=${1:-runs/composite}
source "$(dirname "$0")/common.sh"
config=--config=configs/mnist1d_mlp_composite.yaml
digits=(dataset=digits student=lenet steps=1500 val_size=400 val_batch=0)
noise_rows=ce,ce_trainval,ce_val,sce,sce_trainval,base,base_trainval,teacher_untrained
noise_rows+=,teacher_online,teacher_schedule,teacher_schedule_trainval

train() {  # name, args...: a control teacher, once
  local name=$1; shift
  [ -f "$runs/$name/summary.json" ] || $l2t train-teacher "$config" "out=$runs/$name" threads=1 "$@"
}
compare() {  # out, args...: 10 paired seeds, once
  local out=$1; shift
  [ -f "$runs/$out/results.json" ] || $l2t compare seeds=10 workers=2 threads=1 "out=$runs/$out" "$@"
}

# clean: MNIST-1D MLP and CNN, digits LeNet
clean_rows=methods=ce,sce,ce_cosine,label_smoothing,base,teacher_untrained,teacher_online,teacher_schedule
train mlp && compare mlp/compare "teacher=$runs/mlp" "$clean_rows"
compare mlp/compare_cosine "teacher=$runs/mlp" \
  methods=ce_cosine,label_smoothing,base,teacher_online,teacher_schedule
train cnn student=cnn1d && compare cnn/compare "teacher=$runs/cnn" "$clean_rows"
train lenet "${digits[@]}" && compare lenet/compare "teacher=$runs/lenet" "$clean_rows"

# transfer without tuning: the MLP's teacher (and its base point) on the CNN and on digits
transfer_rows=methods=ce,ce_cosine,label_smoothing,sce,teacher_untrained,teacher_schedule,teacher_online
compare transfer_cnn "teacher=$runs/mlp" student=cnn1d "$transfer_rows"
compare transfer_lenet "teacher=$runs/mlp" "${digits[@]}" "$transfer_rows"

# label noise: 40% symmetric (trusted sets of 1,000 and 200), 30% pair flip
train noise40 label_noise=0.4 && compare noise40/compare "teacher=$runs/noise40" "methods=$noise_rows,gce,ce_early_stop"
compare noise40_meta "$config" label_noise=0.4 \
  methods=ce,sce,sce_trainval,base,l2rw,l2rw_trainval,l2rw_base,meta_base,meta_base_trainval
compare noise40_v200_meta "$config" label_noise=0.4 val_size=200 \
  methods=ce,sce,sce_trainval,base,l2rw,l2rw_trainval,meta_base,meta_base_trainval
train noise40_v200 label_noise=0.4 val_size=200
compare noise40_v200/compare "teacher=$runs/noise40_v200" "methods=$noise_rows,l2rw"
pairflip=(label_noise=0.3 label_noise_kind=pairflip)
compare pf30_meta "$config" "${pairflip[@]}" methods=sce,sce_trainval,base,l2rw,meta_base,meta_base_trainval
compare pf30_meta_more "$config" "${pairflip[@]}" \
  methods=sce_trainval,ce_trainval,gce_trainval,label_smoothing_trainval,l2rw_trainval
compare pf30_meta_seed1 "$config" "${pairflip[@]}" seed=1 \
  methods=ce_trainval,gce_trainval,label_smoothing_trainval,sce_trainval,base_trainval,l2rw_trainval,meta_base_trainval
compare pf30_v200_meta "$config" "${pairflip[@]}" val_size=200 \
  methods=ce_trainval,label_smoothing_trainval,sce_trainval,base_trainval,l2rw_trainval,meta_base_trainval
compare mlp/compare_meta "teacher=$runs/mlp" methods=label_smoothing,base,meta_base
compare cnn/compare_meta "teacher=$runs/cnn" methods=label_smoothing,base,meta_base
train pf30 label_noise=0.3 label_noise_kind=pairflip
compare pf30/compare "teacher=$runs/pf30" "methods=${noise_rows/,ce_val/},gce"

# distillation: a CNN model taught with cross-entropy, the MLP students learn from it
[ -f "$runs/cnn_model/model.pt" ] || $l2t train-model student=cnn1d "out=$runs/cnn_model" threads=1
train distill "distill.model=$runs/cnn_model/model.pt" estimator.vmap=false  # soft labels: no vmap
compare distill/compare "teacher=$runs/distill" \
  methods=ce,kd,label_smoothing,base,teacher_untrained,teacher_online,teacher_schedule
