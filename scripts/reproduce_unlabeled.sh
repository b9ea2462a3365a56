#!/usr/bin/env bash
# Issue 33's tables of RESULTS.md (distillation with an unlabeled pool labeled by a weak
# model), 10 paired seeds each, one thread per process: the models, then every table in one
# run each (a table's rows compare only within it). Many hours on 2 CPU cores; a model or
# table already written is skipped. Usage:
#   bash scripts/reproduce_unlabeled.sh [RUNS_DIR]
runs=${1:-runs}
source "$(dirname "$0")/common.sh"
pool=--config=configs/mnist1d_unlabeled.yaml
digits=--config=configs/digits_unlabeled.yaml
kd_point=(loss.family=composite loss.base=kd distill.mix=0.9 distill.temperature=4.0)

model() {  # out, args...: a model trained on the labeled part, once
  local out=$1; shift
  [ -f "$runs/$out/model.pt" ] || $l2t train-model "out=$runs/$out" threads=1 "$@"
}
compare() {  # out, args...: 10 paired seeds, once
  local out=$1; shift
  [ -f "$runs/$out/results.json" ] || $l2t compare seeds=10 workers=2 threads=1 "out=$runs/$out" "$@"
}

# MNIST-1D, 1,000 labels: the model on the labeled part, and on labeled + trusted
model unlabeled/model "$pool" student=cnn1d steps=3000
model unlabeled/model_trusted "$pool" student=cnn1d steps=3000 with_val=true
m1000="distill.model=$runs/unlabeled/model/model.pt"
compare unlabeled/baselines "$pool" "$m1000" \
  methods=ce,kd,labeled_only,labeled_only_trainval,confident,self_train,l2rw,mwnet,oracle_drop,oracle_labels
compare unlabeled/baselines_trusted_model "$pool" "distill.model=$runs/unlabeled/model_trusted/model.pt" \
  methods=ce,kd,labeled_only_trainval,confident,l2rw,oracle_drop,oracle_labels
compare unlabeled/online "$pool" "$m1000" "${kd_point[@]}" methods=kd,base,l2rw_base,mwnet_base,meta_base,l2rw
compare unlabeled/aum "$pool" "$m1000" "${kd_point[@]}" \
  methods=kd,kd_tuned,slam,base,meta_trust,meta_trust_aum,aum_drop,oracle_drop
compare unlabeled/knn "$pool" "$m1000" "${kd_point[@]}" methods=kd,aum_drop,aum_knn_drop,oracle_drop
compare unlabeled/correct "$pool" "$m1000" "${kd_point[@]}" \
  methods=kd,kd_tuned,slam,aum_drop,aum_knn_drop,meta_trust,meta_correct,oracle_drop
compare unlabeled/oracle_tuned "$pool" "$m1000" "${kd_point[@]}" \
  methods=kd_tuned,aum_knn_drop,oracle_drop_kd_tuned
compare unlabeled/importance "$pool" "$m1000" "${kd_point[@]}" \
  methods=kd,kd_tuned,slam,aum_drop,importance_kd,oracle_drop
compare unlabeled/kd_trainval "$pool" "$m1000" "${kd_point[@]}" methods=kd,kd_trainval,labeled_only_trainval

# MNIST-1D, 2,000 labels
model unlabeled2000/model "$pool" labeled=2000 student=cnn1d steps=3000
compare unlabeled2000/oracle_tuned "$pool" labeled=2000 "distill.model=$runs/unlabeled2000/model/model.pt" \
  "${kd_point[@]}" methods=kd_tuned,aum_drop,aum_knn_drop,meta_trust_aum,oracle_drop_kd,oracle_drop_kd_tuned
compare unlabeled2000/importance "$pool" labeled=2000 "distill.model=$runs/unlabeled2000/model/model.pt" \
  "${kd_point[@]}" methods=kd_tuned,slam,aum_drop,importance_kd,oracle_drop

# digits, LeNet -> MLP, 300 labels
model digits_unlabeled/model "$digits" student=lenet steps=3000
compare digits_unlabeled/rows_kd "$digits" "distill.model=$runs/digits_unlabeled/model/model.pt" \
  loss.family=composite loss.base=kd distill.mix=0.25 distill.temperature=1.0 \
  methods=ce,kd,kd_tuned,slam,confident,self_train,labeled_only,base,meta_trust,meta_trust_aum,aum_drop,aum_knn_drop,meta_correct,oracle_drop
compare digits_unlabeled/importance "$digits" "distill.model=$runs/digits_unlabeled/model/model.pt" \
  loss.family=composite loss.base=kd distill.mix=0.25 distill.temperature=1.0 \
  methods=kd,kd_tuned,slam,aum_drop,importance_kd,oracle_drop

# the meta-trained control teachers from KD's point (greedy, tbptt) and from the base point
# chosen on validation (PES): each episode judged against the untrained teacher
teacher=("$pool" "$m1000" "loss.ranges=log_scale=0.5,ce=0.5,kd=0.5,reweight=2" teacher.agent=control
  teacher.observe=state select_students=10 threads=1)
[ -f "$runs/unlabeled/greedy/summary.json" ] || $l2t train-teacher "${teacher[@]}" "${kd_point[@]}" \
  estimator.kind=greedy estimator.population=8 estimator.vmap=true "out=$runs/unlabeled/greedy"
[ -f "$runs/unlabeled/tbptt/summary.json" ] || $l2t train-teacher "${teacher[@]}" "${kd_point[@]}" \
  estimator.kind=tbptt estimator.population=4 estimator.horizon=10 "out=$runs/unlabeled/tbptt"
[ -f "$runs/unlabeled/pes/summary.json" ] || $l2t train-teacher "${teacher[@]}" loss.family=composite \
  loss.base=auto teacher.lr=0.01 estimator.kind=pes estimator.population=32 estimator.vmap=true \
  estimator.horizon=10 estimator.sigma=0.05 "out=$runs/unlabeled/pes"
$python scripts/teacher_controls.py "$runs/unlabeled/greedy"
