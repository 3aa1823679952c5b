"""train_and_evaluate(config, workdir): the training loop, checkpoints, validation and test.

A run is a pure function of its config: every random draw comes from keys derived from
`config.seed` and the step, and the epoch order from (seed, epoch), so a run killed and resumed
from its latest checkpoint ends with exactly the parameters of an uninterrupted one.
"""
import contextlib
import dataclasses
import fcntl
import functools
import json
import math
import os
import platform
import time
from typing import Any, NamedTuple

from absl import logging
import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vae_jax import (bounds, checkpoints, configuration, data, evaluate, image_grid, parallel,
                     priors)
from vae_jax.data import batching
from vae_jax.metric_writer import MetricWriter, write_json_atomically, write_text_atomically
from vae_jax.models import create_model, factory


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array  # per-step keys are fold_in(rng, step)
  first_nonfinite_step: jax.Array  # -1 while every loss and gradient has been finite
  best_params: Any  # parameters with the lowest validation NLL; None without validation
  averaged_params: Any  # Polyak average of params (config.train.polyak_decay), else None
  best_validation_nll: jax.Array
  best_step: jax.Array


def learning_rate_schedule(train_config, total_steps: int):
  """Piecewise-constant learning rate (B.3), boundaries as fractions of all steps."""
  boundaries = [int(round(f * total_steps)) for f in train_config.lr_boundaries]
  return optax.join_schedules([optax.constant_schedule(r) for r in train_config.learning_rates],
                              boundaries)


def kl_warmup_steps(train_config, total_steps: int) -> int:
  return round(train_config.kl_warmup_fraction * total_steps)


def kl_weight(train_config, step, total_steps: int):
  """beta of the warm-up ELBO: linear from kl_warmup_start to 1, then 1 (B.3)."""
  warmup_steps = kl_warmup_steps(train_config, total_steps)
  progress = jnp.minimum(1.0, step / warmup_steps) if warmup_steps else 1.0
  start = train_config.kl_warmup_start
  return start + (1.0 - start) * progress


def l2_penalty(params):
  """Sum of squared kernels of non-linear layers (named `hidden_*`), as in B.3."""
  def penalty(path, leaf):
    names = [getattr(p, "key", "") for p in path]
    nonlinear = any(str(n).startswith("hidden_") for n in names)
    return jnp.sum(jnp.square(leaf)) if nonlinear and names[-1] == "kernel" else 0.0
  return sum(jax.tree_util.tree_leaves(jax.tree_util.tree_map_with_path(penalty, params)))


class _PhaseState(NamedTuple):
  step: jax.Array
  adam: optax.OptState


def _in_phases(learning_rate, active) -> optax.GradientTransformation:
  """Adam that updates its parameters (and its moments) only at steps where `active(step)`."""
  adam = optax.scale_by_adam()

  def init(params):
    return _PhaseState(jnp.zeros((), jnp.int32), adam.init(params))

  def update(grads, state, params=None):
    del params
    directions, new_adam = adam.update(grads, state.adam)
    on = active(state.step)
    scale = jnp.where(on, -learning_rate(state.step), 0.0)
    keep = lambda new, old: jnp.where(on, new, old)
    return (jax.tree_util.tree_map(lambda d: scale * d, directions),
            _PhaseState(state.step + 1, jax.tree_util.tree_map(keep, new_adam, state.adam)))

  return optax.GradientTransformation(init, update)


