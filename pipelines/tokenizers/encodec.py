"""EnCodec 24 kHz (``EncodecModel``): acoustic codes at 75 Hz.

Registered as ``encodec``: input resampled 16 -> 24 kHz
(``scipy.signal.resample_poly``), ``[n * 3 // 640, Q <= 32]`` codes in
``[0, 1024)`` (``facebook/encodec_24khz``; default 8 levels, 6 kbps,
AudioLM's acoustic bitrate). EnCodec is causal: a full frame depends on no
later sample, so padding changes only the partial last frame, which the frame
rule drops; batched codes equal unbatched ones.

EnCodec's 75 Hz does not fit the data contract's acoustic frame rule
(``n // 320``, 50 Hz): the tokenizer returns ``n * 3 // 640`` frames (three
per semantic frame) and says ``rate_hz: 75`` in :meth:`info`; records made
with it need a rate-aware frame rule in ``contract.py``. It is a library-only
codec: the commands' ``--acoustic_backend`` does not offer it (they say why
and name dac and lyra); use it from Python (``make_acoustic_tokenizer``) and
in ``benchmarks/tokenizers_bench.py``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from audiolm_t5x import constants
from audiolm_t5x.pipelines.tokenizers import base
from audiolm_t5x.pipelines.tokenizers import torch_backend


@dataclasses.dataclass(frozen=True)
class EncodecOptions(torch_backend.AcousticOptions):
  """EnCodec's context default is 5 s (its LSTM sees further than DAC)."""

  context_seconds: float = 5.0


@base.register_acoustic("encodec")
class EncodecTokenizer(torch_backend.AcousticBackend):
  """EnCodec 24 kHz (EncodecModel): input resampled 16 -> 24 kHz, 75 Hz.

  Not accepted by data contract v1 (50 Hz acoustic frames), so not offered
  by the commands: see the module docstring.
  """

  nominal_rate_hz = 75.0  # 24 kHz / 320-sample hop

  default_model = "facebook/encodec_24khz"
  model_class = "EncodecModel"
  default_levels = 8  # 6 kbps, AudioLM's acoustic bitrate
  Options = EncodecOptions

  @property
  def max_levels(self) -> int:
    cfg = self.config()
    bits = math.ceil(math.log2(cfg["codebook_size"]))
    return int(1000 * max(cfg["target_bandwidths"]) // (self.rate_hz * bits))

  def _bandwidth(self) -> float:
    """The smallest of the model's bandwidths that gives ``levels`` levels."""
    cfg = self.config()
    per_level = self.rate_hz * math.ceil(math.log2(cfg["codebook_size"]))
    for bw in sorted(cfg["target_bandwidths"]):
      if int(max(1, math.floor(bw * 1000 / per_level))) >= self.levels:
        return bw
    return max(cfg["target_bandwidths"])

  def _settings(self) -> dict:
    return dict(super()._settings(), resampler="scipy.signal.resample_poly")

  def info(self) -> dict:
    return dict(super().info(), bandwidth_kbps=self._bandwidth(),
                resampled_from_hz=constants.SAMPLE_RATE,
                resampler="scipy.signal.resample_poly (Kaiser window)")

  def _load_model(self, model_dir):
    cfg = self.config()
    if (not cfg.get("use_causal_conv", True) or cfg.get("audio_channels", 1)
        != 1 or cfg.get("chunk_length_s")):
      raise base.TokenizerError(
          f"encodec: {self.model} is not a causal mono unchunked model; this "
          "backend takes facebook/encodec_24khz")
    with torch_backend.IMPORT_LOCK:
      from scipy import signal  # pylint: disable=g-import-not-at-top
    g = math.gcd(self.sample_rate, constants.SAMPLE_RATE)
    up, down = self.sample_rate // g, constants.SAMPLE_RATE // g
    self._resample = lambda w: signal.resample_poly(w, up, down).astype(
        np.float32)
    (model_cls,) = torch_backend.import_transformers("EncodecModel")
    return model_cls.from_pretrained(model_dir)

  def _prepare(self, waveform):
    return self._resample(waveform)

  def _forward(self, inputs, padded, batched):
    values, mask, _, lengths = self._pad(inputs, padded)
    codes = self._model.encode(values[:, None, :], padding_mask=mask[:, None, :],
                               bandwidth=self._bandwidth()).audio_codes
    codes = codes[0, :, :self.levels].transpose(1, 2)
    # Causal: full frames do not depend on the padding; drop the partial one.
    return self._fetch(codes, [n // self.hop_length for n in lengths])
