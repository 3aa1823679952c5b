"""Metrics as JSON lines (what launch/ reads) and TensorBoard events (tensorboardX: no TensorFlow)."""
import json
import os

import jax


class MetricWriter:
  """Appends {'step', 'split', **scalars} records; only process 0 writes.

  A run resumed from step `resume_step` first drops the records written after that step by the
  interrupted run, which the resumed run writes again.
  """

  def __init__(self, workdir: str, resume_step: int = 0):
    self._active = jax.process_index() == 0
    if self._active:
      import tensorboardX  # pylint: disable=g-import-not-at-top
      path = os.path.join(workdir, "metrics.jsonl")
      if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
          kept = [line for line in f if json.loads(line)["step"] <= resume_step]
        write_text_atomically(path, "".join(kept))
      self._jsonl = open(path, "a", encoding="utf-8")
      self._tensorboard = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, split: str, scalars: dict) -> None:
    if not self._active:
      return
    record = {"step": int(step), "split": split, **{k: float(v) for k, v in scalars.items()}}
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    for name, value in scalars.items():
      self._tensorboard.add_scalar(f"{split}/{name}", float(value), int(step))
    self._tensorboard.flush()

  def close(self) -> None:
    if self._active:
      self._jsonl.close()
      self._tensorboard.close()

  def __enter__(self) -> "MetricWriter":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def write_text_atomically(path: str, text: str) -> None:
  """Writes via a temporary file and rename, so a crash never leaves a half-written file."""
  if jax.process_index() != 0:
    return
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(tmp, path)


def write_json_atomically(path: str, payload: dict) -> None:
  write_text_atomically(path, json.dumps(payload, indent=2, sort_keys=True))