def prior_training_phases(train_config, total_steps: int):
  """(prior_active, vae_active, learning_rate), functions of the step, for post-hoc and
  iterative prior training (B.3, Algorithm B.1).

  Post-hoc: the prior alone, lr 1e-3 then 1e-4 (config.train.learning_rates). Iterative with I
  iterations of M = total / (2 I) steps: the prior for 2M steps (lr 1e-3 then 1e-4: Iteration 1b),
  then VAE and prior alternate for M steps each at lr 1e-4 (Iterations ia, ib for i = 2..I).
  """
  first, later = train_config.learning_rates[0], train_config.learning_rates[-1]
  if train_config.strategy == "posthoc":
    return (lambda step: True), (lambda step: False), learning_rate_schedule(train_config,
                                                                            total_steps)
  phase_steps = total_steps // (2 * train_config.iterations)
  if phase_steps == 0:
    raise ValueError(f"Iterative training with {train_config.iterations} iterations needs at "
                     f"least {2 * train_config.iterations} steps; the run has {total_steps}.")
  phase = lambda step: jnp.maximum(step // phase_steps - 2, 0)  # 0, 0, then 0, 1, 2, ...
  in_prior_phase = lambda step: (step < 2 * phase_steps) | (phase(step) % 2 == 1)
  learning_rate = lambda step: jnp.where(step < phase_steps, first, later)
  return in_prior_phase, (lambda step: ~in_prior_phase(step)), learning_rate


def normalize_gradients(eps: float = 1e-8) -> optax.GradientTransformation:
  """g / (||g|| + eps) for each parameter array: the block-normalized gradients of Yu et al.
  (2017) that the VampPrior paper feeds to Adam (Section 5.1). A RealNVP's stacked blocks
  ([K, ...] under `blocks`) are normalized block by block, as the arrays they stack."""
  def normalized(path, g):
    stacked = any(getattr(entry, "key", None) == "blocks" for entry in path)
    axes = tuple(range(1, g.ndim)) if stacked else None
    return g / (jnp.sqrt(jnp.sum(jnp.square(g), axis=axes, keepdims=stacked)) + eps)

  def update(grads, state, params=None):
    del params
    return jax.tree_util.tree_map_with_path(normalized, grads), state
  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(train_config, total_steps: int):
  def clip():
    if train_config.normalize_gradients:
      return normalize_gradients()
    if train_config.grad_clip_norm:
      return optax.clip_by_global_norm(train_config.grad_clip_norm)
    return optax.identity()
  if train_config.strategy == "joint":
    # Adamax: the IAF CIFAR-10 model (Kingma et al. 2016, code) and VLAE (Chen et al. 2017, App. A).
    scale_by = optax.adam if train_config.optimizer == "adam" else optax.adamax
    return optax.chain(clip(), scale_by(learning_rate_schedule(train_config, total_steps)))
  if train_config.optimizer != "adam":
    raise ValueError("Post-hoc and iterative prior training use Adam (B.3): set "
                     "config.train.optimizer='adam'.")
  # Each group is clipped on its own, so the frozen group's gradients never scale the other's.
  prior_active, vae_active, learning_rate = prior_training_phases(train_config, total_steps)
  label = lambda params: {k: jax.tree_util.tree_map(lambda _: "prior" if k == "prior" else "vae", v)
                          for k, v in params.items()}
  return optax.multi_transform(
      {"prior": optax.chain(clip(), _in_phases(learning_rate, prior_active)),
       "vae": optax.chain(clip(), _in_phases(learning_rate, vae_active))}, label)


def latent_regularizer(z):
  """Reg[q(z)] of B.3: mean over dimensions of Mean(z_k)^2 + (Var(z_k) - 1)^2, over the batch's
  posterior samples z [samples, batch, ...]."""
  z = z.reshape(-1, math.prod(z.shape[2:]))
  return jnp.mean(jnp.square(jnp.mean(z, 0)) + jnp.square(jnp.var(z, 0) - 1.0))


AUTO_STEPS_PER_CALL = 50  # for the models that a device loop makes faster (Run.steps_per_call)


@dataclasses.dataclass(frozen=True)
class Run:
  """Everything a run needs besides its state: config, data on device, model, mesh."""
  config: Any
  dataset: data.Dataset
  model: Any  # VAE or HierarchicalVAE
  mesh: Any
  train_images: jax.Array
  validation_images: Any
  test_images: jax.Array
  steps_per_epoch: int

  @property
  def total_steps(self) -> int:
    return max(1, round(self.config.train.num_epochs * self.steps_per_epoch))

  @property
  def steps_per_call(self) -> int:
    """config.train.steps_per_call, or where it is 0 the fast choice for this model and device:
    one step per call for convolutional models on a CPU, whose gradient convolutions inside a
    device loop miss XLA:CPU's fast kernels (a ConvVAE step 17x slower, issue #7), else
    AUTO_STEPS_PER_CALL (for the VampPrior paper's VAE on a CPU, 1.4x the images/s of one step
    per call with the standard prior and 1.9x with K = 500 pseudo-inputs; issue #18)."""
    chosen = self.config.train.steps_per_call
    if chosen:
      return chosen
    convolutional = self.config.model.architecture not in factory.DENSE_ARCHITECTURES
    on_cpu = self.mesh.devices.flat[0].platform == "cpu"
    return 1 if convolutional and on_cpu else AUTO_STEPS_PER_CALL

  def keys(self):
    """(init, train, data order, evaluation) keys from the seed."""
    return jax.random.split(jax.random.PRNGKey(self.config.seed), 4)


def setup_run(config, devices=None) -> Run:
  mesh = parallel.data_mesh(devices)
  configuration.validate(config, mesh.size)
  dataset = data.load(config.data)
  likelihood = config.model.likelihood
  if dataset.binary != (likelihood == "bernoulli"):
    wanted = "bernoulli" if dataset.binary else "discretized_logistic"
    raise configuration.ConfigError(
        f"{dataset.name} has {'binary' if dataset.binary else '8-bit'} pixels but "
        f"config.model.likelihood={likelihood!r}; set it to {wanted!r}.")
  steps_per_epoch = dataset.train.shape[0] // config.train.batch_size
  if steps_per_epoch == 0:
    raise configuration.ConfigError(
        f"config.train.batch_size={config.train.batch_size} exceeds the "
        f"{dataset.train.shape[0]} training images of {dataset.name}.")
  on_device = lambda a: None if a is None else parallel.replicate(a, mesh)
  return Run(config=config, dataset=dataset,
             model=create_model(config.model, dataset.image_shape), mesh=mesh,
             train_images=on_device(dataset.train),
             validation_images=on_device(dataset.validation),
             test_images=on_device(dataset.test), steps_per_epoch=steps_per_epoch)


def _with_pretrained(run: Run, params, pretrained, x, key):
  """`params` with the encoder and decoder of the pre-trained run (config.train.init_from), and
  the prior initialised anew on posterior samples of that encoder (ActNorm's data-dependent
  initialisation)."""
  mismatched = [k for k in params if k != "prior" and jax.tree_util.tree_map(
      jnp.shape, pretrained.get(k)) != jax.tree_util.tree_map(jnp.shape, params[k])]
  if mismatched:
    raise ValueError(f"config.train.init_from={run.config.train.init_from!r} holds a model whose "
                     f"{mismatched} parameters differ in shape from this config's: pre-train with "
                     "the same architecture and data (see vae_jax.xu2020.pretraining_cell).")
  params = {k: (v if k == "prior" else pretrained[k]) for k, v in params.items()}
  z = run.model.apply({"params": params}, x, jax.random.fold_in(key, 0), 1,
                      method="sample_posterior")[0]
  params["prior"] = run.model.prior.init({"params": jax.random.fold_in(key, 1)}, z,
                                         method="log_prob")["params"]
  return params


def _with_data_pseudo_inputs(run: Run, params, key):
  """VampPrior *data* (Tomczak & Welling 2018, Section 4): K random training images, as the model
  sees them, for pseudo-inputs."""
  num_components = run.model.prior.num_components
  if num_components > run.train_images.shape[0]:
    raise ValueError(f"config.model.num_components={num_components} exceeds the "
                     f"{run.train_images.shape[0]} training images to pick pseudo-inputs from.")
  pick_key, binarize_key = jax.random.split(key)
  index = jax.random.choice(pick_key, run.train_images.shape[0], (num_components,), replace=False)
  images = batching.model_input(binarize_key, run.train_images[index], run.dataset.encoding)
  prior = dict(params["prior"], pseudo_inputs=images)
  return dict(params, prior=prior)


def create_train_state(run: Run, optimizer) -> TrainState:
  """Initialises on the first training batch (ActNorm layers initialise from data)."""
  init, args = _initializer(run, optimizer)
  return init(*args)


def _initializer(run: Run, optimizer):
  """(init, args): init(*args) is the initial TrainState."""
  init_key, train_key, _, _ = run.keys()
  train_config = run.config.train
  if (train_config.strategy == "joint") != (not train_config.init_from):
    raise ValueError(f"config.train.strategy={train_config.strategy!r} "
                     + ("needs config.train.init_from: the workdir of the standard-prior model "
                        "it starts from." if train_config.strategy != "joint" else
                        "trains from scratch: leave config.train.init_from empty."))
  pretrained = None
  if train_config.init_from:
    if not hasattr(run.model, "sample_posterior"):
      raise ValueError("Post-hoc and iterative prior training are for one-latent VAEs (B.3), "
                       f"not for {type(run.model).__name__}.")
    pretrained = parallel.replicate(checkpoints.restore_params(train_config.init_from), run.mesh)

  @functools.partial(jax.jit, out_shardings=parallel.replicated(run.mesh))
  def init(images, pretrained):
    x = batching.model_input(jax.random.fold_in(init_key, 0), images, run.dataset.encoding)
    params = run.model.init({"params": jax.random.fold_in(init_key, 1),
                             "dropout": jax.random.fold_in(init_key, 3)}, x,
                            jax.random.fold_in(init_key, 2))["params"]
    if pretrained is not None:
      params = _with_pretrained(run, params, pretrained, x, jax.random.fold_in(init_key, 4))
    if getattr(getattr(run.model, "prior", None), "from_data", False):
      params = _with_data_pseudo_inputs(run, params, jax.random.fold_in(init_key, 5))
    validating = run.config.train.validate_every_epochs > 0
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=optimizer.init(params), rng=train_key,
                      first_nonfinite_step=jnp.full((), -1, jnp.int32),
                      best_params=params if validating else None,
                      averaged_params=params if run.config.train.polyak_decay else None,
                      best_validation_nll=jnp.full((), jnp.inf), best_step=jnp.zeros((), jnp.int32))

  return init, (run.train_images[:run.config.train.batch_size], pretrained)


