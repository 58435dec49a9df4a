"""Long audio in overlapping windows, and windows in length-bucketed batches.

Shared by the model backends (``hf.py``, ``saved_model.py``); framework-free.
A backend turns each waveform into an array of *units* along axis 0 (samples,
or feature rows), supplies a ``forward`` that maps a list of unit arrays to a
list of per-input *frame* arrays (valid frames only), and :func:`run` does the
rest: it cuts long inputs into windows, sorts all windows of all inputs by
length, groups them into batches under a padded-size budget, calls
``forward`` once per batch, and stitches each input's frames back together.

The grid: ``step_units`` units give ``step_frames`` output frames (HuBERT:
640 samples -> 2 frames at 50 Hz; DAC: 320 samples -> 1 frame). Windows start
on grid steps, so frame ``j`` of a window that starts at step ``s`` is frame
``s * step_frames + j`` of the whole input. Each window contributes only its
*core*; ``context_steps`` steps on each side of the core are computed and
dropped, so that a frame near a window edge still sees that much audio on both
sides. An input of at most ``window_steps`` steps is one window: the whole
input, exactly as a model would see it unwindowed.

Example: 70 s of audio, 30 s windows with 5 s of context on each side (cores
of 20 s): windows cover [0, 25), [15, 45), [35, 65), [55, 70) seconds and
keep [0, 20), [20, 40), [40, 60), [60, 70).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class WindowSpec:
  """How a backend's inputs are windowed.

  Attributes:
    step_units: units per grid step (samples or feature rows).
    step_frames: output frames per grid step.
    window_steps: longest window, in steps; 0 means never window.
    context_steps: steps of context kept on each side of a window's core.
  """

  step_units: int
  step_frames: int
  window_steps: int = 0
  context_steps: int = 0

  def __post_init__(self):
    if self.step_units < 1 or self.step_frames < 1:
      raise ValueError(f"bad grid {self.step_units} units -> "
                       f"{self.step_frames} frames")
    if self.window_steps and self.window_steps - 2 * self.context_steps < 1:
      raise ValueError(
          f"a window of {self.window_steps} steps leaves no core after "
          f"{self.context_steps} steps of context on each side; make the "
          "window longer or the context shorter")


@dataclasses.dataclass(frozen=True)
class Window:
  """One window of one input: units [start, stop); keeps its output frames
  [keep_start, keep_stop) (keep_stop None: to the end of its output)."""

  item: int
  start: int
  stop: int
  keep_start: int
  keep_stop: Optional[int]


def spec_from_seconds(*, step_units: int, step_frames: int, step_seconds: float,
                      window_seconds: Optional[float],
                      context_seconds: float) -> WindowSpec:
  """Builds a WindowSpec from durations (rounded to whole grid steps)."""
  if not window_seconds:
    return WindowSpec(step_units, step_frames)
  return WindowSpec(step_units, step_frames,
                    window_steps=int(round(window_seconds / step_seconds)),
                    context_steps=int(math.ceil(context_seconds / step_seconds)))


def plan_windows(item: int, num_units: int, spec: WindowSpec) -> list[Window]:
  """The windows of one input of ``num_units`` units, in order."""
  steps = -(-num_units // spec.step_units)  # a partial last step counts
  if not spec.window_steps or steps <= spec.window_steps:
    return [Window(item, 0, num_units, 0, None)]
  core = spec.window_steps - 2 * spec.context_steps
  windows = []
  for core_start in range(0, steps, core):
    core_stop = min(steps, core_start + core)
    start = max(0, core_start - spec.context_steps)
    stop = min(steps, core_stop + spec.context_steps)
    last = core_stop == steps
    windows.append(Window(
        item=item,
        start=start * spec.step_units,
        stop=min(num_units, stop * spec.step_units),
        keep_start=(core_start - start) * spec.step_frames,
        keep_stop=None if last else (core_stop - start) * spec.step_frames))
  return windows


def bucket_length(length: int, buckets: Sequence[int], *,
                  granule: int = 1) -> int:
  """The padded length of an input of ``length`` units: the smallest of
  ``buckets`` that holds it, else ``length`` rounded up to a multiple of
  ``granule`` (past the largest bucket, or when there are no buckets)."""
  for b in sorted(buckets):
    if length <= b:
      return int(b)
  return -(-length // granule) * granule


def length_batches(lengths: Sequence[int], *, max_items: int,
                   max_units: int,
                   pad_to: Optional[Callable[[int], int]] = None
                   ) -> list[list[int]]:
  """Groups indices into batches of similar length.

  Indices are sorted by length, longest first (ties by index, so the plan is
  deterministic); a batch grows while it has fewer than ``max_items`` inputs
  and ``count * padded <= max_units`` (its size once padded), where
  ``padded`` is its longest input or, with ``pad_to``, that input's bucket:
  then a batch holds inputs of one bucket only, so that padded shapes repeat.
  Every batch holds at least one input.
  """
  order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
  padded = (lambda i: pad_to(lengths[i])) if pad_to else (lambda i: lengths[i])
  batches: list[list[int]] = []
  for i in order:
    if batches:
      b = batches[-1]
      longest = padded(b[0])
      if (len(b) < max_items and (len(b) + 1) * longest <= max_units and
          padded(i) == longest):
        b.append(i)
        continue
    batches.append([i])
  return batches


Forward = Callable[..., list]


def run(items: Sequence, forward: Forward, spec: WindowSpec, *,
        max_items: int, max_units: int,
        pad_to: Optional[Callable[[int], int]] = None,
        resolve: Optional[Callable] = None) -> list[Optional[np.ndarray]]:
  """Windows, batches, runs and stitches; one frame array per item.

  Args:
    items: per-input unit arrays (axis 0 is the unit axis; numpy arrays or
      anything sliceable with a length, e.g. tensors on a device).
    forward: maps a list of unit arrays (one batch, any order) to their
      frame arrays, each holding only that input's valid frames. With
      ``pad_to`` it is called as ``forward(inputs, padded_length)``.
    spec: the grid and window sizes.
    max_items: most inputs in one call of ``forward`` (1: unbatched).
    max_units: most padded units in one call of ``forward``.
    pad_to: the padded length of a window of a given length (length
      bucketing: windows are batched with their bucket only).
    resolve: applied to each output of ``forward`` after *all* batches were
      submitted, before stitching (so that ``forward`` may return handles to
      results still being computed, and a device is never left waiting for
      the host between batches).

  Returns:
    For each item, its frames: the concatenated cores of its windows. None
    for an item with no units.
  """
  windows = [w for i, x in enumerate(items) if len(x)
             for w in plan_windows(i, len(x), spec)]
  outputs: list = [None] * len(windows)
  for batch in length_batches([w.stop - w.start for w in windows],
                              max_items=max_items, max_units=max_units,
                              pad_to=pad_to):
    inputs = [items[windows[j].item][windows[j].start:windows[j].stop]
              for j in batch]
    if pad_to is None:
      results = forward(inputs)
    else:
      results = forward(inputs, pad_to(max(len(x) for x in inputs)))
    for j, out in zip(batch, results):
      outputs[j] = out
  if resolve is not None:
    outputs = [resolve(o) for o in outputs]
  pieces: list[list[np.ndarray]] = [[] for _ in items]
  for w, out in zip(windows, outputs):
    pieces[w.item].append(out[w.keep_start:w.keep_stop])
  return [np.concatenate(p, axis=0) if p else None for p in pieces]
