"""The training state, the optimizers that update it (joint, post-hoc and iterative training of
Xu et al. 2020, B.3), and its initialisation and restoring from checkpoints."""
import functools
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import optax

from vae_jax import checkpoints, parallel
from vae_jax.data import batching
from vae_jax.runs import Run


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


def _with_pretrained(run: Run, params, pretrained, x, key):
  """`params` with the encoder and decoder of the pre-trained run (config.train.init_from), and
  the prior initialised anew on posterior samples of that encoder (ActNorm's data-dependent
  initialisation)."""
  mismatched = [k for k in params if k != "prior" and jax.tree_util.tree_map(
      jnp.shape, pretrained.get(k)) != jax.tree_util.tree_map(jnp.shape, params[k])]
  if mismatched:
    raise ValueError(f"config.train.init_from={run.config.train.init_from!r} holds a model whose "
                     f"{mismatched} parameters differ in shape from this config's: pre-train with "
                     "the same architecture and data (see pretraining_cell in configs/xu2020.py).")
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
    if not run.model.has_posterior_sampler:
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
    if run.model.has_pseudo_inputs and run.model.prior.from_data:
      params = _with_data_pseudo_inputs(run, params, jax.random.fold_in(init_key, 5))
    validating = run.config.train.validate_every_epochs > 0
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=optimizer.init(params), rng=train_key,
                      first_nonfinite_step=jnp.full((), -1, jnp.int32),
                      best_params=params if validating else None,
                      averaged_params=params if run.config.train.polyak_decay else None,
                      best_validation_nll=jnp.full((), jnp.inf, jnp.float32), best_step=jnp.zeros((), jnp.int32))

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


def current_params(state: TrainState):
  """The parameters to validate or evaluate now: the Polyak average when kept, else params."""
  return state.params if state.averaged_params is None else state.averaged_params
