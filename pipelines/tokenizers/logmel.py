"""Log-mel semantic embedder: the weight-free baseline (GSLM's "LogMel" units).

Each 25 Hz frame ``t`` is the log mel spectrum of an 80 ms Hann window centred
on the middle of its 40 ms hop, i.e. 16 kHz samples
``[640 t - 320, 640 t + 960)``, zero outside the recording. Frames are local,
so the streaming form (:meth:`LogMelEmbedder.new_stream`) gives exactly the
frames of whole-file processing, in bounded memory.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from audiolm_t5x import constants
from audiolm_t5x import contract
from audiolm_t5x.pipelines.tokenizers import base

_HOP = constants.SEMANTIC_FRAME_SAMPLES  # 640
_WINDOW = 2 * _HOP  # 1280 samples = 80 ms
_LEFT = (_WINDOW - _HOP) // 2  # 320 samples of context before each hop
_FFT = 2048


@base.register_semantic("logmel")
class LogMelEmbedder(base.SemanticEmbedder):
  """16 kHz audio -> [T_s, num_mel_bins] log-mel features at 25 Hz."""

  @dataclasses.dataclass(frozen=True)
  class Options(base.Options):
    num_mel_bins: int = 80
    lower_hz: float = 20.0
    upper_hz: float = 8000.0

  streaming = True

  def __init__(self, num_mel_bins: int = 80, lower_hz: float = 20.0,
               upper_hz: float = 8000.0):
    self.num_mel_bins = int(num_mel_bins)
    self.lower_hz = float(lower_hz)
    self.upper_hz = float(upper_hz)
    self._mel = None
    self._window = None

  def load(self) -> None:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    self._mel = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=self.num_mel_bins, num_spectrogram_bins=_FFT // 2 + 1,
        sample_rate=constants.SAMPLE_RATE, lower_edge_hertz=self.lower_hz,
        upper_edge_hertz=self.upper_hz, dtype=tf.float64).numpy()
    n = np.arange(_WINDOW)
    self._window = 0.5 - 0.5 * np.cos(2 * np.pi * n / _WINDOW)  # periodic Hann

  @property
  def dim(self) -> int:
    return self.num_mel_bins

  def _settings(self) -> dict:
    return {"num_mel_bins": self.num_mel_bins, "lower_hz": self.lower_hz,
            "upper_hz": self.upper_hz, "window": _WINDOW, "hop": _HOP,
            "fft": _FFT}

  def info(self) -> dict:
    return {"name": self.name, "rate_hz": constants.SEMANTIC_RATE_HZ,
            "dim": self.dim, "layer": None, **self._settings(),
            "fingerprint": base.fingerprint_of("logmel", self._settings())}

  def _frames(self, padded: np.ndarray, count: int) -> np.ndarray:
    """Features of the first ``count`` windows of a left-padded signal."""
    if self._mel is None:
      self.load()
    if count == 0:
      return np.zeros([0, self.dim], np.float32)
    idx = np.arange(count)[:, None] * _HOP + np.arange(_WINDOW)[None, :]
    frames = padded[idx].astype(np.float64) * self._window
    power = np.abs(np.fft.rfft(frames, n=_FFT, axis=-1)) ** 2
    return np.log(power @ self._mel + 1e-6).astype(np.float32)

  def embed(self, waveform: np.ndarray) -> np.ndarray:
    stream = self.new_stream()
    head = stream.push(base.check_waveform(waveform))
    return np.concatenate([head, stream.finish()])

  def new_stream(self) -> "_LogMelStream":
    return _LogMelStream(self)


class _LogMelStream(base.FrameStream):
  """Keeps the samples of windows not yet complete (at most 80 ms)."""

  def __init__(self, embedder: LogMelEmbedder):
    self._e = embedder
    self._buf = np.zeros([_LEFT], np.float32)  # left zero context
    self._total = 0  # real samples pushed
    self._done = 0  # frames emitted

  def _emit(self, count: int) -> np.ndarray:
    out = self._e._frames(self._buf, count)  # pylint: disable=protected-access
    self._buf = self._buf[count * _HOP:]
    self._done += count
    return out

  def push(self, samples: np.ndarray) -> np.ndarray:
    samples = base.check_waveform(samples)
    self._buf = np.concatenate([self._buf, samples])
    self._total += samples.shape[0]
    ready = max(0, (self._buf.shape[0] - _WINDOW) // _HOP + 1)
    return self._emit(ready)

  def finish(self) -> np.ndarray:
    remaining = contract.num_semantic_frames(self._total) - self._done
    if remaining <= 0:
      return np.zeros([0, self._e.dim], np.float32)
    need = (remaining - 1) * _HOP + _WINDOW
    if self._buf.shape[0] < need:
      self._buf = np.pad(self._buf, (0, need - self._buf.shape[0]))
    return self._emit(remaining)
