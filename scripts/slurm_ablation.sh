#!/usr/bin/env bash
# Reproduce a named ablation on a Slurm cluster: each run becomes one Slurm job
# (hydra-submitit-launcher, settings in conf/hydra/launcher/slurm.yaml), the verdict and
# report are computed here once every run has a record.
#
#   bash scripts/slurm_ablation.sh bn-vs-gn full gpu        # NAME PROFILE PARTITION [more overrides]
#
# Run it from a login node inside the repo, after `bash scripts/setup.sh`. It blocks until
# the jobs end (submitit waits for them); run it under tmux/screen or sbatch it itself.
# Interrupted? Run it again: runs with a record are skipped, the rest are resubmitted.
set -euo pipefail
name=${1:?usage: slurm_ablation.sh NAME PROFILE PARTITION [overrides...]}
profile=${2:-full}
partition=${3:?give the Slurm partition}
shift 3 || true
cd "$(dirname "$0")/.."
exec .venv/bin/labbench reproduce "$name" --profile "$profile" --launcher slurm \
  "hydra.launcher.partition=$partition" \
  "hydra.launcher.timeout_min=240" \
  "$@"
