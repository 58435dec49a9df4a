"""Tokenizer backends on public PyTorch checkpoints, through transformers.

========== ======== ===================================== ==========================
name       role     model class (default checkpoint)      output
========== ======== ===================================== ==========================
w2v_bert   semantic Wav2Vec2BertModel +                   [n // 640, 1024] float32,
                    SeamlessM4TFeatureExtractor           25 Hz (pairs of 50 Hz
                    (``facebook/w2v-bert-2.0``)           frames averaged)
hubert     semantic HubertModel                           [n // 640, 768], 25 Hz
                    (``facebook/hubert-base-ls960``)
wav2vec2   semantic Wav2Vec2Model                         [n // 640, 1024], 25 Hz
                    (``facebook/wav2vec2-large-lv60``)
dac        acoustic DacModel (``descript/dac_16khz``)     [n // 320, Q <= 12] codes
                                                          in [0, 1024), 50 Hz
encodec    acoustic EncodecModel                          [n * 3 // 640, Q <= 32]
                    (``facebook/encodec_24khz``)          codes in [0, 1024), 75 Hz
========== ======== ===================================== ==========================

Example::

  emb = make_semantic_embedder("w2v_bert", layer=17, device="auto")
  emb.load()                          # once per worker
  feats = emb.embed_batch(waveforms)  # one [n_i // 640, 1024] array each

Weights: ``model`` is a local directory in ``save_pretrained`` layout or a
Hugging Face hub id. A hub id is resolved at :meth:`load` (or at the first
:meth:`info`), never at import, through ``huggingface_hub.snapshot_download``
into the Hugging Face cache (``$HF_HUB_CACHE``, by default
``~/.cache/huggingface/hub``; the ``cache_dir`` option overrides it); with
``local_files_only=True`` or ``HF_HUB_OFFLINE=1`` only the cache is read. Only
``*.json`` and ``*.safetensors`` / ``pytorch_model*.bin`` files are fetched
(not, e.g., w2v-BERT 2.0's fairseq2 ``conformer_shaw.pt``). The fingerprint
covers the backend's settings and the sha256 of those files (read from the
cache's blob names where the cache has them, hashed otherwise).

Semantic layer: ``layer=k`` takes the output of the k-th encoder layer
(1-based; ``0`` is the input of the first layer), which is transformers'
``hidden_states[k]``. The layers above ``k`` are removed at load, so they cost
nothing. AudioLM took layer 7 of w2v-BERT XL's 12-layer MLM module; w2v-BERT
2.0 is a different 24-layer model, and the default, 17, is the layer MaskGCT
(Wang et al., 2024) quantises with k-means after per-dimension
standardisation. HuBERT base's default, 6, and wav2vec 2.0 large's, 14, are
the layers GSLM (Lakhotia et al., 2021) clusters.

50 Hz -> 25 Hz: the model's 50 Hz frames are brought to ``2 * (n // 640)``
with :func:`contract.fit_length` (repeating the last frame where the model
gives one frame fewer) and averaged in pairs, so semantic frame ``t`` is the
mean of model frames ``2t`` and ``2t + 1`` and covers samples
``[640 t, 640 t + 640)``.

Long audio: inputs longer than ``window_seconds`` are processed in windows
whose cores tile the input and which see ``context_seconds`` more audio on
each side (see ``windowing.py``); ``window_seconds=0`` gives the model the
whole input, however long (the registry drops options that are None). Utterance-level normalisation (w2v-BERT's
per-mel-bin mean and variance, wav2vec 2.0's waveform normalisation, EnCodec's
resampling) is computed on the whole input first, so only the model's context
is limited by windowing. For DAC, whose receptive field is about 0.2 s, the
default 1 s of context makes windowed codes equal to whole-file codes; for the
Transformers the residual difference is measured by
``benchmarks/tokenizers_bench.py --residual`` and stated in
BUILD.md (section 3).

Batching: ``embed_batch`` / ``encode_batch`` sort all windows of all inputs by
length, batch them under ``batch_size`` inputs and ``batch_seconds`` seconds
of padded audio, pad, and return for each input what ``embed`` / ``encode``
return for it alone:

* w2v-BERT, and wav2vec 2.0 / HuBERT models with a layer-normalised feature
  encoder, take an attention mask; the padded positions are zeroed and masked
  out, and the convolutional front end is frame-local, so valid frames are the
  unbatched ones up to float rounding (about 1e-6 here; tests use 1e-4).
* HuBERT base and wav2vec 2.0 base normalise their first convolution over
  time (GroupNorm), which padding would change: their convolutional front end
  runs per input, at its own length, and only the Transformer is batched.
* DAC has no mask. Zero padding at the end of a batch would change the last
  ~10 frames of each shorter input, because each convolution of the
  unbatched model sees zeros beyond the input's end, while in a padded batch
  it sees the previous layer's activations there. The backend masks the input
  of every encoder convolution at each input's own length (computed with the
  convolution's length formula), which reproduces the unbatched zero padding
  exactly, and keeps each input's own frames: codes equal the unbatched ones
  (on CPU; on CUDA in float32 with TF32 off, which ``load`` sets unless
  ``tf32=True``: TF32's rounding differs between batch shapes and flips codes
  at near-ties, 0.5% of them with random weights on an H200).
* EnCodec 24 kHz is causal: a full frame depends on no later sample, so
  padding changes only the partial last frame, which the frame rule drops.

EnCodec's 75 Hz does not fit the data contract's acoustic frame rule
(``n // 320``, 50 Hz): its tokenizer returns ``n * 3 // 640`` frames (three
per semantic frame) and says ``rate_hz: 75`` in :meth:`info`; records made
with it need a rate-aware frame rule in ``contract.py``.

Heavy libraries (torch, transformers, huggingface_hub, scipy.signal) are
imported in :meth:`load` only. Importing transformers 5 from two threads at
once breaks its lazy loader; the import here holds a process-wide lock.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import re
import threading
from typing import Any, Optional, Sequence

import numpy as np

from audiolm_t5x import constants
from audiolm_t5x import contract
from audiolm_t5x.pipelines.tokenizers import base
from audiolm_t5x.pipelines.tokenizers import windowing

_IMPORT_LOCK = threading.Lock()
_WEIGHT_PATTERNS = ("*.json", "*.safetensors", "pytorch_model*.bin")
_DTYPES = ("float32", "bfloat16", "float16")
_DEVICES = ("auto", "cpu", "cuda")


def _import_transformers(*names: str) -> list[Any]:
  """Imports transformers classes under a lock (its lazy loader is not
  thread-safe on first import)."""
  with _IMPORT_LOCK:
    import transformers  # pylint: disable=g-import-not-at-top
    return [getattr(transformers, n) for n in names]


def resolve_model_dir(model: str, *, revision: Optional[str] = None,
                      cache_dir: Optional[str] = None,
                      local_files_only: bool = False) -> str:
  """A local directory holding ``model``'s config and weights.

  Args:
    model: a directory in ``save_pretrained`` layout, or a hub id such as
      ``facebook/w2v-bert-2.0``.
    revision: hub branch, tag or commit (hub ids only).
    cache_dir: Hugging Face cache; default ``$HF_HUB_CACHE``.
    local_files_only: read the cache only (also when ``HF_HUB_OFFLINE=1``).

  Returns:
    ``model`` itself for a directory, else the cache's snapshot directory.
  """
  if os.path.isdir(model):
    return model
  if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", model):
    raise base.TokenizerError(
        f"model {model!r} is neither a directory nor a hub id (org/name)")
  with _IMPORT_LOCK:
    import huggingface_hub  # pylint: disable=g-import-not-at-top
  try:
    return huggingface_hub.snapshot_download(
        repo_id=model, revision=revision, cache_dir=cache_dir,
        local_files_only=local_files_only, allow_patterns=list(_WEIGHT_PATTERNS))
  except Exception as e:  # pylint: disable=broad-except
    where = cache_dir or os.environ.get("HF_HUB_CACHE") or "the default cache"
    raise base.TokenizerError(
        f"could not get model {model!r} (revision {revision or 'main'}) from "
        f"the Hugging Face hub or its cache ({where}): {e}. On a machine "
        f"without network, download it elsewhere (`hf download {model}`) and "
        "copy the cache, or pass a local directory as `model`.") from e


def file_digests(model_dir: str) -> dict[str, str]:
  """sha256 of the config and weight files of ``model_dir``.

  Files in the hub cache are symlinks to ``blobs/<sha256>`` (weights are LFS
  files, named by their sha256), so their digest costs nothing; other files
  are hashed.
  """
  out = {}
  for name in sorted(os.listdir(model_dir)):
    if not name.endswith((".json", ".safetensors", ".bin")):
      continue
    path = os.path.join(model_dir, name)
    real = os.path.realpath(path)
    blob = os.path.basename(real)
    if (os.path.islink(path) and
        os.path.basename(os.path.dirname(real)) == "blobs" and
        re.fullmatch(r"[0-9a-f]{64}", blob)):
      out[name] = blob
    else:
      out[name] = base.sha256_file(path)
  return out


def seamless_fbank(extractor, waveform: np.ndarray, *,
                   block_frames: int = 8192) -> np.ndarray:
  """``SeamlessM4TFeatureExtractor._extract_fbank_features``, vectorised.

  The extractor's Kaldi-style log-mel filterbank (25 ms Povey window, 10 ms
  hop, DC removal, pre-emphasis 0.97, 512-point FFT, 80 mel bins) loops over
  frames in Python, which bounds w2v-BERT on a GPU worker (about 250x real
  time on one core). This computes the same steps on blocks of frames; the
  result equals the extractor's to float32 rounding (tested).

  Args:
    extractor: the checkpoint's ``SeamlessM4TFeatureExtractor``.
    waveform: 1-D float32 16 kHz audio.
    block_frames: frames per vectorised block (bounds memory on long audio).

  Returns:
    [num_frames, num_mel_bins] float32 log-mel features (not normalised).
  """
  frame, hop, fft, pre = 400, 160, 512, 0.97
  x = np.asarray(waveform, np.float64).reshape(-1) * 2**15
  n = 1 + (len(x) - frame) // hop if len(x) >= frame else 0
  mel = np.asarray(extractor.mel_filters, np.float64)
  window = np.asarray(extractor.window, np.float64)
  # [mel, time] transposed, the extractor's memory layout: numpy's float32
  # sums (the normalisation's mean and variance) then add in the same order.
  out = np.empty((mel.shape[1], n), np.float32).T
  frames = np.lib.stride_tricks.sliding_window_view(x, frame)[::hop]
  for start in range(0, n, block_frames):
    f = frames[start:start + block_frames]
    f = f - f.mean(axis=1, keepdims=True)
    g = np.empty_like(f)
    g[:, 0] = f[:, 0] * (1 - pre)
    np.subtract(f[:, 1:], pre * f[:, :-1], out=g[:, 1:])
    f = g * window
    spec = np.fft.rfft(f, n=fft, axis=1).astype(np.complex64)
    power = np.abs(spec, dtype=np.float64) ** 2
    out[start:start + len(f)] = np.log(np.maximum(1.192092955078125e-07,
                                                  power @ mel))
  return out


class _TorchBackend:
  """Settings, loading, windowing and batching shared by the backends here."""

  default_model = ""
  model_class = ""
  # Per-process state, dropped when pickled (a resolved cache path is one
  # machine's; the worker resolves its own).
  _runtime_attrs = ("_model", "_torch", "_device", "_dtype", "_lock",
                    "_extractor", "_captured", "_conv_lengths", "_resample",
                    "_dir")

  def _init_common(self, *, model, revision, cache_dir, local_files_only,
                   device, dtype, window_seconds, context_seconds, batch_size,
                   batch_seconds, tf32) -> None:
    if device not in _DEVICES and not str(device).startswith("cuda:"):
      raise ValueError(f"{self.name}: device must be one of {_DEVICES} or "
                       f"'cuda:N', got {device!r}")
    if dtype not in _DTYPES:
      raise ValueError(f"{self.name}: dtype must be one of {_DTYPES}, "
                       f"got {dtype!r}")
    if batch_size < 1 or batch_seconds <= 0:
      raise ValueError(f"{self.name}: batch_size must be >= 1 and "
                       "batch_seconds > 0")
    self.model = model or self.default_model
    self.revision = revision
    self.cache_dir = cache_dir
    self.local_files_only = bool(local_files_only)
    self.device = device
    self.dtype = dtype
    self.window_seconds = float(window_seconds) if window_seconds else None
    self.context_seconds = float(context_seconds)
    self.batch_size = int(batch_size)
    self.batch_seconds = float(batch_seconds)
    self.tf32 = bool(tf32)
    self._digests: Optional[dict] = None
    self._config: Optional[dict] = None
    self._clear_runtime()


  # --- Files ------------------------------------------------------------------

  def model_dir(self) -> str:
    if self._dir is None:
      self._dir = resolve_model_dir(
          self.model, revision=self.revision, cache_dir=self.cache_dir,
          local_files_only=self.local_files_only)
    return self._dir

  def config(self) -> dict:
    """The model's config.json (read without loading the weights)."""
    if self._config is None:
      path = os.path.join(self.model_dir(), "config.json")
      try:
        with open(path) as f:
          self._config = json.load(f)
      except OSError as e:
        raise base.TokenizerError(
            f"{self.name}: {path} is missing; `model` must be a directory "
            "written by save_pretrained or a hub id") from e
    return self._config

  def _settings(self) -> dict:
    """What, besides the files, decides the output (for the fingerprint)."""
    return {"name": self.name, "model_class": self.model_class,
            "dtype": self.dtype, "window_seconds": self.window_seconds,
            "context_seconds": self.context_seconds}

  def _fingerprint(self) -> str:
    if self._digests is None:
      self._digests = file_digests(self.model_dir())
    return base.fingerprint_of(self._settings(), self._digests)

  def _common_info(self) -> dict:
    return {"name": self.name, "fingerprint": self._fingerprint(),
            "model": self.model, "revision": self.revision,
            "model_class": self.model_class, "dtype": self.dtype,
            "tf32": self.tf32, "window_seconds": self.window_seconds,
            "context_seconds": self.context_seconds}

  # --- Loading ----------------------------------------------------------------

  def load(self) -> None:
    if self._model is not None:
      return
    self._spec()  # bad window settings fail here, before any input
    with _IMPORT_LOCK:
      import torch  # pylint: disable=g-import-not-at-top
    self._torch = torch
    if self.device == "auto":
      self._device = torch.device("cuda" if torch.cuda.is_available()
                                  else "cpu")
    else:
      self._device = torch.device(self.device)
    self._dtype = getattr(torch, self.dtype)
    if self._device.type == "cuda" and self.dtype == "float32":
      # float32 means float32 unless tf32=True: cuDNN convolutions default to
      # TF32 (10-bit mantissa), whose rounding differs between batch shapes
      # and flips codes at near-ties. Process-wide, as torch's flags are.
      torch.backends.cudnn.allow_tf32 = self.tf32
      torch.backends.cuda.matmul.allow_tf32 = self.tf32
    self._lock = threading.Lock()
    model = self._load_model(self.model_dir())
    model.eval()
    self._model = model.to(device=self._device, dtype=self._dtype)

  def _load_model(self, model_dir: str):
    raise NotImplementedError

  # --- Windowed, batched running ------------------------------------------

  def _spec(self) -> windowing.WindowSpec:
    raise NotImplementedError

  def _units_per_second(self) -> float:
    raise NotImplementedError

  def _run(self, units: Sequence[np.ndarray], batched: bool
           ) -> list[Optional[np.ndarray]]:
    """Model frames of each unit array (windowed; batched or one by one)."""
    max_units = max(1, int(self.batch_seconds * self._units_per_second()))
    with self._lock, self._torch.inference_mode():
      return windowing.run(units, self._forward, self._spec(),
                           max_items=self.batch_size if batched else 1,
                           max_units=max_units)

  def _forward(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
    raise NotImplementedError

  def _prepare(self, waveform: np.ndarray) -> np.ndarray:
    """Whole-input features on the host (the windowed units)."""
    raise NotImplementedError

  def _prepare_all(self, waveforms: Sequence[np.ndarray],
                   frames: Sequence[int]) -> list[np.ndarray]:
    """``_prepare`` of each input with frames, on up to ``os.cpu_count()``
    threads (host-side features bound GPU workers otherwise)."""
    todo = [i for i, t in enumerate(frames) if t]
    units = [np.zeros((0,), np.float32) for _ in waveforms]
    workers = min(len(todo), os.cpu_count() or 1)
    if workers > 1:
      with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for i, u in zip(todo, pool.map(lambda i: self._prepare(waveforms[i]),
                                       todo)):
          units[i] = u
    else:
      for i in todo:
        units[i] = self._prepare(waveforms[i])
    return units

  def _pad(self, inputs: list[np.ndarray]):
    """Zero-padded [B, T, ...] tensor and [B, T] mask on the device."""
    torch = self._torch
    lengths = [len(x) for x in inputs]
    batch = np.zeros((len(inputs), max(lengths)) + inputs[0].shape[1:],
                     np.float32)
    mask = np.zeros((len(inputs), max(lengths)), np.int64)
    for i, x in enumerate(inputs):
      batch[i, :len(x)] = x
      mask[i, :len(x)] = 1
    return (torch.from_numpy(batch).to(self._device, self._dtype),
            torch.from_numpy(mask).to(self._device), lengths)


# =============================================================================
# Semantic
# =============================================================================


class _HFSemantic(_TorchBackend, base.SemanticEmbedder):
  """Shared by the 50 Hz speech encoders: layer capture and 50 -> 25 Hz."""

  default_layer = 0

  # One constructor for every semantic backend: its parameters are the
  # options the registry accepts (``--semantic_option=KEY=VALUE``).
  def __init__(self, model: Optional[str] = None, layer: Optional[int] = None,
               device: str = "auto", dtype: str = "float32",
               window_seconds: Optional[float] = 30.0,
               context_seconds: float = 5.0, batch_size: int = 32,
               batch_seconds: float = 240.0, revision: Optional[str] = None,
               cache_dir: Optional[str] = None,
               local_files_only: bool = False, tf32: bool = False):
    self._init_common(
        model=model, revision=revision, cache_dir=cache_dir,
        local_files_only=local_files_only, device=device, dtype=dtype,
        window_seconds=window_seconds, context_seconds=context_seconds,
        batch_size=batch_size, batch_seconds=batch_seconds, tf32=tf32)
    self.layer = self.default_layer if layer is None else int(layer)
    if self.layer < 0:
      raise ValueError(f"{self.name}: layer must be >= 0, got {layer}")

  @property
  def dim(self) -> int:
    return int(self.config()["hidden_size"])

  def _settings(self) -> dict:
    return dict(super()._settings(), layer=self.layer)

  def info(self) -> dict:
    return dict(self._common_info(), rate_hz=constants.SEMANTIC_RATE_HZ,
                model_rate_hz=2 * constants.SEMANTIC_RATE_HZ,
                pooling="mean of 50 Hz frame pairs (2t, 2t+1)",
                dim=self.dim, layer=self.layer,
                num_layers=int(self.config()["num_hidden_layers"]))

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

  def _take_layer(self, lengths: Sequence[int]) -> list[np.ndarray]:
    h = self._captured.pop()
    self._captured.clear()
    h = h.float().cpu().numpy()
    return [h[i, :n] for i, n in enumerate(lengths)]

  def embed(self, waveform: np.ndarray) -> np.ndarray:
    return self._embed([waveform], batched=False)[0]

  def embed_batch(self, waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
    return self._embed(waveforms, batched=True)

  def _embed(self, waveforms, batched: bool) -> list[np.ndarray]:
    self.load()
    waveforms = [base.check_waveform(w) for w in waveforms]
    frames = [contract.num_semantic_frames(len(w)) for w in waveforms]
    units = self._prepare_all(waveforms, frames)
    model_frames = self._run(units, batched)
    out = []
    for t, h in zip(frames, model_frames):
      if not t:
        out.append(np.zeros((0, self.dim), np.float32))
        continue
      h = contract.fit_length(h, 2 * t).astype(np.float32)
      out.append(((h[0::2] + h[1::2]) * np.float32(0.5)))
    return out


@base.register_semantic("w2v_bert")
class W2vBertEmbedder(_HFSemantic):
  """w2v-BERT 2.0 (Wav2Vec2BertModel) hidden states, 25 Hz."""

  default_model = "facebook/w2v-bert-2.0"
  model_class = "Wav2Vec2BertModel"
  default_layer = 17

  # Units are the feature extractor's stacked rows: 160-d (two 10 ms fbank
  # frames of 80 mel bins), one per model frame, 50 Hz.
  def _spec(self):
    return windowing.spec_from_seconds(
        step_units=2, step_frames=2, step_seconds=1 / constants.SEMANTIC_RATE_HZ,
        window_seconds=self.window_seconds,
        context_seconds=self.context_seconds)

  def _units_per_second(self):
    return 2 * constants.SEMANTIC_RATE_HZ

  def _load_model(self, model_dir):
    model_cls, fe_cls = _import_transformers("Wav2Vec2BertModel",
                                             "SeamlessM4TFeatureExtractor")
    if os.path.isfile(os.path.join(model_dir, "preprocessor_config.json")):
      self._extractor = fe_cls.from_pretrained(model_dir)
    else:
      self._extractor = fe_cls()
    model = model_cls.from_pretrained(model_dir)
    self._attach_layer(model)
    return model

  def _prepare(self, waveform):
    # As the extractor does for one input, without padding: fbank, per-mel-bin
    # normalisation over the whole input (ddof=1), and stacking of frame
    # pairs (an odd last frame is dropped, as the extractor's own attention
    # mask does); the fbank vectorised (seamless_fbank).
    x = seamless_fbank(self._extractor, waveform)
    x = (x - x.mean(0, keepdims=True)) / np.sqrt(
        x.var(0, ddof=1, keepdims=True) + 1e-7)
    stride = self._extractor.stride
    x = x[:len(x) // stride * stride]
    return x.reshape(len(x) // stride, -1).astype(np.float32)

  def _forward(self, inputs):
    feats, mask, lengths = self._pad(inputs)
    self._model(input_features=feats, attention_mask=mask)
    return self._take_layer(lengths)


class _Wav2Vec2Family(_HFSemantic):
  """HuBERT and wav2vec 2.0: waveform in, convolutional front end, 50 Hz."""

  extractor_class = "Wav2Vec2FeatureExtractor"

  def _spec(self):
    return windowing.spec_from_seconds(
        step_units=constants.SEMANTIC_FRAME_SAMPLES, step_frames=2,
        step_seconds=1 / constants.SEMANTIC_RATE_HZ,
        window_seconds=self.window_seconds,
        context_seconds=self.context_seconds)

  def _units_per_second(self):
    return constants.SAMPLE_RATE

  def _load_model(self, model_dir):
    model_cls, fe_cls = _import_transformers(self.model_class,
                                             self.extractor_class)
    if os.path.isfile(os.path.join(model_dir, "preprocessor_config.json")):
      self._extractor = fe_cls.from_pretrained(model_dir)
    else:
      self._extractor = fe_cls()
    model = model_cls.from_pretrained(model_dir)
    self._attach_layer(model)
    if model.config.feat_extract_norm == "group":
      self._run_front_end_per_input(model)
    return model

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
      longest = max(o.shape[-1] for o in outs)
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
    # The extractor's normalisation (zero mean, unit variance, where the
    # checkpoint asks for it) over the whole input.
    values = self._extractor(waveform, sampling_rate=constants.SAMPLE_RATE,
                             return_tensors="np")["input_values"]
    return np.asarray(values[0], np.float32)

  def _forward(self, inputs):
    values, mask, lengths = self._pad(inputs)
    self._conv_lengths = lengths
    try:
      self._model(input_values=values, attention_mask=mask)
    finally:
      self._conv_lengths = None
    return self._take_layer([self._num_model_frames(n) for n in lengths])


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


# =============================================================================
# Acoustic
# =============================================================================


class _HFAcoustic(_TorchBackend, base.AcousticTokenizer):
  """Shared by the codecs: levels, rates, frame rule."""

  default_levels: Optional[int] = None  # None: all of the model's levels

  def _init_acoustic(self, levels: Optional[int], **common) -> None:
    self._init_common(**common)
    levels = self.default_levels if levels is None else levels
    self._levels = None if levels is None else int(levels)
    if self._levels is not None and self._levels < 1:
      raise ValueError(f"{self.name}: levels must be >= 1, got {levels}")

  @property
  def sample_rate(self) -> int:
    return int(self.config()["sampling_rate"])

  @property
  def hop_length(self) -> int:
    cfg = self.config()
    ratios = cfg.get("downsampling_ratios") or cfg.get("upsampling_ratios")
    return int(np.prod(ratios))

  @property
  def rate_hz(self) -> float:
    return self.sample_rate / self.hop_length

  def num_frames(self, num_samples: int) -> int:
    """Frames for ``num_samples`` samples at 16 kHz (floor, full frames)."""
    return int(num_samples) * self.sample_rate // (
        constants.SAMPLE_RATE * self.hop_length)

  @property
  def max_levels(self) -> int:
    raise NotImplementedError

  @property
  def levels(self) -> int:
    levels = self.max_levels if self._levels is None else self._levels
    if levels > self.max_levels:
      raise base.TokenizerError(
          f"{self.name}: levels={levels} asked, but {self.model} has "
          f"{self.max_levels}")
    return levels

  @property
  def codebook_size(self) -> int:
    return int(self.config()["codebook_size"])

  def _settings(self) -> dict:
    return dict(super()._settings(), levels=self.levels)

  def info(self) -> dict:
    rate = self.rate_hz
    return dict(self._common_info(), rate_hz=int(rate) if rate.is_integer()
                else rate, levels=self.levels,
                codebook_size=self.codebook_size,
                model_sample_rate=self.sample_rate,
                frame_rule=(f"n * {self.sample_rate} // "
                            f"({constants.SAMPLE_RATE} * {self.hop_length})"))

  def _spec(self):
    return windowing.spec_from_seconds(
        step_units=self.hop_length, step_frames=1,
        step_seconds=self.hop_length / self.sample_rate,
        window_seconds=self.window_seconds,
        context_seconds=self.context_seconds)

  def _units_per_second(self):
    return self.sample_rate

  def _prepare(self, waveform: np.ndarray) -> np.ndarray:
    return waveform

  def encode(self, waveform: np.ndarray) -> np.ndarray:
    return self._encode([waveform], batched=False)[0]

  def encode_batch(self, waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
    return self._encode(waveforms, batched=True)

  def _encode(self, waveforms, batched: bool) -> list[np.ndarray]:
    self.load()
    waveforms = [base.check_waveform(w) for w in waveforms]
    frames = [self.num_frames(len(w)) for w in waveforms]
    units = self._prepare_all(waveforms, frames)
    codes = self._run(units, batched)
    return [contract.fit_length(c, t).astype(np.int64) if t
            else np.zeros((0, self.levels), np.int64)
            for t, c in zip(frames, codes)]


@base.register_acoustic("dac")
class DacTokenizer(_HFAcoustic):
  """Descript Audio Codec 16 kHz (DacModel): 50 Hz, 12 levels of 1024."""

  default_model = "descript/dac_16khz"
  model_class = "DacModel"

  def __init__(self, model: Optional[str] = None,
               levels: Optional[int] = None, device: str = "auto",
               dtype: str = "float32",
               window_seconds: Optional[float] = 30.0,
               context_seconds: float = 1.0, batch_size: int = 32,
               batch_seconds: float = 480.0, revision: Optional[str] = None,
               cache_dir: Optional[str] = None,
               local_files_only: bool = False, tf32: bool = False):
    self._init_acoustic(
        levels, model=model, revision=revision, cache_dir=cache_dir,
        local_files_only=local_files_only, device=device, dtype=dtype,
        window_seconds=window_seconds, context_seconds=context_seconds,
        batch_size=batch_size, batch_seconds=batch_seconds, tf32=tf32)

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
    (model_cls,) = _import_transformers("DacModel")
    model = model_cls.from_pretrained(model_dir)
    self._mask_conv_inputs(model.encoder)
    return model

  def _mask_conv_inputs(self, encoder) -> None:
    """Zeroes each encoder convolution's input past each input's own length.

    ``self._conv_lengths`` maps a padded time length to the valid lengths of
    the batch's inputs at that resolution; each hook adds its output's entry
    (by the convolution's length formula), so the chain follows the
    resolutions down to the codes. Unset (None) for an unpadded batch.
    """
    torch = self._torch
    backend = self

    def hook(conv, args):
      lengths = backend._conv_lengths  # pylint: disable=protected-access
      if lengths is None:
        return None
      (x,) = args
      padded = x.shape[-1]
      valid = lengths[padded]
      keep = torch.arange(padded, device=x.device)[None, :] < valid[:, None]
      k, s = conv.kernel_size[0], conv.stride[0]
      p, d = conv.padding[0], conv.dilation[0]
      out = lambda n: (n + 2 * p - d * (k - 1) - 1) // s + 1
      lengths[out(padded)] = out(valid)
      return (x.masked_fill(~keep[:, None, :], 0.0),)

    for module in encoder.modules():
      if isinstance(module, torch.nn.Conv1d):
        module.register_forward_pre_hook(hook)

  def _forward(self, inputs):
    torch = self._torch
    values, _, lengths = self._pad(inputs)
    padded = values.shape[-1]
    if min(lengths) < padded:
      self._conv_lengths = {padded: torch.tensor(lengths,
                                                 device=self._device)}
    try:
      codes = self._model.encode(values[:, None, :],
                                 n_quantizers=self.levels).audio_codes
    finally:
      conv_lengths, self._conv_lengths = self._conv_lengths, None
    codes = codes[:, :self.levels].transpose(1, 2).cpu().numpy()
    if conv_lengths is None:
      return list(codes)
    valid = conv_lengths[codes.shape[1]].tolist()
    return [c[:n] for c, n in zip(codes, valid)]

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


@base.register_acoustic("encodec")
class EncodecTokenizer(_HFAcoustic):
  """EnCodec 24 kHz (EncodecModel): input resampled 16 -> 24 kHz, 75 Hz.

  Not accepted by data contract v1 (50 Hz acoustic frames): see the module
  docstring.
  """

  default_model = "facebook/encodec_24khz"
  model_class = "EncodecModel"
  default_levels = 8  # 6 kbps, AudioLM's acoustic bitrate

  def __init__(self, model: Optional[str] = None,
               levels: Optional[int] = None, device: str = "auto",
               dtype: str = "float32",
               window_seconds: Optional[float] = 30.0,
               context_seconds: float = 5.0, batch_size: int = 32,
               batch_seconds: float = 480.0, revision: Optional[str] = None,
               cache_dir: Optional[str] = None,
               local_files_only: bool = False, tf32: bool = False):
    self._init_acoustic(
        levels, model=model, revision=revision, cache_dir=cache_dir,
        local_files_only=local_files_only, device=device, dtype=dtype,
        window_seconds=window_seconds, context_seconds=context_seconds,
        batch_size=batch_size, batch_seconds=batch_seconds, tf32=tf32)

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
    with _IMPORT_LOCK:
      from scipy import signal  # pylint: disable=g-import-not-at-top
    g = math.gcd(self.sample_rate, constants.SAMPLE_RATE)
    up, down = self.sample_rate // g, constants.SAMPLE_RATE // g
    self._resample = lambda w: signal.resample_poly(w, up, down).astype(
        np.float32)
    (model_cls,) = _import_transformers("EncodecModel")
    return model_cls.from_pretrained(model_dir)

  def _prepare(self, waveform):
    return self._resample(waveform)

  def _forward(self, inputs):
    values, mask, lengths = self._pad(inputs)
    codes = self._model.encode(values[:, None, :], padding_mask=mask[:, None, :],
                               bandwidth=self._bandwidth()).audio_codes
    codes = codes[0, :, :self.levels].transpose(1, 2).cpu().numpy()
    # Causal: full frames do not depend on the padding; drop the partial one.
    return [c[:n // self.hop_length] for c, n in zip(codes, lengths)]
