#!/usr/bin/env bash
# BERT-base, phase 1 (sequence length 128), on 32 GPUs (4 nodes x 8).
# Supervised by hvd-job through jobs/launch.sh (detached, restarted, resumed). Run from the repository root:
#     bash jobs/bert_base_phase1_32gpu.sh          (NP=... HOSTFILE=... RUNS_DIR=... to change them)
export NAME=${NAME:-bert_base_phase1} NP=${NP:-32} FLAGFILE=${FLAGFILE:-jobs/bert_base_phase1.cfg}
exec bash "$(dirname "$0")/launch.sh"
