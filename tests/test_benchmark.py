"""The benchmark's kernel count of an executable, the cells it measures, and its tables."""
import json

import jax
import jax.numpy as jnp

from vae_jax import benchmark, config_files

xu2020 = config_files.module("configs/xu2020.py")


def test_kernels_are_the_entry_computations_data_moving_instructions():
  a = jnp.ones((64, 64))
  chain = lambda a: jnp.tanh(jnp.tanh(a @ a) @ a) @ a  # 3 matmuls, 2 tanh between them
  assert benchmark.entry_instructions(jax.jit(chain).lower(a).compile()) == 5
  assert benchmark.entry_instructions(jax.jit(lambda a: a @ a).lower(a).compile()) == 1



def test_every_family_with_each_prior_is_a_paper_cell():
  for family in benchmark.FAMILIES:
    for prior in benchmark.PRIORS:
      xu2020.get_config(benchmark.family_cell(family, prior))
  # B.5: the CIFAR-10 ResnetVAE's RealNVP prior has 50 blocks; the MNIST families' have 20.
  assert benchmark.family_cell("CifarResnetVAE", "realnvp") == "resnet,rnvp_prior,K=50,cifar10"
  assert benchmark.family_cell("ConvVAE", "realnvp") == "conv,rnvp_prior,K=20,mnist"


def _result(row_peak=None):
  row = {"family": "ConvVAE", "cell": "conv,standard,mnist", "batch_size": 128,
         "compile_seconds": 4.2, "train_images_per_second": 335.5, "train_ms_per_step": 381.5,
         "flops_per_step": 29.5e9, "fraction_of_matmul_peak": 0.5,
         "train_step_memory_bytes": 2**28, "device_peak_bytes_in_use": None,
         "forward_images_per_second": 2000.0, "is_samples_per_second": 9000.0,
         "is_fraction_of_forward_rate": 0.5, "is_sample_chunk": 10, "is_eval_batch": 100,
         "train_step_kernels": 473}
  if row_peak is not None:
    row["peak_flops_per_second"] = row_peak
  machine = {"devices": 1, "device_kind": "cpu", "platform": "cpu", "cpu_count": 2,
             "processes": 1, "jax": jax.__version__}
  return {"machine": machine, "peak_flops_per_second": 150e9, "matmul_size": 2048,
          "rows": [row]}


def test_rendered_rows_show_the_peak_their_fraction_is_against(tmp_path):
  """Each row's % of peak is against the peak measured just before it; files written before
  rows had their own peak take the run's."""
  paths = []
  for name, result in (("new.json", _result(row_peak=59e9)), ("old.json", _result())):
    paths.append(tmp_path / name)
    paths[-1].write_text(json.dumps(result))
  new_part, old_part = benchmark.render(paths).split("## old.json")
  assert "| 59.0 | 50.0 |" in new_part and "just before it" in new_part
  assert "| 150.0 | 50.0 |" in old_part and "every row's % of peak" in old_part
