#!/usr/bin/env bash
# ALBERT-base (shared layers, factorized embeddings, SOP), on 32 GPUs.
# Supervised by hvd-job: detached from this terminal, restarted with backoff after a crash or a hang,
# resumed from the latest checkpoint. Copy this file, edit the variables, run it from the repository root:
#     bash jobs/albert_base_32gpu.sh
# then:  hvd-job status albert_base   |   hvd-job logs albert_base -f   |   hvd-job stop albert_base
set -euo pipefail

NAME=${NAME:-albert_base}
NP=${NP:-32}                                     # total GPUs = ranks
HOSTFILE=${HOSTFILE:-jobs/hostfile}              # "node01 slots=8" per line; see jobs/hostfile.example
FLAGFILE=${FLAGFILE:-jobs/albert_base.cfg}
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
