"""HuBERT and wav2vec 2.0: semantic embeddings at 25 Hz.

========== ======================================== ====================
name       model class (default checkpoint)         output
========== ======================================== ====================
hubert     HubertModel (``facebook/hubert-base-ls960``)   [n // 640, 768]
wav2vec2   Wav2Vec2Model (``facebook/wav2vec2-large-lv60``) [n // 640, 1024]
========== ======================================== ====================

Waveform in (the extractor's normalisation, where the checkpoint asks for
it, over the whole input), a convolutional front end (400-sample receptive
field every 320 samples, 50 Hz), a Transformer. ``layer=k`` is
``hidden_states[k]`` (HuBERT base's default, 6, and wav2vec 2.0 large's,
14, are the layers GSLM clusters); the layers above are removed at load.

Batches: wav2vec 2.0 / HuBERT models with a layer-normalised front end take
an attention mask (equal to unbatched up to float rounding). HuBERT base and
wav2vec 2.0 base normalise their first convolution over time (GroupNorm),
which padding would change: their front end runs per input at its own
length, and only the Transformer is batched.
"""

from __future__ import annotations

import os

import numpy as np

from audiolm_t5x import constants
from audiolm_t5x.pipelines.tokenizers import base
from audiolm_t5x.pipelines.tokenizers import torch_backend
from audiolm_t5x.pipelines.tokenizers import windowing


class _Wav2Vec2Family(torch_backend.SemanticBackend):
  """Waveform in, convolutional front end, 50 Hz; the layer is captured by a
  hook (the encoder may normalise after its last layer)."""

  extractor_class = "Wav2Vec2FeatureExtractor"

  def _spec(self):
    return windowing.spec_from_seconds(
        step_units=constants.SEMANTIC_FRAME_SAMPLES, step_frames=1,
        step_seconds=1 / constants.SEMANTIC_RATE_HZ,
        window_seconds=self.window_seconds,
        context_seconds=self.context_seconds)

  def _units_per_second(self):
    return constants.SAMPLE_RATE

  def _load_model(self, model_dir):
    model_cls, fe_cls = torch_backend.import_transformers(
        self.model_class, self.extractor_class)
    if os.path.isfile(os.path.join(model_dir, "preprocessor_config.json")):
      self._extractor = fe_cls.from_pretrained(model_dir)
    else:
      self._extractor = fe_cls()
    model = model_cls.from_pretrained(model_dir)
    self._attach_layer(model)
    if model.config.feat_extract_norm == "group":
      self._run_front_end_per_input(model)
    return model

  def _attach_layer(self, model) -> None:
    """Keeps the encoder's layers up to ``layer`` and records its output."""
    torch = self._torch
    layers = list(model.encoder.layers)
    if self.layer > len(layers):
      raise base.TokenizerError(
          f"{self.name}: layer {self.layer} asked, but {self.model} has "
          f"{len(layers)} layers")
    model.encoder.layers = torch.nn.ModuleList(layers[:max(self.layer, 1)])
    self._captured = []

    def keep(h):
      self._captured.append(h[0] if isinstance(h, (tuple, list)) else h)

    if self.layer == 0:
      def pre_hook(module, args, kwargs):  # pylint: disable=unused-argument
        keep(args[0] if args else kwargs["hidden_states"])
      model.encoder.layers[0].register_forward_pre_hook(pre_hook,
                                                        with_kwargs=True)
    else:
      model.encoder.layers[self.layer - 1].register_forward_hook(
          lambda module, args, out: keep(out))

  def _run_front_end_per_input(self, model) -> None:
    """GroupNorm over time in the first convolution makes padding change the
    features: run the convolutional front end on each input at its own
    length and pad its output instead (only the Transformer is batched)."""
    torch = self._torch
    front_end = model.feature_extractor
    whole = front_end.forward
    backend = self

    def per_input(input_values):
      lengths = backend._conv_lengths  # pylint: disable=protected-access
      if not lengths or all(n == input_values.shape[-1] for n in lengths):
        return whole(input_values)
      outs = [whole(input_values[i:i + 1, :n]) for i, n in enumerate(lengths)]
      longest = backend._num_model_frames(input_values.shape[-1])  # pylint: disable=protected-access
      return torch.cat([torch.nn.functional.pad(o, (0, longest - o.shape[-1]))
                        for o in outs])

    front_end.forward = per_input

  def _num_model_frames(self, num_samples: int) -> int:
    cfg = self.config()
    n = num_samples
    for k, s in zip(cfg["conv_kernel"], cfg["conv_stride"]):
      n = (n - k) // s + 1
    return max(n, 0)

  def _prepare(self, waveform):
    values = self._extractor(waveform, sampling_rate=constants.SAMPLE_RATE,
                             return_tensors="np")["input_values"]
    return np.asarray(values[0], np.float32)

  def _forward(self, inputs, padded, batched):
    values, mask, _, lengths = self._pad(inputs, padded)
    self._conv_lengths = lengths
    try:
      self._model(input_values=values, attention_mask=mask)
    finally:
      self._conv_lengths = None
    h = self._captured.pop()
    self._captured.clear()
    frames = [self._num_model_frames(n) for n in lengths]
    pooled = self._pool(h, self._to_device(np.asarray(frames, np.int64)))
    return self._fetch(pooled, [-(-f // 2) for f in frames])


@base.register_semantic("hubert")
class HubertEmbedder(_Wav2Vec2Family):
  """HuBERT (HubertModel) hidden states, 25 Hz."""

  default_model = "facebook/hubert-base-ls960"
  model_class = "HubertModel"
  default_layer = 6


@base.register_semantic("wav2vec2")
class Wav2Vec2Embedder(_Wav2Vec2Family):
  """wav2vec 2.0 (Wav2Vec2Model) hidden states, 25 Hz."""

  default_model = "facebook/wav2vec2-large-lv60"
  model_class = "Wav2Vec2Model"
  default_layer = 14
