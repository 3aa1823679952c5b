#!/bin/bash
# Runs one vae_jax command on every worker of a Cloud TPU VM pod slice (e.g. v4-32: 4 workers).
# Every worker runs the same program; VAE_JAX_DISTRIBUTED=1 makes vae_jax.parallel call
# jax.distributed.initialize(), which finds the coordinator and this worker's id from the TPU
# metadata itself. The workdir must be a directory every worker mounts (NFS/Filestore, or a GCS
# bucket through gcsfuse); orbax writes each worker's shards there.
#
#   launch/tpu_pod.sh my-tpu us-central2-b \
#       python -m vae_jax.main --config=configs/mnist_realnvp.py --workdir=/mnt/shared/runs/x
#
# Set up every worker once (same command on all of them):
#   gcloud compute tpus tpu-vm ssh my-tpu --zone=us-central2-b --worker=all --command="\
#       git clone <this repository> vae_jax && cd vae_jax && pip install -e . 'jax[tpu]'"
# A paper table: run its per-cell commands one after another (each uses the whole slice):
#   python launch/xu2020.py commands 2 --runs_dir=/mnt/shared/runs | while read -r cell; do
#     launch/tpu_pod.sh my-tpu us-central2-b $cell; done
set -euo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: launch/tpu_pod.sh <tpu-name> <zone> <command...>" >&2
  exit 2
fi
tpu="$1"; zone="$2"; shift 2
remote="cd ~/vae_jax && VAE_JAX_DISTRIBUTED=1 $(printf '%q ' "$@")"
exec gcloud compute tpus tpu-vm ssh "$tpu" --zone="$zone" --worker=all --command="$remote"
