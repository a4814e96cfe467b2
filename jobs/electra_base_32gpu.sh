#!/usr/bin/env bash
# ELECTRA-base (generator + discriminator, replaced-token detection), on 32 GPUs.
# Supervised by hvd-job through jobs/launch.sh (detached, restarted, resumed). Run from the repository root:
#     bash jobs/electra_base_32gpu.sh          (NP=... HOSTFILE=... RUNS_DIR=... to change them)
export NAME=${NAME:-electra_base} NP=${NP:-32} FLAGFILE=${FLAGFILE:-jobs/electra_base.cfg}
exec bash "$(dirname "$0")/launch.sh"