def restore_train_state(run: Run, optimizer, checkpoint_manager) -> TrainState | None:
  """The latest checkpoint's state, or None. Restored into the state's shapes and shardings
  (jax.eval_shape), so nothing is initialised or compiled: the first-batch initialisation of
  a RealNVP prior with K=50 blocks takes minutes to compile on a CPU."""
  if checkpoint_manager.latest_step() is None:
    return None
  init, args = _initializer(run, optimizer)
  sharding = parallel.replicated(run.mesh)
  like = jax.tree_util.tree_map(
      lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
      jax.eval_shape(init, *args))
  return checkpoints.restore_latest(checkpoint_manager, like)


def _kl_for_free_bits(parts, kl, groups: str):
  """[batch, ...] KL per latent unit for free bits; the total suffices for groups='all'."""
  if groups == "all":
    return kl[:, None]
  if parts.kl_per_unit is None:
    raise ValueError(f"config.train.free_bits_groups={groups!r} needs the KL split over latent "
                     "units, which this model has only with a Gaussian posterior and a standard "
                     "prior (the ResNet VAE of IAF Appendix C always has it); use "
                     "free_bits_groups='all' here.")
  return parts.kl_per_unit[0]


def make_train_step(run: Run, optimizer):
  """The pure `train_step(state, images, order) -> (state, metrics)`: one optimizer step on the
  batch of `order` (the epoch's order of `images`) at `state.step`."""
  train_config = run.config.train
  batch_size, total_steps = train_config.batch_size, run.total_steps
  schedule = learning_rate_schedule(train_config, total_steps)
  batch_sharding = parallel.batch_sharded(run.mesh)

  def loss_fn(params, x, key, beta):
    sample_key, dropout_key = jax.random.split(key)
    parts = run.model.apply({"params": params}, x, sample_key, deterministic=False,
                            rngs={"dropout": dropout_key})
    log_likelihood = parts.log_likelihood[0]
    kl = (parts.log_posterior - parts.log_prior)[0]
    l2 = l2_penalty(params)
    kl_term = jnp.mean(kl)
    if train_config.free_bits:
      kl_term = bounds.free_bits_kl(_kl_for_free_bits(parts, kl, train_config.free_bits_groups),
                                    train_config.free_bits, train_config.free_bits_groups)
    loss = -jnp.mean(log_likelihood) + beta * kl_term + train_config.l2_weight * l2
    metrics = {"elbo": jnp.mean(log_likelihood - kl), "reconstruction": jnp.mean(log_likelihood),
               "kl": jnp.mean(kl), "l2": l2}
    if train_config.reg_weight:
      metrics["reg"] = latent_regularizer(parts.z)
      loss = loss + train_config.reg_weight * metrics["reg"]
    return loss, dict(metrics, loss=loss)

  def train_step(state: TrainState, images, order):
    binarize_key, sample_key = jax.random.split(jax.random.fold_in(state.rng, state.step))
    start = (state.step % run.steps_per_epoch) * batch_size
    # Sharding the indices first makes each device gather and binarize only its own rows.
    index = jax.lax.with_sharding_constraint(
        jax.lax.dynamic_slice_in_dim(order, start, batch_size), batch_sharding)
    x = batching.model_input(binarize_key, images[index], run.dataset.encoding)
    x = jax.lax.with_sharding_constraint(x, batch_sharding)
    # beta-VAE (Eq. 4) with the warm-up of B.3 rising to config.train.beta.
    beta = train_config.beta * kl_weight(train_config, state.step, total_steps)
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, x, sample_key, beta)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    # The first non-finite step is remembered; the host checks it before it validates, logs or
    # saves anything, and then stops, discarding the state. (Keeping the last finite state on
    # the device instead, a select over parameters and optimizer state at every step, cost 13%
    # of the VampPrior paper's VAE's step: issue #18.)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    first_nonfinite = jnp.where(finite | (state.first_nonfinite_step >= 0),
                                state.first_nonfinite_step, state.step)
    metrics.update(beta=beta, grad_norm=grad_norm)
    if train_config.strategy == "joint":
      metrics["learning_rate"] = schedule(state.step)
    averaged = state.averaged_params
    if averaged is not None:  # Polyak averaging (VLAE Appendix A: alpha = 0.998)
      decay = train_config.polyak_decay
      averaged = jax.tree_util.tree_map(lambda a, p: decay * a + (1 - decay) * p, averaged, params)
    return state.replace(step=state.step + 1, params=params, averaged_params=averaged,
                         opt_state=opt_state, first_nonfinite_step=first_nonfinite), metrics

  return train_step


