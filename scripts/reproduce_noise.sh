#!/usr/bin/env bash
# The noisy-label and distillation tables of RESULTS.md (MNIST-1D, 10 paired seeds): fixed
# and robust baselines per noise setting, greedy and PES teachers, distillation from a CNN.
# About three hours on 2 CPU cores. Usage:
#   bash scripts/reproduce_noise.sh [RUNS_DIR]
runs=${1:-runs/noise}
source "$(dirname "$0")/common.sh"
baselines=methods=ce,ce_early_stop,gce,sce,bootstrap,base_dln,ce_tuned,ce_cosine
teachers=methods=ce,base_dln,teacher_online,teacher_schedule
cnn=configs/mnist1d_cnn1d.yaml

compare() {  # name, args...: 10 paired seeds, once
  local name=$1; shift
  [ -f "$runs/$name/results.json" ] || $l2t compare seeds=10 "out=$runs/$name" "$@"
}
teacher() {  # name, args...: train (once), then its students against CE and its base loss
  local name=$1; shift
  [ -f "$runs/$name/summary.json" ] || $l2t train-teacher "out=$runs/$name" "$@"
  compare "$name/compare" "teacher=$runs/$name" "$teachers"
}

compare mlp20_baselines label_noise=0.2 "$baselines"
compare mlp40_baselines label_noise=0.4 "$baselines"
compare mlp60_baselines label_noise=0.6 "$baselines"
compare mlp30pf_baselines label_noise=0.3 label_noise_kind=pairflip "$baselines"
cnn_baselines=methods=ce,ce_early_stop,gce,sce,bootstrap,base_dln,ce_cosine
compare cnn40_baselines --config $cnn label_noise=0.4 "$cnn_baselines"
teacher mlp40_greedy label_noise=0.4 estimator.kind=greedy
teacher mlp40_greedy10 label_noise=0.4 estimator.kind=greedy episodes=10
teacher mlp40_pes label_noise=0.4
for s in 1 2; do  # teachers from other training seeds, applied to the same seed-0 students
  name=mlp40_greedy_seed$s
  [ -f "$runs/$name/summary.json" ] || \
    $l2t train-teacher "out=$runs/$name" label_noise=0.4 estimator.kind=greedy seed=$s
  compare "$name/compare" "teacher=$runs/$name" seed=0 "$teachers"
done
teacher mlp20_greedy label_noise=0.2 estimator.kind=greedy
teacher mlp60_greedy label_noise=0.6 estimator.kind=greedy
teacher mlp30pf_greedy label_noise=0.3 label_noise_kind=pairflip estimator.kind=greedy
teacher cnn40_greedy --config $cnn label_noise=0.4 episodes=3 estimator.kind=greedy
compare cnn20_baselines --config $cnn label_noise=0.2 "$cnn_baselines"
compare cnn60_baselines --config $cnn label_noise=0.6 "$cnn_baselines"
compare cnn30pf_baselines --config $cnn label_noise=0.3 label_noise_kind=pairflip "$cnn_baselines"
teacher cnn20_greedy --config $cnn label_noise=0.2 episodes=3 estimator.kind=greedy
teacher cnn60_greedy --config $cnn label_noise=0.6 episodes=3 estimator.kind=greedy
teacher cnn30pf_greedy --config $cnn label_noise=0.3 label_noise_kind=pairflip episodes=3 \
  estimator.kind=greedy
