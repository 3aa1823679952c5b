"""vae_jax: VAEs with learned priors and flow posteriors in JAX/Flax."""
import importlib.metadata
import os

# XLA:CPU (jaxlib 0.10-0.12) hands convolutions to YNNPACK by default, whose kernel gradients ran
# 2-6.5x slower than XLA's own (Eigen) convolutions on our 2-core AMD EPYC (forward and both
# gradients of 3x3 layers of 28x28x32 to 16x16x192: 15-69 against 62-130 GFLOP/s). So vae_jax keeps
# XLA's default YNNPACK fusions for matmuls and reductions and leaves convolutions to XLA
# (issue #17 part 2; launch/issue17_diagnostics/conv_library_ab.py and results/README.md).
# XLA reads XLA_FLAGS when JAX first uses a device, so this holds when vae_jax is imported first.
# Your own --xla_cpu_experimental_ynn_fusion_type in XLA_FLAGS wins (XLA's default:
# individual_dot,reduce,individual_convolution). Only on the tested jaxlib versions: XLA aborts on
# a flag it does not know, and this one is experimental.
CPU_FUSION_FLAG = "--xla_cpu_experimental_ynn_fusion_type=individual_dot,reduce"


def _tested_jaxlib() -> bool:
  try:
    major, minor = importlib.metadata.version("jaxlib").split(".")[:2]
  except (importlib.metadata.PackageNotFoundError, ValueError):
    return False
  return (0, 10) <= (int(major), int(minor)) <= (0, 12)


def _cpu_convolutions_to_xla():
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_cpu_experimental_ynn_fusion_type" not in flags and _tested_jaxlib():
    os.environ["XLA_FLAGS"] = f"{flags} {CPU_FUSION_FLAG}".strip()


_cpu_convolutions_to_xla()