def make_train_steps(run: Run, optimizer):
  """The jitted `train_steps(state, images, order, num_steps) -> (state, metric sums)`: that many
  optimizer steps in one call, up to run.steps_per_call. The state is donated: its buffers are
  reused for the new one. With more than one step per call the steps run in a device-side loop,
  with no per-step dispatch from Python (see Run.steps_per_call for when that is faster).
  """
  train_step = make_train_step(run, optimizer)
  replicated = parallel.replicated(run.mesh)
  if run.steps_per_call == 1:
    one_step = jax.jit(train_step, donate_argnums=0, out_shardings=replicated)

    def train_steps_one_at_a_time(state, images, order, num_steps=1):
      if num_steps != 1:
        raise ValueError(f"{num_steps} steps in one call need run.steps_per_call >= {num_steps}.")
      return one_step(state, images, order)
    return train_steps_one_at_a_time

  def train_steps(state: TrainState, images, order, num_steps):
    def add_step(_, carry):
      state, sums = carry
      state, metrics = train_step(state, images, order)
      return state, jax.tree_util.tree_map(jnp.add, sums, metrics)
    shapes = jax.eval_shape(train_step, state, images, order)[1]
    sums = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    return jax.lax.fori_loop(0, num_steps, add_step, (state, sums))

  return jax.jit(train_steps, donate_argnums=0, out_shardings=replicated)


