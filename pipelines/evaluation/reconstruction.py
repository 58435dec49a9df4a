"""Reconstruction quality of acoustic tokens: encode, decode, score.

Each codec setting (a registered acoustic backend and its options, e.g.
``lyra:levels=16`` or ``lyra:levels=24,pack=2`` or ``dac:model=/path``) goes
through the project's own tokenizer (``pipelines.tokenizers``): ``encode``
then ``decode``; the decoded audio is scored against the original at 16 kHz
with

* ViSQOL v3, speech mode (``visqol-python``; its deep-lattice MOS mapper, the
  C++ tool's default, when ``ai-edge-litert`` is installed, else its
  polynomial mapper: which one ran is recorded). MOS-LQO, about 1 to 4.75.
* PESQ wide-band (``pesq``, ITU-T P.862.2), MOS-LQO 1.04 to 4.64.
* STOI (``pystoi``), 0 to 1.

Before scoring, a decoded signal is aligned to the original by the lag of the
largest cross-correlation within +-``MAX_LAG_SECONDS`` (Lyra's decoder has lag
0 on the team's clips; the lag is recorded), and both are cut to the shorter.

Bitrate of a setting: ``levels * log2(codebook_size) * 50 Hz`` (Lyra 16 / 30 /
46 levels = 3.2 / 6 / 9.2 kbps; ``levels=24, pack=2`` = 12 x 256 = 4.8 kbps).

Semantic tokens: k-means ids of a self-supervised model have no decoder, so
audio cannot be reconstructed from them without training a vocoder on them
(the paper reports ViSQOL 1.1 for w2v-BERT tokens). This project has no such
vocoder; no semantic reconstruction figure is computed (see
:data:`SEMANTIC_NOTE`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Optional, Sequence

import numpy as np

from audiolm_t5x import constants
from audiolm_t5x.pipelines.tokenizers import base

METRICS = ("visqol", "pesq", "stoi")
MAX_LAG_SECONDS = 0.05
MIN_SECONDS = 0.5  # PESQ needs speech to find; shorter clips are rejected
SEMANTIC_NOTE = (
    "Semantic tokens (k-means ids) have no decoder: reconstructing audio from "
    "them needs a vocoder trained on them, which this project does not have. "
    "No semantic reconstruction figure is computed; the paper's ViSQOL for "
    f"w2v-BERT tokens is {constants.PAPER_VISQOL_SEMANTIC}.")


class ReconstructionError(ValueError):
  """An input that cannot be scored; the message says why."""


@dataclasses.dataclass(frozen=True)
class CodecSetting:
  """An acoustic backend with options, as written on the command line."""

  backend: str
  options: tuple  # sorted (key, value) pairs

  @classmethod
  def parse(cls, text: str) -> "CodecSetting":
    """``"lyra:levels=24,pack=2"`` -> CodecSetting("lyra", ...)."""
    from audiolm_t5x.pipelines import options as options_lib  # pylint: disable=g-import-not-at-top

    name, _, rest = text.partition(":")
    if not name:
      raise ValueError(f"codec setting {text!r} has no backend name")
    opts = options_lib.parse_options([p for p in rest.split(",") if p])
    return cls(name, tuple(sorted(opts.items())))

  @property
  def label(self) -> str:
    opts = ",".join(f"{k}={v}" for k, v in self.options if k != "model_dir")
    return f"{self.backend}:{opts}" if opts else self.backend

  def make(self, **extra) -> base.AcousticTokenizer:
    opts = dict(self.options)
    for k, v in extra.items():
      opts.setdefault(k, v)
    return base.make_acoustic_tokenizer(self.backend, **opts)


def bitrate_kbps(tokenizer: base.AcousticTokenizer) -> float:
  """Bits per second of the codes, in kbps."""
  bits = tokenizer.levels * math.log2(tokenizer.codebook_size)
  return bits * constants.ACOUSTIC_RATE_HZ / 1000.0


def align(reference: np.ndarray, decoded: np.ndarray, *,
          max_lag: int) -> tuple[np.ndarray, np.ndarray, int]:
  """Shifts ``decoded`` by the best lag in [-max_lag, max_lag]; cuts both.

  A positive lag means the decoded signal is late by that many samples.
  """
  n = min(reference.shape[0], decoded.shape[0])
  ref, dec = reference[:n].astype(np.float64), decoded[:n].astype(np.float64)
  if max_lag > 0 and n > 2 * max_lag:
    from scipy import signal  # pylint: disable=g-import-not-at-top

    xc = signal.correlate(dec, ref, mode="full", method="fft")
    mid = n - 1
    window = xc[mid - max_lag: mid + max_lag + 1]
    lag = int(np.argmax(window)) - max_lag
  else:
    lag = 0
  if lag > 0:
    dec = dec[lag:]
  elif lag < 0:
    ref = ref[-lag:]
  n = min(ref.shape[0], dec.shape[0])
  return ref[:n], dec[:n], lag


class Scorer:
  """ViSQOL (speech), PESQ (wide-band) and STOI of decoded vs original."""

  def __init__(self, metrics: Sequence[str] = METRICS):
    unknown = set(metrics) - set(METRICS)
    if unknown:
      raise ValueError(f"unknown metrics {sorted(unknown)}; known: {METRICS}")
    self.metrics = tuple(metrics)
    self._visqol = None

  def _visqol_api(self):
    if self._visqol is None:
      import logging  # pylint: disable=g-import-not-at-top
      from visqol import VisqolApi  # pylint: disable=g-import-not-at-top

      logging.getLogger("visqol").setLevel(logging.ERROR)
      self._visqol = VisqolApi()
      self._visqol.create(mode="speech")
    return self._visqol

  def info(self) -> dict:
    out = {"metrics": list(self.metrics)}
    if "visqol" in self.metrics:
      import visqol  # pylint: disable=g-import-not-at-top

      lattice = bool(getattr(self._visqol_api()._manager, "use_lattice_model",  # pylint: disable=protected-access
                             False))
      out["visqol"] = {"version": visqol.__version__, "mode": "speech",
                       "mapper": "lattice" if lattice else "polynomial"}
    return out

  def score(self, reference: np.ndarray, decoded: np.ndarray) -> dict:
    """Metric -> value, plus ``seconds`` (metric -> compute seconds)."""
    rate = constants.SAMPLE_RATE
    for name, x in (("original", reference), ("decoded", decoded)):
      if not np.all(np.isfinite(x)):
        raise ReconstructionError(f"{name} audio has NaN or infinite samples")
    if min(reference.shape[0], decoded.shape[0]) < MIN_SECONDS * rate:
      raise ReconstructionError(
          f"too short to score: {reference.shape[0] / rate:.2f} s, need "
          f"{MIN_SECONDS} s")
    out, seconds = {}, {}
    for m in self.metrics:
      t = time.process_time()
      if m == "visqol":
        out[m] = float(self._visqol_api().measure_from_arrays(
            reference, decoded, rate).moslqo)
      elif m == "pesq":
        from pesq import pesq  # pylint: disable=g-import-not-at-top

        try:
          out[m] = float(pesq(rate, reference, decoded, "wb"))
        except Exception as e:  # pesq raises its own error classes
          raise ReconstructionError(f"PESQ failed: {e}") from e
      elif m == "stoi":
        from pystoi import stoi  # pylint: disable=g-import-not-at-top

        out[m] = float(stoi(reference, decoded, rate, extended=False))
      seconds[m] = time.process_time() - t
    out["seconds"] = seconds
    return out


def reconstruct_and_score(waveform: np.ndarray,
                          tokenizer: base.AcousticTokenizer, scorer: Scorer,
                          *, max_lag_seconds: float = MAX_LAG_SECONDS) -> dict:
  """Encode -> decode -> align -> score one waveform with one codec.

  Returns:
    ``{"visqol": ..., "pesq": ..., "stoi": ..., "lag_samples": int,
    "audio_seconds": float, "seconds": {"encode", "decode", metric...}}``.
  """
  waveform = base.check_waveform(waveform)
  if not np.all(np.isfinite(waveform)):
    raise ReconstructionError("original audio has NaN or infinite samples")
  t = time.process_time()
  codes = tokenizer.encode(waveform)
  t_enc = time.process_time() - t
  t = time.process_time()
  decoded = np.asarray(tokenizer.decode(codes), np.float32)
  t_dec = time.process_time() - t
  ref, dec, lag = align(waveform, decoded, max_lag=int(
      max_lag_seconds * constants.SAMPLE_RATE))
  scores = scorer.score(ref, dec)
  scores["seconds"].update(encode=t_enc, decode=t_dec)
  scores.update(lag_samples=lag,
                audio_seconds=waveform.shape[0] / constants.SAMPLE_RATE,
                frames=int(codes.shape[0]))
  return scores


def describe(setting: CodecSetting,
             tokenizer: Optional[base.AcousticTokenizer]) -> dict:
  """Label, levels, codebook size and bitrate of a setting."""
  out = {"setting": setting.label, "backend": setting.backend}
  if tokenizer is not None:
    out.update(levels=tokenizer.levels, codebook_size=tokenizer.codebook_size,
               bitrate_kbps=bitrate_kbps(tokenizer))
  return out
