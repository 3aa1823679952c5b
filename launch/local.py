"""Runs one vae_jax command as several JAX processes on this machine (multi-host, locally).

  python launch/local.py --num_processes=2 -- \\
      python -m vae_jax.main --config=configs/mnist_realnvp.py --workdir=runs/x

Each process gets VAE_JAX_COORDINATOR_ADDRESS (127.0.0.1 and a free port), VAE_JAX_NUM_PROCESSES
and VAE_JAX_PROCESS_ID, which vae_jax.parallel.initialize hands to jax.distributed.initialize; on
CPU they exchange gradients through gloo. --devices_per_process gives each CPU process that many
host devices. Output lines are prefixed with the process id. If one process fails, the others are
stopped and the launcher exits with its status. This is how the tests check that a 2-process run
matches a 1-process one; on a real cluster use launch/slurm.sbatch or launch/tpu_pod.sh.
"""
import argparse
import os
import socket
import subprocess
import sys
import threading
import time


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def process_environment(process_id: int, num_processes: int, port: int,
                        devices_per_process: int = 0, base=None) -> dict:
  env = dict(os.environ if base is None else base,
             VAE_JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
             VAE_JAX_NUM_PROCESSES=str(num_processes), VAE_JAX_PROCESS_ID=str(process_id))
  if devices_per_process:
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    env["XLA_FLAGS"] = " ".join(
        flags + [f"--xla_force_host_platform_device_count={devices_per_process}"])
  return env


def _relay(process_id: int, stream, lock) -> None:
  for line in stream:
    with lock:
      sys.stdout.write(f"[{process_id}] {line}")
      sys.stdout.flush()


def run(command, num_processes: int, devices_per_process: int = 0) -> int:
  """Runs `command` (a list) as `num_processes` processes; returns the first non-zero status."""
  port, lock = free_port(), threading.Lock()
  processes, relays = [], []
  for i in range(num_processes):
    process = subprocess.Popen(
        command, env=process_environment(i, num_processes, port, devices_per_process),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    relay = threading.Thread(target=_relay, args=(i, process.stdout, lock), daemon=True)
    relay.start()
    processes.append(process)
    relays.append(relay)
  status = 0
  while None in [p.poll() for p in processes]:  # poll every process, every time
    failed = [p.returncode for p in processes if p.returncode not in (None, 0)]
    if failed:  # the survivors would wait for the failed process at the next collective
      status = failed[0]
      for p in processes:
        if p.poll() is None:
          p.terminate()
    time.sleep(0.2)
  for relay in relays:
    relay.join()
  return status or next((p.returncode for p in processes if p.returncode), 0)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--num_processes", type=int, default=2)
  parser.add_argument("--devices_per_process", type=int, default=0,
                      help="CPU host devices per process (0: JAX's default, one).")
  parser.add_argument("command", nargs=argparse.REMAINDER,
                      help="the command to run, after --")
  args = parser.parse_args(argv)
  command = args.command[1:] if args.command[:1] == ["--"] else args.command
  if not command:
    parser.error("give the command to run after --, e.g. -- python -m vae_jax.main ...")
  return run(command, args.num_processes, args.devices_per_process)


if __name__ == "__main__":
  sys.exit(main())