def steps_to_next_stop(step: int, run: Run) -> int:
  """Steps from `step` to the next point where the host acts (a log line, an epoch's end for
  validation and the next order, a checkpoint, the last step), at most run.steps_per_call."""
  train_config = run.config.train
  every = (train_config.log_every_steps, run.steps_per_epoch, train_config.checkpoint_every_steps)
  next_stop = min(step + n - step % n for n in every)
  return min(next_stop, step + run.steps_per_call, run.total_steps) - step


def _check_config_matches_workdir(config, workdir: str) -> None:
  """Refuses to resume a workdir made by another config; records the config on first use."""
  path = os.path.join(workdir, "config.json")
  current = configuration.to_json(config)
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      # Keys added to vae_jax since the run started take their defaults.
      saved = configuration.to_json(configuration.from_json(f.read()))
    old = configuration.flatten(json.loads(saved))
    new = configuration.flatten(json.loads(current))
    # Steps per call change how the steps are dispatched, not what they compute.
    diffs = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
             if old.get(k) != new.get(k) and k != "train.steps_per_call"]
    if diffs:
      raise ValueError(f"{workdir} holds a run with a different config ({'; '.join(diffs)}). "
                       "Resume it with the same config, or give a new --workdir.")
  else:
    write_text_atomically(path, current)


def _raise_if_nonfinite(state: TrainState, checkpoint_manager, run: Run) -> None:
  bad_step = int(state.first_nonfinite_step)
  if bad_step >= 0:
    last = checkpoint_manager.latest_step()
    where = (f"the last good checkpoint is step {last} in {checkpoint_manager.directory}"
             if last is not None else "no checkpoint was saved before it")
    raise FloatingPointError(
        f"Non-finite loss or gradient at step {bad_step} (epoch {bad_step // run.steps_per_epoch}); "
        f"the state after it is discarded and {where}. Try a lower learning rate, a "
        "smaller config.train.grad_clip_norm or a higher config.model.min_logstd.")


