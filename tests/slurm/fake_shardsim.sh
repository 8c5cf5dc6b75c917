#!/usr/bin/env bash
# Stands in for the shardsim binary in sbatch scripts, to test how they launch ranks without
# depending on what shardsim computes: prints its arguments, then becomes the MPI probe
# (SHARDSIM_SLURM_PROBE, arguments from FAKE_SHARDSIM_PROBE_ARGS) so that every rank reports its
# rank, local rank and GPUs.
echo "fake-shardsim argv: $*"
# shellcheck disable=SC2086
exec "${SHARDSIM_SLURM_PROBE:?SHARDSIM_SLURM_PROBE is not set}" ${FAKE_SHARDSIM_PROBE_ARGS:-}
