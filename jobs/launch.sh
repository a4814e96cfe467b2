#!/usr/bin/env bash
# Start a supervised pre-training job: hvd-job detaches it from this terminal, restarts it with
# backoff after a crash or a hang, and the trainer resumes from its latest checkpoint.
# The per-recipe scripts (jobs/*_32gpu.sh, jobs/bert_large_64gpu.sh) set NAME, NP and FLAGFILE and
# call this; any variable below can also be set in the environment. Run from the repository root:
#     NAME=my_run NP=16 FLAGFILE=jobs/bert_base_phase1.cfg bash jobs/launch.sh
# then:  hvd-job status NAME   |   hvd-job logs NAME -f   |   hvd-job stop NAME
set -euo pipefail

: "${NAME:?set NAME (the job name)}"
: "${FLAGFILE:?set FLAGFILE (an hvd-pretrain flagfile, e.g. jobs/bert_base_phase1.cfg)}"
NP=${NP:-32}                                     # total GPUs = ranks
HOSTFILE=${HOSTFILE:-jobs/hostfile}              # "node01 slots=8" per line; see jobs/hostfile.example
RUNS_DIR=${RUNS_DIR:-runs}                       # shared by all nodes; not a Kerberos-only NFS home
RESTARTS=${RESTARTS:-10}
STALL_TIMEOUT=${STALL_TIMEOUT:-1800}             # s without a new step in metrics.jsonl = hang

for f in "$HOSTFILE" "$FLAGFILE"; do
  [[ -f $f ]] || { echo "error: $f not found (set HOSTFILE / FLAGFILE, or copy jobs/hostfile.example)" >&2; exit 2; }
done
# Stop here if logout, SSH, disk or limits would kill the run (the fix is printed for each problem).
[[ ${SKIP_DOCTOR:-0} == 1 ]] || hvd-job doctor --runs_dir "$RUNS_DIR" --hostfile "$HOSTFILE" --skip horovod

# ELASTIC=1: ranks may leave and join (MIN_NP..MAX_NP); jobs/discover_hosts.sh reads the hostfile and
# keeps the hosts that answer ssh. The data must already exist (--data_dir in the flagfile).
if [[ ${ELASTIC:-0} == 1 ]]; then
  LAUNCH=(horovodrun -np "$NP" --min-np "${MIN_NP:-$NP}" --max-np "${MAX_NP:-$NP}"
          --host-discovery-script "$(dirname "$0")/discover_hosts.sh")
  TRAINER_FLAGS=(--elastic)
else
  LAUNCH=(horovodrun -np "$NP" -hostfile "$HOSTFILE")
  TRAINER_FLAGS=()
fi

export HOSTFILE
exec hvd-job start "$NAME" --runs_dir "$RUNS_DIR" --restarts "$RESTARTS" --stall-timeout "$STALL_TIMEOUT" \
  --grace 300 -- \
  "${LAUNCH[@]}" \
  hvd-pretrain --flagfile="$FLAGFILE" --run_dir="$RUNS_DIR/$NAME" "${TRAINER_FLAGS[@]}"
