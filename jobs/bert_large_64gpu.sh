#!/usr/bin/env bash
# BERT-large, phase 1, on 64 GPUs (8 nodes x 8).
# Supervised by hvd-job: detached from this terminal, restarted with backoff after a crash or a hang,
# resumed from the latest checkpoint. Copy this file, edit the variables, run it from the repository root:
#     bash jobs/bert_large_64gpu.sh
# then:  hvd-job status bert_large_phase1   |   hvd-job logs bert_large_phase1 -f   |   hvd-job stop bert_large_phase1
set -euo pipefail

NAME=${NAME:-bert_large_phase1}
NP=${NP:-64}                                     # total GPUs = ranks
HOSTFILE=${HOSTFILE:-jobs/hostfile}              # "node01 slots=8" per line; see jobs/hostfile.example
FLAGFILE=${FLAGFILE:-jobs/bert_large_phase1.cfg}
RUNS_DIR=${RUNS_DIR:-runs}                       # shared by all nodes; not a Kerberos-only NFS home
RESTARTS=${RESTARTS:-10}
STALL_TIMEOUT=${STALL_TIMEOUT:-1800}             # s without a new step in metrics.jsonl = hang

for f in "$HOSTFILE" "$FLAGFILE"; do
  [[ -f $f ]] || { echo "error: $f not found (set HOSTFILE / FLAGFILE, or copy jobs/hostfile.example)" >&2; exit 2; }
done
# Stop here if logout, SSH, disk or limits would kill the run (the fix is printed for each problem).
[[ ${SKIP_DOCTOR:-0} == 1 ]] || hvd-job doctor --runs_dir "$RUNS_DIR" --hostfile "$HOSTFILE" --skip horovod

exec hvd-job start "$NAME" --runs_dir "$RUNS_DIR" --restarts "$RESTARTS" --stall-timeout "$STALL_TIMEOUT" \
  --grace 300 -- \
  horovodrun -np "$NP" -hostfile "$HOSTFILE" \
  hvd-pretrain --flagfile="$FLAGFILE" --run_dir="$RUNS_DIR/$NAME"
