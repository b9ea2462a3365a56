#!/usr/bin/env bash
# Every number in RESULTS.md: a teacher per estimator, then 10 paired seeds of every
# baseline and teacher (same data, initializations, batches and budget). A few hours on 2
# CPU cores; runs two at a time if you start two copies on different settings. Usage:
#   bash scripts/reproduce_results.sh [RUNS_DIR]
runs=${1:-runs/exp}
source "$(dirname "$0")/common.sh"
methods=ce,base_dln,ce_tuned,base_dln_tuned,ce_cosine,base_dln_cosine,teacher_online,teacher_schedule

run() {  # name, config, args...: train (resuming a cut-off run), then compare over 10 seeds
  local name=$1 config=$2; shift 2
  if [ ! -f "$runs/$name/summary.json" ]; then
    local resume=false
    if [ -f "$runs/$name/checkpoint.pt" ]; then resume=true; fi
    $l2t train-teacher --config "$config" "out=$runs/$name" "resume=$resume" select_students=3 "$@"
  fi
  $l2t compare "teacher=$runs/$name" seeds=10 "methods=$methods" "out=$runs/$name/compare"
}

pes="estimator.kind=pes teacher.observe=state estimator.horizon=10"
mlp=configs/mnist1d_mlp.yaml cnn=configs/mnist1d_cnn1d.yaml digits=configs/digits_lenet.yaml
run greedy $mlp estimator.kind=greedy teacher.observe=grad
run tbptt $mlp estimator.kind=tbptt teacher.observe=grad estimator.horizon=10 episodes=3
run pes_state $mlp $pes estimator.population=8 estimator.objective_from=0.5 episodes=6
run pes_acc_end $mlp $pes estimator.population=8 estimator.objective=val_acc \
  estimator.objective_from=0.8 episodes=6
run pes_scale $mlp $pes teacher.scale=2.3 estimator.population=8 estimator.objective_from=0.5 episodes=6
run cnn_greedy $cnn estimator.kind=greedy teacher.observe=grad episodes=4
run cnn_pes_state $cnn $pes estimator.population=4 estimator.objective_from=0.5 episodes=4
run digits_greedy $digits estimator.kind=greedy teacher.observe=grad episodes=4
run digits_pes_state $digits $pes estimator.population=4 estimator.objective_from=0.5 episodes=4

table() { $python scripts/estimator_table.py "$@"; }
table "greedy=$runs/greedy/compare" "tbptt=$runs/tbptt/compare" \
  "pes=$runs/pes_state/compare" "pes, acc, last 20%=$runs/pes_acc_end/compare" \
  "pes + scale=$runs/pes_scale/compare"
table "greedy=$runs/cnn_greedy/compare" "pes=$runs/cnn_pes_state/compare"
table "greedy=$runs/digits_greedy/compare" "pes=$runs/digits_pes_state/compare"
