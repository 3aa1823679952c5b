"""Metrics as JSON lines (what launch/ reads) and TensorBoard events (tensorboardX: no TensorFlow)."""
import json
import os

from absl import logging
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
        kept = [line for line in _complete_records(path) if json.loads(line)["step"] <= resume_step]
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


def _complete_records(path: str) -> list:
  """The lines of a JSON-lines log. A last line cut short (a process killed mid-write) is
  dropped with a warning: the resumed run writes its records again. A bad line before the last
  is not a torn tail, and is an error naming the file and line."""
  with open(path, encoding="utf-8") as f:
    lines = f.readlines()
  for number, line in enumerate(lines, 1):
    try:
      json.loads(line)
    except json.JSONDecodeError as error:
      if number < len(lines):
        raise ValueError(f"{path}, line {number}, is not a JSON record ({error}); only a "
                         "torn last line is repaired on resume.") from error
      logging.warning("%s: dropped its last line, cut short by an interrupted write: %r",
                      path, line[:80])
      return lines[:-1]
  return lines


def write_text_atomically(path: str, text: str) -> None:
  """Writes via a temporary file and rename, so a crash never leaves a half-written file; makes
  the file's directory if needed."""
  if jax.process_index() != 0:
    return
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(tmp, path)


def write_json_atomically(path: str, payload: dict) -> None:
  write_text_atomically(path, json.dumps(payload, indent=2, sort_keys=True))
