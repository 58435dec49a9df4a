"""w2v-BERT 2.0 (``Wav2Vec2BertModel``): semantic embeddings at 25 Hz.

Registered as ``w2v_bert``: ``[n // 640, 1024]`` float32 for ``n`` samples
(``facebook/w2v-bert-2.0``; pairs of 50 Hz frames averaged). Options:
:class:`W2vBertOptions` (the common ones of ``torch_backend.SemanticOptions``
plus ``features``).

Features: the checkpoint's ``SeamlessM4TFeatureExtractor`` computes a
Kaldi-style log-mel filterbank (25 ms Povey window, 10 ms hop, DC removal,
pre-emphasis 0.97, 512-point FFT, 80 mel bins), normalises each mel bin over
the whole input (mean, variance with ddof=1) and stacks pairs of frames into
160-d rows, one per 50 Hz model frame. Its Python loop over frames is slow
(about 250x real time per core); two faster versions of the same steps:

* ``features=device`` (default): :func:`fbank_torch` on the model's device in
  float64, one input at a time (its normalisation is over the whole input),
  from one pinned, asynchronous copy of the waveforms. Equal to the
  extractor's features within 1e-4 absolute after normalisation (tests run
  the same code on the CPU; BUILD.md section 3 gives the figure on a GPU).
* ``features=host``: :func:`seamless_fbank`, numpy on up to ``cpu_count``
  threads, equal to the extractor's to float32 rounding.

The model runs only up to the kept layer: the layers above ``layer`` are
removed at load, and the encoder's output is that layer's
(``hidden_states[layer]``). AudioLM took layer 7 of w2v-BERT XL's 12-layer MLM
module; w2v-BERT 2.0 is a different 24-layer model, and the default, 17, is
the layer MaskGCT (Wang et al., 2024) quantises with k-means.

Batches: padded windows with an attention mask; padded frames are zeroed
before the Conformer's depthwise convolution, so a batched input gives its
unbatched frames up to float rounding (1e-4 in tests). With ``compile=true``
the feature projection, the kept layers and the pooling are one compiled
graph per bucket.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from audiolm_t5x import constants
from audiolm_t5x.pipelines.tokenizers import base
from audiolm_t5x.pipelines.tokenizers import torch_backend
from audiolm_t5x.pipelines.tokenizers import windowing

_FRAME, _HOP, _FFT, _PREEMPH = 400, 160, 512, 0.97
_FLOOR = 1.192092955078125e-07  # the extractor's log floor (float32 eps)
FEATURES = ("device", "host")


def seamless_fbank(extractor, waveform: np.ndarray, *,
                   block_frames: int = 8192) -> np.ndarray:
  """``SeamlessM4TFeatureExtractor._extract_fbank_features``, vectorised.

  Args:
    extractor: the checkpoint's ``SeamlessM4TFeatureExtractor``.
    waveform: 1-D float32 16 kHz audio.
    block_frames: frames per vectorised block (bounds memory on long audio).

  Returns:
    [num_frames, num_mel_bins] float32 log-mel features (not normalised),
    equal to the extractor's to float32 rounding (tested).
  """
  x = np.asarray(waveform, np.float64).reshape(-1) * 2**15
  n = 1 + (len(x) - _FRAME) // _HOP if len(x) >= _FRAME else 0
  mel = np.asarray(extractor.mel_filters, np.float64)
  window = np.asarray(extractor.window, np.float64)
  # [mel, time] transposed, the extractor's memory layout: numpy's float32
  # sums (the normalisation's mean and variance) then add in the same order.
  out = np.empty((mel.shape[1], n), np.float32).T
  frames = np.lib.stride_tricks.sliding_window_view(x, _FRAME)[::_HOP]
  for start in range(0, n, block_frames):
    f = frames[start:start + block_frames]
    f = f - f.mean(axis=1, keepdims=True)
    g = np.empty_like(f)
    g[:, 0] = f[:, 0] * (1 - _PREEMPH)
    np.subtract(f[:, 1:], _PREEMPH * f[:, :-1], out=g[:, 1:])
    f = g * window
    spec = np.fft.rfft(f, n=_FFT, axis=1).astype(np.complex64)
    power = np.abs(spec, dtype=np.float64) ** 2
    out[start:start + len(f)] = np.log(np.maximum(_FLOOR, power @ mel))
  return out


def fbank_torch(torch, waveform, mel, window):
  """:func:`seamless_fbank` in torch, on ``waveform``'s device.

  Args:
    torch: the torch module.
    waveform: 1-D float tensor of 16 kHz samples.
    mel: [257, num_mel_bins] float64 mel matrix (the extractor's).
    window: [400] float64 Povey window (the extractor's).

  Returns:
    [num_frames, num_mel_bins] float64 log-mel features.
  """
  x = waveform.double() * 2**15
  if x.shape[0] < _FRAME:
    return x.new_zeros((0, mel.shape[1]))
  f = x.unfold(0, _FRAME, _HOP)
  f = f - f.mean(dim=1, keepdim=True)
  f = torch.cat([f[:, :1] * (1 - _PREEMPH), f[:, 1:] - _PREEMPH * f[:, :-1]],
                dim=1) * window
  # The extractor rounds the spectrum to complex64 before the power.
  spec = torch.fft.rfft(f, n=_FFT, dim=1).to(torch.complex64)
  power = spec.abs().double() ** 2
  return torch.log(torch.clamp(power @ mel, min=_FLOOR))


def _relative_key_attention(self, hidden_states, attention_mask=None,
                            relative_position_embeddings=None, **kwargs):
  """``Wav2Vec2BertSelfAttention.forward`` for relative-key positions, the
  same arithmetic in less memory traffic.

  transformers gathers a [T, T, head_size] table of distance embeddings and
  contracts it with the queries (most of the model's GPU time at 30 s). The
  distances are clipped to [-left, right] (64 and 8), so the queries are
  multiplied by those 73 embeddings only and the [T, T] scores gathered from
  that; softmax(QK^T s + bias + mask) V is torch's fused attention. Equal to
  transformers' output within float rounding (tests).
  """
  del relative_position_embeddings, kwargs  # relative_key uses neither
  import torch  # pylint: disable=g-import-not-at-top
  b, t, _ = hidden_states.shape
  shape = (b, t, self.num_heads, self.head_size)
  q = self.linear_q(hidden_states).view(shape).transpose(1, 2)
  k = self.linear_k(hidden_states).view(shape).transpose(1, 2)
  v = self.linear_v(hidden_states).view(shape).transpose(1, 2)
  left, right = (self.left_max_position_embeddings,
                 self.right_max_position_embeddings)
  pos = torch.arange(t, device=q.device)
  index = (pos[None, :] - pos[:, None]).clamp(-left, right) + left
  table = torch.matmul(q, self.distance_embedding.weight.to(q.dtype).t())
  bias = torch.gather(table, 3, index.expand(b, self.num_heads, t, t))
  bias = bias * self.scaling
  if attention_mask is not None:
    if attention_mask.dtype == torch.bool:
      bias = bias.masked_fill(~attention_mask, float("-inf"))
    else:
      bias = bias + attention_mask
  out = torch.nn.functional.scaled_dot_product_attention(
      q, k, v, attn_mask=bias, scale=self.scaling)
  return self.linear_out(out.transpose(1, 2).reshape(b, t, -1)), None


@dataclasses.dataclass(frozen=True)
class W2vBertOptions(torch_backend.SemanticOptions):
  """Adds ``features``: where the filterbank runs, ``device`` (the model's
  device, torch) or ``host`` (numpy threads)."""

  features: str = "device"

  def __post_init__(self):
    super().__post_init__()
    if self.features not in FEATURES:
      raise ValueError(f"features must be one of {', '.join(FEATURES)}, got "
                       f"{self.features!r}")


@base.register_semantic("w2v_bert")
class W2vBertEmbedder(torch_backend.SemanticBackend):
  """w2v-BERT 2.0 (Wav2Vec2BertModel) hidden states, 25 Hz."""

  default_model = "facebook/w2v-bert-2.0"
  model_class = "Wav2Vec2BertModel"
  default_layer = 17
  supports_compile = True
  Options = W2vBertOptions

  # Units are the feature extractor's stacked rows: 160-d (two 10 ms fbank
  # frames of 80 mel bins), one per model frame, 50 Hz; one semantic frame is
  # two rows.
  def _spec(self):
    return windowing.spec_from_seconds(
        step_units=2, step_frames=1, step_seconds=1 / constants.SEMANTIC_RATE_HZ,
        window_seconds=self.window_seconds,
        context_seconds=self.context_seconds)

  def _units_per_second(self):
    return 2 * constants.SEMANTIC_RATE_HZ

  def _load_model(self, model_dir):
    model_cls, fe_cls = torch_backend.import_transformers(
        "Wav2Vec2BertModel", "SeamlessM4TFeatureExtractor")
    if os.path.isfile(os.path.join(model_dir, "preprocessor_config.json")):
      self._extractor = fe_cls.from_pretrained(model_dir)
    else:
      self._extractor = fe_cls()
    model = model_cls.from_pretrained(model_dir)
    if model.intermediate_ffn is not None or model.adapter is not None:
      raise base.TokenizerError(
          f"w2v_bert: {self.model} has an adapter or intermediate FFN after "
          "the encoder; this backend takes the encoder's layers "
          "(facebook/w2v-bert-2.0)")
    self._keep_layers(model)
    torch = self._torch
    for layer in model.encoder.layers:
      attention = layer.self_attn
      if attention.position_embeddings_type == "relative_key":
        attention.forward = _relative_key_attention.__get__(attention)
    self._device_consts = (
        torch.as_tensor(np.asarray(self._extractor.mel_filters, np.float64),
                        device=self._device),
        torch.as_tensor(np.asarray(self._extractor.window, np.float64),
                        device=self._device))
    return model

  # --- Features ---------------------------------------------------------------

  def _normalise_and_stack(self, x, xp):
    # As the extractor does for one input, without padding: per-mel-bin
    # normalisation over the whole input (ddof=1), and stacking of frame
    # pairs (an odd last frame is dropped, as the extractor's own attention
    # mask does).
    x = (x - x.mean(0, keepdims=True)) / xp.sqrt(
        x.var(0, ddof=1, keepdims=True) + 1e-7)
    stride = self._extractor.stride
    x = x[:len(x) // stride * stride]
    return x.reshape(len(x) // stride, -1)

  def _prepare(self, waveform):
    """Host features (numpy): [rows, 160] float32."""
    x = seamless_fbank(self._extractor, waveform)
    return self._normalise_and_stack(x, np).astype(np.float32)

  def _prepare_device(self, waveform):
    """Device features (torch, float64 until the end): [rows, 160]."""
    torch = self._torch
    mel, window = self._device_consts
    x = fbank_torch(torch, waveform, mel, window).float().double()
    stride = self._extractor.stride
    if len(x) < 2:
      return x.new_zeros((0, stride * mel.shape[1])).float()
    x = (x - x.mean(0, keepdim=True)) / torch.sqrt(
        x.var(0, unbiased=True, keepdim=True) + 1e-7)
    x = x[:len(x) // stride * stride]
    return x.reshape(len(x) // stride, -1).float()

  def _prepare_all(self, waveforms, frames):
    if self.options.features == "host":
      return super()._prepare_all(waveforms, frames)
    torch = self._torch
    todo = [i for i, t in enumerate(frames) if t]
    units = [np.zeros((0,), np.float32) for _ in waveforms]
    if not todo:
      return units
    with torch.inference_mode():
      flat = self._to_device(np.concatenate([waveforms[i] for i in todo]))
      start = 0
      for i in todo:
        n = len(waveforms[i])
        units[i] = self._prepare_device(flat[start:start + n])
        start += n
    return units

  # --- Model ------------------------------------------------------------------

  def _compute(self, feats, mask, frames):
    h, _ = self._model.feature_projection(feats)
    h = self._model.encoder(h, attention_mask=mask).last_hidden_state
    return self._pool(h, frames)

  def _forward(self, inputs, padded, batched):
    rows = self._compiled_rows(len(inputs), padded, batched)
    feats, mask, valid, lengths = self._pad(inputs, padded, rows)
    pooled = self._compiled(feats, mask, valid)
    return self._fetch(pooled, [-(-n // 2) for n in lengths])
