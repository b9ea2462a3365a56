#!/usr/bin/env bash
# The noisy-label and distillation tables of RESULTS.md (MNIST-1D, MLP student, 10 paired
# seeds): the fixed and robust baselines per noise setting, greedy and PES teachers at 40%
# symmetric noise, and distillation from a CNN. About two hours on 2 CPU cores. Usage:
#   bash scripts/reproduce_noise.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-runs/noise}
l2t=${L2T:-l2t}
python=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # small students: one thread per run is fastest
mkdir -p "$runs"
baselines=methods=ce,ce_early_stop,gce,sce,bootstrap,base_dln,ce_tuned,ce_cosine
teachers=methods=ce,base_dln,teacher_online,teacher_schedule

compare() {  # name, args...: 10 paired seeds, once
  local name=$1; shift
  [ -f "$runs/$name/results.json" ] || $l2t compare seeds=10 "out=$runs/$name" "$@"
}
teacher() {  # name, args...: train (once), then compare its students with CE and base loss
  local name=$1; shift
  [ -f "$runs/$name/summary.json" ] || $l2t train-teacher "out=$runs/$name" "$@"
  compare "$name/compare" "teacher=$runs/$name" "$teachers"
}

compare mlp20_baselines label_noise=0.2 "$baselines"
compare mlp40_baselines label_noise=0.4 "$baselines"
compare mlp60_baselines label_noise=0.6 "$baselines"
compare mlp30pf_baselines label_noise=0.3 label_noise_kind=pairflip "$baselines"
teacher mlp40_greedy label_noise=0.4 teacher.estimator=greedy
teacher mlp40_greedy10 label_noise=0.4 teacher.estimator=greedy episodes=10
teacher mlp40_pes label_noise=0.4

$python scripts/estimator_table.py "baselines=$runs/mlp40_baselines/" \
  "greedy=$runs/mlp40_greedy/compare" "greedy, 10 episodes=$runs/mlp40_greedy10/compare" \
  "pes=$runs/mlp40_pes/compare"
