#!/usr/bin/env bash
# BERT-large, phase 1 (sequence length 128), on 64 GPUs (8 nodes x 8).
# Supervised by hvd-job through jobs/launch.sh (detached, restarted, resumed). Run from the repository root:
#     bash jobs/bert_large_64gpu.sh          (NP=... HOSTFILE=... RUNS_DIR=... to change them)
export NAME=${NAME:-bert_large_phase1} NP=${NP:-64} FLAGFILE=${FLAGFILE:-jobs/bert_large_phase1.cfg}
exec bash "$(dirname "$0")/launch.sh"