# the default teacher (PES) in every other noise setting
teacher mlp20_pes label_noise=0.2
teacher mlp60_pes label_noise=0.6
teacher mlp30pf_pes label_noise=0.3 label_noise_kind=pairflip
teacher cnn40_pes --config $cnn label_noise=0.4 episodes=3
teacher cnn20_pes --config $cnn label_noise=0.2 episodes=3
teacher cnn60_pes --config $cnn label_noise=0.6 episodes=3
teacher cnn30pf_pes --config $cnn label_noise=0.3 label_noise_kind=pairflip episodes=3
# the MLP and CNN-0.4 baselines above were measured with the former student seeds
# (RESULTS.md); the PES teachers' students are today's: CE, SCE and the base loss again
compare mlp20_newseeds label_noise=0.2 methods=ce,sce,base_dln
compare mlp40_newseeds label_noise=0.4 methods=ce,sce,base_dln
compare mlp60_newseeds label_noise=0.6 methods=ce,sce,base_dln
compare mlp30pf_newseeds label_noise=0.3 label_noise_kind=pairflip methods=ce,sce,base_dln
compare cnn40_newseeds --config $cnn label_noise=0.4 methods=ce,sce,base_dln

# distillation from a CNN into the MLP
[ -f "$runs/mnist1d_cnn/model.pt" ] || $l2t train-model student=cnn1d "out=$runs/mnist1d_cnn"
distill="distill.model=$runs/mnist1d_cnn/model.pt"
compare distill_baselines "$distill" methods=ce,kd,self_distill,random_teacher_kd,base_dln,ce_cosine
teacher distill_pes "$distill"
# the base DLN with its (mix, T) tuned like KD's; PES teachers from it, keeping the mix or setting it
compare distill_tuned "$distill" methods=ce,kd,base_dln,base_dln_kd
chosen() {  # the (mix, T) a compare chose for base_dln_kd, as config keys
  $python -c 'import json, sys
c = json.load(open(sys.argv[1]))["base_dln_kd"]["chosen"]
print("distill.mix=%s distill.temperature=%s" % (c["mix"], c["temperature"]))' "$1/results.json"
}
tuned=$(chosen "$runs/distill_tuned")
teacher distill_tuned_pes "$distill" $tuned
teacher distill_mix_pes "$distill" $tuned teacher.mix_range=3
teacher distill_mix_pes_lr01 "$distill" $tuned teacher.mix_range=3 teacher.lr=0.01
teacher distill_greedy "$distill" estimator.kind=greedy

table() { $python scripts/estimator_table.py "$@"; echo; }
table "baselines=$runs/mlp40_baselines" "greedy=$runs/mlp40_greedy/compare" \
  "greedy, 10 episodes=$runs/mlp40_greedy10/compare" "pes=$runs/mlp40_pes/compare"
for s in mlp20 mlp60 mlp30pf cnn40; do
  table "baselines=$runs/${s}_baselines" "greedy=$runs/${s}_greedy/compare"
  table "baselines=$runs/${s}_newseeds" "pes=$runs/${s}_pes/compare"
done
for s in cnn20 cnn60 cnn30pf; do
  table "baselines=$runs/${s}_baselines" "greedy=$runs/${s}_greedy/compare" "pes=$runs/${s}_pes/compare"
done
table "baselines=$runs/distill_baselines" "pes=$runs/distill_pes/compare"
table "baselines=$runs/distill_tuned" "pes from the tuned base=$runs/distill_tuned_pes/compare" \
  "pes setting the mix=$runs/distill_mix_pes/compare" \
  "pes setting the mix, lr 0.01=$runs/distill_mix_pes_lr01/compare" \
  "greedy=$runs/distill_greedy/compare"

# distillation from LeNet into an MLP on digits
[ -f "$runs/digits_lenet/model.pt" ] || \
  $l2t train-model --config configs/digits_lenet.yaml "out=$runs/digits_lenet"
digits="distill.model=$runs/digits_lenet/model.pt"
compare digits_baselines --config configs/digits_mlp.yaml "$digits" \
  methods=ce,kd,self_distill,random_teacher_kd,base_dln,ce_cosine
teacher digits_pes --config configs/digits_mlp.yaml "$digits" episodes=3
teacher digits_greedy --config configs/digits_mlp.yaml "$digits" episodes=3 estimator.kind=greedy
table "baselines=$runs/digits_baselines" "pes=$runs/digits_pes/compare"
cat "$runs/digits_greedy/compare/results.md"  # today's students: paired with its own CE and base