def train(run: Run, workdir: str) -> TrainState:
  """Trains from the latest checkpoint in `workdir` (or from scratch) to the last step."""
  train_config = run.config.train
  optimizer = make_optimizer(train_config, run.total_steps)
  checkpoint_manager = checkpoints.manager(workdir, train_config.keep_checkpoints)
  state = restore_train_state(run, optimizer, checkpoint_manager)
  if state is None:
    state = create_train_state(run, optimizer)
  else:
    logging.info("Resumed from the checkpoint at step %d.", int(state.step))
  train_steps = make_train_steps(run, optimizer)
  _, _, order_key, eval_key = run.keys()
  epoch_order = jax.jit(batching.epoch_order, static_argnums=2,
                        out_shardings=parallel.replicated(run.mesh))
  validator = (evaluate.DatasetEvaluator(run.model, run.mesh, train_config.validation_samples,
                                         run.config.eval.sample_chunk, run.config.eval.batch_size)
               if train_config.validate_every_epochs else None)
  step = int(state.step)
  # Closed on any exit: tensorboardX's writer thread must stop before the interpreter does,
  # and the checkpoint manager finishes an asynchronous save in flight, also on an error.
  with MetricWriter(workdir, resume_step=step) as writer, checkpoint_manager:
    num_train = run.train_images.shape[0]
    pending, interval_start, interval_step, rates = [], time.time(), step, []  # metric sums
    order = epoch_order(order_key, step // run.steps_per_epoch, num_train)
    # A run resumed at a validation point may already have run out of patience.
    validation_interval = train_config.validate_every_epochs * run.steps_per_epoch
    stop_early = (validator is not None and step > 0 and step % validation_interval == 0
                  and _patience_exhausted(run, state, step))
    while step < run.total_steps and not stop_early:
      num_steps = steps_to_next_stop(step, run)
      state, metric_sums = train_steps(state, run.train_images, order, num_steps)
      pending.append(metric_sums)
      step += num_steps
      epoch, epoch_done = divmod(step, run.steps_per_epoch)
      if step % train_config.log_every_steps == 0 or step == run.total_steps:
        _raise_if_nonfinite(state, checkpoint_manager, run)
        means = {k: float(np.sum([m[k] for m in jax.device_get(pending)])) / (step - interval_step)
                 for k in pending[0]}
        elapsed = time.time() - interval_start
        rate = (step - interval_step) / elapsed
        rates.append(rate)
        means.update(steps_per_second=rate, images_per_second=rate * train_config.batch_size)
        writer.write(step, "train", means)
        logging.info("epoch %d/%g step %d/%d loss %.3f elbo %.3f steps/s %.1f ETA %s",
                     epoch, train_config.num_epochs, step, run.total_steps, means["loss"],
                     means["elbo"], rate, _duration((run.total_steps - step) / rate))
        pending, interval_start, interval_step = [], time.time(), step
      if epoch_done == 0:
        if validator and (epoch % train_config.validate_every_epochs == 0
                          or step == run.total_steps):
          _raise_if_nonfinite(state, checkpoint_manager, run)
          state = _validate(run, state, validator, jax.random.fold_in(eval_key, step), writer)
          stop_early = _patience_exhausted(run, state, step)
        order = epoch_order(order_key, epoch, num_train)
      if step % train_config.checkpoint_every_steps == 0 or step == run.total_steps:
        _raise_if_nonfinite(state, checkpoint_manager, run)
        checkpoints.save(checkpoint_manager, step, state)
    if checkpoint_manager.latest_step() != step:  # stopped early
      _raise_if_nonfinite(state, checkpoint_manager, run)
      checkpoints.save(checkpoint_manager, step, state)
  # The first interval includes compilation; report the steady state.
  steady = rates[1:] or rates
  if steady:
    write_json_atomically(os.path.join(workdir, "train_summary.json"), {
        "steps": step, "epochs": step / run.steps_per_epoch,
        "train_images_per_second": float(np.median(steady)) * train_config.batch_size})
  return state


def _patience_exhausted(run: Run, state: TrainState, step: int) -> bool:
  """Early stopping: no better validation NLL for early_stopping_patience_epochs (0: never)."""
  patience = run.config.train.early_stopping_patience_epochs
  # Patience counts from the best step, and at the earliest from the end of the KL warm-up.
  since = max(int(state.best_step), kl_warmup_steps(run.config.train, run.total_steps))
  if patience and (step - since) // run.steps_per_epoch >= patience:
    logging.info("Early stopping at step %d: the best validation NLL is from step %d.", step,
                 int(state.best_step))
    return True
  return False


def _validate(run: Run, state: TrainState, validator, key, writer) -> TrainState:
  current = _current_params(state)
  results = validator(current, run.validation_images, run.dataset.encoding, key)
  step = int(state.step)
  writer.write(step, "validation", {k: results[k] for k in ("nll", "elbo", "reconstruction", "kl")})
  logging.info("validation at step %d: NLL %.3f (%d samples)", step, results["nll"],
               results["num_samples"])
  # Inside the KL warm-up the model optimises a bound with beta < 1, whose early parameters can
  # score a lower validation NLL than any later ones without being the model the run trains for:
  # only validations after the warm-up (or at the last step) can be the best (issue #19: the
  # Caltech-101 VampPrior run's best checkpoint came from inside its warm-up).
  after_warmup = step >= kl_warmup_steps(run.config.train, run.total_steps) or (
      step == run.total_steps)
  if after_warmup and results["nll"] < float(state.best_validation_nll):
    best = jax.tree_util.tree_map(jnp.copy, current)  # own buffers: the state is donated
    state = state.replace(best_params=best, best_step=jnp.asarray(step, jnp.int32),
                          best_validation_nll=jnp.asarray(results["nll"], jnp.float32))
  return state


def _duration(seconds: float) -> str:
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def test_metrics(run: Run, params, num_samples: int, key, active_unit_samples: int,
                 active_unit_images: int = 0) -> dict:
  """Test-set NLL, ELBO and its parts (evaluate.DatasetEvaluator) and active units on the first
  `active_unit_images` training images (0: all)."""
  eval_config = run.config.eval
  evaluator = evaluate.DatasetEvaluator(run.model, run.mesh, num_samples, eval_config.sample_chunk,
                                        eval_config.batch_size)
  # eval.test_images > 0 evaluates the first that many test images only (a cheaper estimate
  # for slow models, such as PixelCNN decoders with thousands of importance samples).
  test_images = run.test_images[:eval_config.test_images or None]
  results = evaluator(params, test_images, run.dataset.test_encoding,
                      jax.random.fold_in(key, 0))
  num_images = min(active_unit_images or run.train_images.shape[0], run.train_images.shape[0])
  results.update(evaluate.active_units(
      run.model, params, run.train_images[:num_images], run.dataset.encoding,
      jax.random.fold_in(key, 1), eval_config.active_unit_threshold, active_unit_samples))
  results["active_unit_images"] = num_images
  if hasattr(run.model, "kl_per_layer"):
    results["kl_per_layer"] = evaluate.kl_per_layer(
        run.model, params, test_images, run.dataset.test_encoding, jax.random.fold_in(key, 2),
        eval_config.batch_size)
    # What the latent statistics and active units read (issue #19; evaluations before it used
    # eps itself, whose scale the SeRe-VAE leaves free).
    results["latent_statistics_of"] = "base latents whitened by their prior"
  return results


def evaluate_test(run: Run, state: TrainState, workdir: str, num_samples: int,
                  output: str = "eval_test.json") -> dict:
  """Test NLL/ELBO/KL/bits-per-dim of the state's evaluation parameters, active units on the
  training set, PNG grids, and which parameters these are (step, epochs, finished or not)."""
  params = _evaluation_params(state)
  eval_config = run.config.eval
  _, _, _, eval_key = run.keys()
  results = test_metrics(run, params, num_samples, eval_key, eval_config.active_unit_samples,
                         eval_config.active_unit_images)
  results["bits_per_dim"] = evaluate.bits_per_dim(results["nll"], run.dataset.image_shape)
  results["kl_bits"] = results["kl"] / math.log(2)  # E[KL(q(z|x) || p(z))] per image (VLAE 4.1)
  results["num_params"] = sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(params))
  used = _parameters_used(run, state)
  logging.info("Evaluated the %s parameters at step %d of %d (%s run).", used["parameters"],
               used["step"], run.total_steps, "a finished" if used["finished"] else "an unfinished")
  results.update(used)
  results.update(dataset=run.dataset.name, devices=f"{jax.device_count()}x {jax.devices()[0].device_kind}",
                 host=platform.node(), cpu_count=os.cpu_count(),
                 test_binarizations=(run.config.data.test_binarizations
                                     if run.dataset.dynamic_binarization else 1))
  write_json_atomically(os.path.join(workdir, output), results)
  # Every process computes the grids (the arrays span all devices); process 0 writes them.
  n = eval_config.num_images
  apply = jax.jit(run.model.apply, static_argnames=("method", "n"),
                  out_shardings=parallel.replicated(run.mesh))
  samples = apply({"params": params}, jax.random.fold_in(eval_key, 2), n=n, method="generate")
  image_grid.save_grid(os.path.join(workdir, "samples.png"), samples)
  originals = batching.model_input(None, run.test_images[:n // 2], run.dataset.test_encoding)
  reconstructions = apply({"params": params}, originals, jax.random.fold_in(eval_key, 3),
                          method="reconstruct")
  pairs = lambda b: jnp.stack([originals, b], 1).reshape((-1,) + originals.shape[1:])
  image_grid.save_grid(os.path.join(workdir, "reconstructions.png"), pairs(reconstructions))
  if eval_config.decompressions:  # VLAE Fig. 1a: x, then x' ~ p(x|z) with z ~ q(z|x)
    decompressions = apply({"params": params}, originals, jax.random.fold_in(eval_key, 4),
                           method="decompress")
    image_grid.save_grid(os.path.join(workdir, "decompressions.png"), pairs(decompressions))
  if isinstance(getattr(run.model, "prior", None), priors.VampPrior):  # the learned pseudo-inputs (Fig. 4)
    pseudo_inputs = run.model.apply({"params": params},
                                    method=lambda module: module.prior.pseudo_inputs())
    image_grid.save_grid(os.path.join(workdir, "pseudo_inputs.png"), pseudo_inputs[:n])
  return results


def _current_params(state: TrainState):
  """The parameters to validate or evaluate now: the Polyak average when kept, else params."""
  return state.params if state.averaged_params is None else state.averaged_params


def _evaluation_params(state: TrainState):
  return _current_params(state) if state.best_params is None else state.best_params


def _parameters_used(run: Run, state: TrainState) -> dict:
  """Which parameters an evaluation used: the step and epochs trained, whether the run had
  finished, and whether they are the best validated, the Polyak average or the latest."""
  step = int(state.step)
  if state.best_params is not None:
    kind = f"best validated (step {int(state.best_step)})"
  else:
    kind = "Polyak average" if state.averaged_params is not None else "latest"
  return {"step": step, "epochs": step / run.steps_per_epoch,
          "finished": step >= run.total_steps, "parameters": kind}


class WorkdirBusyError(RuntimeError):
  """Another process is training in the workdir."""


@contextlib.contextmanager
def workdir_lock(workdir: str):
  """Holds an exclusive OS lock (flock) on <workdir>/lock while a run trains there, so that a
  second run in the same workdir stops at once, naming the holder. The OS releases the lock when
  its process exits in any way, so a lock file left by a killed run locks nothing. Only JAX
  process 0 locks: the processes of one multi-host run share the workdir."""
  if jax.process_index() != 0:
    yield
    return
  with open(os.path.join(workdir, "lock"), "a+", encoding="utf-8") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      raise WorkdirBusyError(f"{workdir} is in use by another run ({f.read().strip()}): wait for "
                             "it to finish, or give another --workdir.") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {platform.node()}\n")
    f.flush()
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains (resuming if `workdir` has checkpoints), then evaluates on the test set. A config
  that fails validation, data that fail to load or a workdir that is a file stop it before
  anything is written."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise NotADirectoryError(f"--workdir={workdir} is a file; give a directory.")
  run = setup_run(config)
  logging.info("Config:\n%s", config)
  os.makedirs(workdir, exist_ok=True)
  with workdir_lock(workdir):
    _check_config_matches_workdir(config, workdir)
    logging.info("%s: %d train / %s validation / %d test images %s on %d device(s); %d steps.",
                 run.dataset.name, run.dataset.train.shape[0],
                 None if run.dataset.validation is None else run.dataset.validation.shape[0],
                 run.dataset.test.shape[0], run.dataset.image_shape, run.mesh.size,
                 run.total_steps)
    state = train(run, workdir)
    results = evaluate_test(run, state, workdir, config.eval.num_samples)
  logging.info("test NLL %.3f nats (%d samples), ELBO %.3f, KL %.3f, active units %d",
               results["nll"], results["num_samples"], results["elbo"], results["kl"],
               results["active_units"])
  return results


def workdir_config(workdir: str):
  """The config a training workdir was run with."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: --workdir must be a vae_jax training workdir.")
  with open(path, encoding="utf-8") as f:
    return configuration.from_json(f.read())


def evaluate_workdir(workdir: str, num_samples=None, test_binarizations=None,
                     output: str = "eval_test.json", active_unit_images=None,
                     test_images=None) -> dict:
  """Evaluates the latest checkpoint of a finished or interrupted run.

  `num_samples`, `test_binarizations`, `active_unit_images` and `test_images` override the run's
  config for this evaluation only.
  """
  config = workdir_config(workdir)
  if test_binarizations:
    config.data.test_binarizations = test_binarizations
  if active_unit_images is not None:
    config.eval.active_unit_images = active_unit_images
  if test_images is not None:
    config.eval.test_images = test_images
  if num_samples:
    config.eval.num_samples = num_samples
    if config.eval.sample_chunk:  # the largest chunk that divides num_samples, within the bound
      config.eval.sample_chunk = max(c for c in range(1, min(num_samples, config.eval.sample_chunk)
                                                      + 1) if num_samples % c == 0)
    config.train.validation_samples = config.eval.sample_chunk or 1  # unused; keeps it valid
  run = setup_run(config)
  optimizer = make_optimizer(config.train, run.total_steps)
  with checkpoints.manager(workdir, config.train.keep_checkpoints) as manager:
    state = restore_train_state(run, optimizer, manager)
  if state is None:
    raise FileNotFoundError(f"No checkpoint in {workdir}/checkpoints to evaluate.")
  return evaluate_test(run, state, workdir, num_samples or config.eval.num_samples, output)
