#!/usr/bin/env bash
# BERT-base, phase 2 (sequence length 512), on 32 GPUs, from phase 1's checkpoint (see the flagfile).
# Supervised by hvd-job through jobs/launch.sh (detached, restarted, resumed). Run from the repository root:
#     bash jobs/bert_base_phase2_32gpu.sh          (NP=... HOSTFILE=... RUNS_DIR=... to change them)
export NAME=${NAME:-bert_base_phase2} NP=${NP:-32} FLAGFILE=${FLAGFILE:-jobs/bert_base_phase2.cfg}
exec bash "$(dirname "$0")/launch.sh"
