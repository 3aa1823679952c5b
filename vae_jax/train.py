"""train_and_evaluate(config, workdir): the training loop, checkpoints, validation and test.

A run is a pure function of its config: every random draw comes from keys derived from
`config.seed` and the step, and the epoch order from (seed, epoch), so a run killed and resumed
from its latest checkpoint ends with exactly the parameters of an uninterrupted one.
"""
import json
import math
import os
import time

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vae_jax import bounds, checkpoints, configuration, evaluate, parallel
from vae_jax.data import batching
from vae_jax.metric_writer import MetricWriter, write_json_atomically, write_text_atomically
from vae_jax.runs import Run, setup_run, workdir_lock
from vae_jax.train_state import (TrainState, create_train_state, current_params,
                                 learning_rate_schedule, make_optimizer, restore_train_state)


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


def latent_regularizer(z):
  """Reg[q(z)] of B.3: mean over dimensions of Mean(z_k)^2 + (Var(z_k) - 1)^2, over the batch's
  posterior samples z [samples, batch, ...]."""
  z = z.reshape(-1, math.prod(z.shape[2:]))
  return jnp.mean(jnp.square(jnp.mean(z, 0)) + jnp.square(jnp.var(z, 0) - 1.0))


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
  current = current_params(state)
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
    # Placed like the rest of the state (replicated, strongly typed): otherwise the next train
    # step sees new input shardings and compiles again.
    best_step, best_nll = parallel.replicate((np.int32(step), np.float32(results["nll"])),
                                             run.mesh)
    state = state.replace(best_params=best, best_step=best_step, best_validation_nll=best_nll)
  return state


def _duration(seconds: float) -> str:
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


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
    results = evaluate.evaluate_test(run, state, workdir, config.eval.num_samples)
  logging.info("test NLL %.3f nats (%d samples), ELBO %.3f, KL %.3f, active units %d",
               results["nll"], results["num_samples"], results["elbo"], results["kl"],
               results["active_units"])
  return results
