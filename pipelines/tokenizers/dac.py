"""Descript Audio Codec 16 kHz (``DacModel``): acoustic codes at 50 Hz.

Registered as ``dac``: ``[n // 320, Q <= 12]`` codes in ``[0, 1024)``
(``descript/dac_16khz``: ratios 2, 4, 5, 8, hop 320). Options:
``torch_backend.AcousticOptions`` (``levels``, default all 12; 1 s of window
context covers the encoder's receptive field of about 0.2 s, so windowed codes
equal whole-file codes).

Batches: DAC takes no mask, and zero padding is not neutral: each
convolution of the unbatched encoder sees zeros past the input's end, but in
a padded batch it would see the previous layer's activations of the padding
(biases, Snake activations), which reaches about 10 frames back from the end.
The encoder here is run module by module with the input of every convolution
zeroed past each input's own length (the convolution's length formula gives
the valid length at each resolution): exactly the unbatched zero padding. So
codes equal the unbatched ones (on CPU, tested; on CUDA in float32 with TF32
off, the default: TF32 and bfloat16 round differently per batch shape and
flip codes at near-ties, see BUILD.md section 3). The residual quantizer
follows ``DacResidualVectorQuantizer``'s arithmetic without its losses. With
``compile=true`` encoder and quantizer are one compiled graph per bucket,
which fuses the Snake activations and the masks.
"""

from __future__ import annotations

import numpy as np

from audiolm_t5x import constants
from audiolm_t5x.pipelines.tokenizers import base
from audiolm_t5x.pipelines.tokenizers import torch_backend


def _out_length(conv, n):
  k, s = conv.kernel_size[0], conv.stride[0]
  p, d = conv.padding[0], conv.dilation[0]
  return (n + 2 * p - d * (k - 1) - 1) // s + 1


@base.register_acoustic("dac")
class DacTokenizer(torch_backend.AcousticBackend):
  """Descript Audio Codec 16 kHz (DacModel): 50 Hz, 12 levels of 1024."""

  default_model = "descript/dac_16khz"
  model_class = "DacModel"
  supports_compile = True

  @property
  def max_levels(self) -> int:
    return int(self.config()["n_codebooks"])

  def _load_model(self, model_dir):
    if (self.sample_rate != constants.SAMPLE_RATE or
        self.hop_length != constants.ACOUSTIC_FRAME_SAMPLES):
      raise base.TokenizerError(
          f"dac: {self.model} runs at {self.sample_rate} Hz with a hop of "
          f"{self.hop_length} samples; this backend takes the 16 kHz model "
          f"(hop {constants.ACOUSTIC_FRAME_SAMPLES}, 50 Hz), e.g. "
          "descript/dac_16khz")
    (model_cls,) = torch_backend.import_transformers("DacModel")
    return model_cls.from_pretrained(model_dir)

  def _convs(self):
    """The encoder's convolutions that change the length, in order."""
    enc = self._model.encoder
    return ([enc.conv1] + [b.conv1 for b in enc.block] + [enc.conv2])

  def _num_codes(self, num_samples: int) -> int:
    n = num_samples
    for conv in self._convs():
      n = _out_length(conv, n)
    return max(n, 0)

  def _compute(self, values, valid):
    """[B, S] samples with ``valid`` per row -> [B, T, levels] codes."""
    torch = self._torch

    def conv(module, h, n):
      keep = torch.arange(h.shape[-1], device=h.device)[None, :] < n[:, None]
      return module(h.masked_fill(~keep[:, None, :], 0.0)), _out_length(
          module, n)

    enc = self._model.encoder
    h, n = conv(enc.conv1, values[:, None, :], valid)
    for block in enc.block:
      for unit in (block.res_unit1, block.res_unit2, block.res_unit3):
        y, _ = conv(unit.conv1, unit.snake1(h), n)
        y, _ = conv(unit.conv2, unit.snake2(y), n)
        pad = (h.shape[-1] - y.shape[-1]) // 2
        if pad > 0:
          h = h[..., pad:-pad]
        h = h + y
      h, n = conv(block.conv1, block.snake1(h), n)
    h, n = conv(enc.conv2, enc.snake1(h), n)
    # DacResidualVectorQuantizer in eval, codes only.
    residual, codes = h, []
    for quantizer in self._model.quantizer.quantizers[:self.levels]:
      latents = quantizer.in_proj(residual)
      quantized, indices = quantizer.decode_latents(latents)
      quantized = quantizer.out_proj(latents + (quantized - latents))
      residual = residual - quantized
      codes.append(indices)
    return torch.stack(codes, dim=2)

  def _prepare_all(self, waveforms, frames):
    """On CUDA: the waveforms as device tensors, from one pinned,
    asynchronous copy of all of them (batches are then padded on the device,
    with no host-side padding or per-batch pinning)."""
    if self._device.type != "cuda":
      return super()._prepare_all(waveforms, frames)
    todo = [i for i, t in enumerate(frames) if t]
    units = [np.zeros((0,), np.float32) for _ in waveforms]
    if todo:
      flat = self._to_device(np.concatenate([waveforms[i] for i in todo]))
      start = 0
      for i in todo:
        units[i] = flat[start:start + len(waveforms[i])]
        start += len(waveforms[i])
    return units

  def _forward(self, inputs, padded, batched):
    rows = self._compiled_rows(len(inputs), padded, batched)
    values, _, valid, lengths = self._pad(inputs, padded, rows)
    codes = self._compiled(values, valid)
    return self._fetch(codes, [self._num_codes(n) for n in lengths])

  def decode(self, codes: np.ndarray) -> np.ndarray:
    """[T, Q] codes (the first Q <= 12 levels) -> T * 320 samples at 16 kHz.

    DAC's decoder gives a few samples fewer than T * 320 (8 for the 16 kHz
    geometry); the end is zero-padded to the exact length.
    """
    self.load()
    torch = self._torch
    codes = np.asarray(codes, np.int64)
    with self._lock, torch.inference_mode():
      audio = self._model.decode(audio_codes=torch.from_numpy(
          codes.T[None]).to(self._device)).audio_values
    audio = audio[0].float().cpu().numpy()[:len(codes) * self.hop_length]
    return np.pad(audio, (0, len(codes) * self.hop_length - len(audio)))
