"""Progress of a local run: inputs done, audio hours, rate and ETA.

Beam's counters show progress on Dataflow's job page; a local run shows
nothing until it ends. Here the job's records and dead letters pass through
:class:`NoteProgressFn`, which every few seconds writes its worker's running
totals to a small JSON file in a folder of the launcher's machine (in-process
and multi-processing workers alike); :class:`ProgressPrinter`, a thread of
the launcher, sums the files and prints one line every ``every_seconds``::

  progress: 1200/5000 inputs (24%), 3.41 h audio, 41.0 h audio per hour, ETA 0:05:33

Only for runs on this machine (:func:`options.runs_in_process`).
"""

from __future__ import annotations

import glob
import json
import os
import sys
import threading
import time
import uuid
from typing import Optional, TextIO

import apache_beam as beam

from audiolm_t5x import constants


class NoteProgressFn(beam.DoFn):
  """Passes elements through; counts them (and their audio) to ``folder``."""

  def __init__(self, folder: str, *, flush_seconds: float = 2.0):
    self._folder = folder
    self._flush_seconds = flush_seconds

  def setup(self):
    self._path = os.path.join(self._folder, f"{uuid.uuid4().hex}.json")
    self._inputs = 0
    self._samples = 0
    self._last = 0.0

  def _flush(self):
    tmp = self._path + ".tmp"
    with open(tmp, "w") as f:
      json.dump({"inputs": self._inputs, "samples": self._samples}, f)
    os.replace(tmp, self._path)
    self._last = time.monotonic()

  def process(self, element):
    self._inputs += 1
    self._samples += int(getattr(element, "num_samples", 0) or 0)
    if time.monotonic() - self._last >= self._flush_seconds:
      self._flush()
    yield element

  def finish_bundle(self):
    self._flush()


def totals(folder: str) -> tuple[int, int]:
  """(inputs, samples) summed over the workers' files in ``folder``."""
  inputs = samples = 0
  for path in glob.glob(os.path.join(folder, "*.json")):
    try:
      with open(path) as f:
        d = json.load(f)
    except (OSError, ValueError):  # being replaced
      continue
    inputs += d["inputs"]
    samples += d["samples"]
  return inputs, samples


def _clock(seconds: float) -> str:
  seconds = int(seconds)
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def describe(inputs: int, samples: int, *, total: Optional[int],
             elapsed: float) -> str:
  """One progress line."""
  hours = samples / constants.SAMPLE_RATE / 3600
  line = f"progress: {inputs}"
  if total:
    line += f"/{total} inputs ({100 * inputs / total:.0f}%)"
  else:
    line += " inputs"
  line += f", {hours:.2f} h audio"
  if elapsed > 0 and inputs:
    line += f", {hours / (elapsed / 3600):.1f} h audio per hour"
    if total and inputs < total:
      line += f", ETA {_clock((total - inputs) * elapsed / inputs)}"
  return line


class ProgressPrinter:
  """Context manager: a thread printing :func:`describe` lines."""

  def __init__(self, folder: str, *, total: Optional[int],
               every_seconds: float = 10.0, out: Optional[TextIO] = None):
    self._folder = folder
    self._total = total
    self._every = every_seconds
    self._out = out or sys.stderr
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._loop, daemon=True)
    self._start = 0.0
    self._last_line = ""

  def _print(self):
    inputs, samples = totals(self._folder)
    line = describe(inputs, samples, total=self._total,
                    elapsed=time.monotonic() - self._start)
    if line != self._last_line:
      print(line, file=self._out, flush=True)
      self._last_line = line

  def _loop(self):
    while not self._stop.wait(self._every):
      self._print()

  def __enter__(self):
    os.makedirs(self._folder, exist_ok=True)
    self._start = time.monotonic()
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()
    return False
