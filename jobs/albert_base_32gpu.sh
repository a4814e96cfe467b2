#!/usr/bin/env bash
# ALBERT-base (shared layers, factorized embeddings, SOP), on 32 GPUs.
# Supervised by hvd-job through jobs/launch.sh (detached, restarted, resumed). Run from the repository root:
#     bash jobs/albert_base_32gpu.sh          (NP=... HOSTFILE=... RUNS_DIR=... to change them)
export NAME=${NAME:-albert_base} NP=${NP:-32} FLAGFILE=${FLAGFILE:-jobs/albert_base.cfg}
exec bash "$(dirname "$0")/launch.sh"
