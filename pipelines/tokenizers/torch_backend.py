"""PyTorch plumbing shared by the public-checkpoint backends.

The backends (``w2v_bert.py``, ``wav2vec2.py``, ``dac.py``, ``encodec.py``)
load a transformers model from a ``save_pretrained`` directory or a hub id
and supply three pieces: ``_load_model``, ``_prepare`` (whole-input units:
samples or feature rows) and ``_forward`` (one padded batch -> per-input
frames). This module does the rest:

* **Files**: hub resolution into the Hugging Face cache, never at import or
  construction (:func:`resolve_model_dir`), and the digests that enter the
  fingerprint (:func:`file_digests`).
* **Options**: :class:`TorchOptions`, a frozen dataclass parsed once from
  ``--semantic_option`` / ``--acoustic_option`` (``base.parse_options``).
* **Batches at fixed shapes**: windows (``windowing.py``) are padded to one of
  a few bucket lengths (``buckets``, seconds), so that shapes repeat: cuDNN's
  plans, the allocator's blocks and, with ``compile=true``, the compiled
  graphs (``torch.compile``, one per bucket and row count; batch rows are
  then padded to quarters of the bucket's most rows) are reused. Padding is masked exactly, so a
  bucketed batch gives each input what it gives alone (tests).
* **Transfers**: inputs go to the device from pinned host memory with
  asynchronous copies; outputs come back on a side stream into pinned memory,
  and are read only after every batch of the call was queued, so the device
  never waits for the host between batches.

Heavy libraries (torch, transformers, huggingface_hub) are imported in
``load`` only. Importing transformers 5 from two threads at once breaks its
lazy loader; the import here holds a process-wide lock.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import re
import threading
from typing import Any, Optional, Sequence

import numpy as np

from audiolm_t5x import constants
from audiolm_t5x import contract
from audiolm_t5x.pipelines.tokenizers import base
from audiolm_t5x.pipelines.tokenizers import windowing

IMPORT_LOCK = threading.Lock()
_WEIGHT_PATTERNS = ("*.json", "*.safetensors", "pytorch_model*.bin")
DTYPES = ("float32", "bfloat16", "float16")
CUDA_BUCKETS = (5.0, 10.0, 20.0, 30.0)  # seconds; the default on CUDA
DEVICES = ("auto", "cpu", "cuda")


def import_transformers(*names: str) -> list[Any]:
  """Imports transformers classes under a lock (its lazy loader is not
  thread-safe on first import)."""
  with IMPORT_LOCK:
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
  with IMPORT_LOCK:
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


@dataclasses.dataclass(frozen=True)
class TorchOptions(base.Options):
  """Options of every transformers backend (``KEY=VALUE``; values are JSON).

  Attributes:
    model: ``save_pretrained`` directory or hub id (default: the backend's).
    revision: hub branch, tag or commit.
    cache_dir: Hugging Face cache (default ``$HF_HUB_CACHE``).
    local_files_only: read the cache only.
    device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
    dtype: the model's precision: float32, bfloat16 or float16.
    tf32: on CUDA in float32, allow TF32 in matmuls and convolutions.
    window_seconds: longest window (0 or null: the whole input).
    context_seconds: context on each side of a window's core.
    batch_size: most windows per forward pass.
    batch_seconds: most padded seconds of audio per forward pass.
    buckets: padded window lengths in seconds (windows are padded to the
      smallest that holds them; longer ones to whole seconds); empty: pad to
      each batch's longest window; null (default): 5, 10, 20, 30 on CUDA and
      none on a CPU (where fixed shapes buy nothing and padding costs).
    compile: ``torch.compile`` the forward pass, one graph per bucket and
      row count (batches then padded to a quarter of the bucket's most rows:
      at most four graphs per bucket).
    compile_backend: torch.compile's backend (``inductor``: generated
      kernels; ``cudagraphs``; ``aot_eager``: graph capture only).
    compile_mode: inductor's mode (null: its default; ``reduce-overhead``:
      also CUDA graphs; ``max-autotune-no-cudagraphs``: tuned kernels, a
      much longer first batch per bucket).
  """

  model: Optional[str] = None
  revision: Optional[str] = None
  cache_dir: Optional[str] = None
  local_files_only: bool = False
  device: str = "auto"
  dtype: str = "float32"
  tf32: bool = False
  window_seconds: Optional[float] = 30.0
  context_seconds: float = 5.0
  batch_size: int = 32
  batch_seconds: float = 240.0
  buckets: Optional[tuple[float, ...]] = None
  compile: bool = False
  compile_backend: str = "inductor"
  compile_mode: Optional[str] = None

  def __post_init__(self):
    if self.device not in DEVICES and not re.fullmatch(r"cuda:\d+",
                                                       self.device):
      raise ValueError(f"device must be one of {', '.join(DEVICES)} or "
                       f"cuda:N, got {self.device!r}")
    if self.dtype not in DTYPES:
      raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got "
                       f"{self.dtype!r}")
    if self.batch_size < 1 or self.batch_seconds <= 0:
      raise ValueError("batch_size must be >= 1 and batch_seconds > 0")
    if any(b <= 0 for b in self.buckets or ()):
      raise ValueError(f"buckets must be positive seconds, got "
                       f"{list(self.buckets)}")


@dataclasses.dataclass(frozen=True)
class SemanticOptions(TorchOptions):
  """Adds ``layer``: the k-th encoder layer's output (1-based; 0 = the input
  of the first layer; default: the backend's)."""

  layer: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class AcousticOptions(TorchOptions):
  """Adds ``levels``: the first Q levels of the residual VQ (default: the
  backend's)."""

  context_seconds: float = 1.0
  batch_seconds: float = 480.0
  levels: Optional[int] = None


class _Pending:
  """A batch's output being copied to pinned host memory on a side stream."""

  def __init__(self, host, event):
    self.host = host
    self._event = event
    self._array = None

  def array(self) -> np.ndarray:
    if self._array is None:
      if self._event is not None:
        self._event.synchronize()
      self._array = self.host.numpy()
    return self._array


@dataclasses.dataclass
class _Slice:
  """Row ``row``, first ``length`` frames, of a pending batch output."""

  pending: _Pending
  row: int
  length: int

  def resolve(self) -> np.ndarray:
    return self.pending.array()[self.row, :self.length]


def _resolve(out):
  return out.resolve() if isinstance(out, _Slice) else out


class TorchBackend:
  """Settings, loading, windowing, bucketing and transfers of the backends."""

  default_model = ""
  model_class = ""
  supports_compile = False
  Options = TorchOptions
  # Per-process state, dropped when pickled (a resolved cache path is one
  # machine's; the worker resolves its own).
  _runtime_attrs = ("_model", "_torch", "_device", "_dtype", "_lock",
                    "_extractor", "_captured", "_conv_lengths", "_resample",
                    "_dir", "_compiled", "_copy_stream", "_device_consts")

  def __init__(self, options: TorchOptions):
    self.options = options
    if options.compile and not self.supports_compile:
      raise ValueError(f"{self.name}: compile=true is supported by w2v_bert "
                       "and dac only")
    self.model = options.model or self.default_model
    self.revision = options.revision
    self.cache_dir = options.cache_dir
    self.local_files_only = options.local_files_only
    self.device = options.device
    self.dtype = options.dtype
    self.window_seconds = (float(options.window_seconds)
                           if options.window_seconds else None)
    self.context_seconds = float(options.context_seconds)
    self.batch_size = int(options.batch_size)
    self.batch_seconds = float(options.batch_seconds)
    self.tf32 = options.tf32
    self._digests: Optional[dict] = None
    self._config: Optional[dict] = None
    self._clear_runtime()

  @classmethod
  def from_options(cls, options: TorchOptions):
    return cls(options)

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

  @property
  def on_accelerator(self) -> bool:
    device = getattr(self, "_device", None)
    return getattr(device, "type", "cpu") == "cuda"

  def load(self) -> None:
    if self._model is not None:
      return
    self._spec()  # bad window settings fail here, before any input
    with IMPORT_LOCK:
      import torch  # pylint: disable=g-import-not-at-top
    self._torch = torch
    if self.device == "auto":
      self._device = torch.device("cuda" if torch.cuda.is_available()
                                  else "cpu")
    else:
      self._device = torch.device(self.device)
    self._dtype = getattr(torch, self.dtype)
    if self._device.type == "cuda":
      self._set_precision_flags()
      self._copy_stream = torch.cuda.Stream(self._device)
    self._lock = threading.Lock()
    model = self._load_model(self.model_dir())
    model.eval()
    self._model = model.to(device=self._device, dtype=self._dtype)
    if self.options.compile:
      import torch._dynamo  # pylint: disable=g-import-not-at-top
      # One graph per bucket (and per unbucketed length past the largest).
      torch._dynamo.config.cache_size_limit = max(  # pylint: disable=protected-access
          torch._dynamo.config.cache_size_limit, 64)  # pylint: disable=protected-access
      self._compiled = torch.compile(self._compute, dynamic=False,
                                     backend=self.options.compile_backend,
                                     mode=self.options.compile_mode)
    else:
      self._compiled = self._compute

  def _set_precision_flags(self) -> None:
    """float32 means float32 unless tf32=True: cuDNN convolutions default to
    TF32 (10-bit mantissa), whose rounding differs between batch shapes and
    flips codes at near-ties. The flags are process-wide, so they are set
    before each run (two backends in one worker may differ)."""
    torch = self._torch
    tf32 = self.tf32 and self.dtype == "float32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32

  def _load_model(self, model_dir: str):
    raise NotImplementedError

  # --- Windowed, bucketed, batched running --------------------------------

  def _spec(self) -> windowing.WindowSpec:
    raise NotImplementedError

  def _units_per_second(self) -> float:
    raise NotImplementedError

  def _buckets(self) -> tuple:
    """The bucket lengths in seconds (``buckets``, or the device's default)."""
    if self.options.buckets is not None:
      return self.options.buckets
    return CUDA_BUCKETS if self._device.type == "cuda" else ()

  def _bucket_units(self) -> list[int]:
    """The bucket lengths in units, on the window grid."""
    step = self._spec().step_units
    return sorted({-(-int(round(b * self._units_per_second())) // step) * step
                   for b in self._buckets()})

  def _pad_to(self, length: int) -> int:
    return windowing.bucket_length(
        length, self._bucket_units(),
        granule=max(1, int(round(self._units_per_second()))))

  def _max_units(self) -> int:
    return max(1, int(self.batch_seconds * self._units_per_second()))

  def _rows(self, padded: int, batched: bool) -> int:
    """Windows per batch of a bucket (the most rows when compiled)."""
    if not batched:
      return 1
    return max(1, min(self.batch_size, self._max_units() // padded))

  def _compiled_rows(self, count: int, padded: int,
                     batched: bool) -> Optional[int]:
    """Rows of a compiled batch of ``count`` windows (None when not
    compiled: the batch keeps its own count): rounded up to a quarter of
    the bucket's most rows, so a bucket has at most four graphs and a
    part-filled batch (the last of a call) pays at most a quarter of a full
    one in padding rows."""
    if not self.options.compile:
      return None
    most = self._rows(padded, batched)
    step = max(1, -(-most // 4))
    return min(most, -(-count // step) * step)

  def _run(self, units: Sequence, batched: bool) -> list[Optional[np.ndarray]]:
    """Model frames of each unit array (windowed; batched or one by one)."""
    bucketed = bool(self._buckets()) and batched
    with self._lock, self._torch.inference_mode():
      if self._device.type == "cuda":
        self._set_precision_flags()
      return windowing.run(
          units, lambda inputs, padded=None: self._forward(
              inputs, padded, batched), self._spec(),
          max_items=self.batch_size if batched else 1,
          max_units=self._max_units(),
          pad_to=self._pad_to if bucketed else None, resolve=_resolve)

  def _forward(self, inputs: list, padded: Optional[int], batched: bool
               ) -> list:
    raise NotImplementedError

  def _compute(self, *tensors):
    """The model's part of a forward pass on padded device tensors (what
    ``compile`` compiles)."""
    raise NotImplementedError

  def _prepare(self, waveform: np.ndarray):
    """Whole-input units (the windowed axis first)."""
    raise NotImplementedError

  def _prepare_all(self, waveforms: Sequence[np.ndarray],
                   frames: Sequence[int]) -> list:
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

  def _to_device(self, array: np.ndarray):
    """A host array on the device: through pinned memory, asynchronously."""
    torch = self._torch
    t = torch.from_numpy(np.ascontiguousarray(array))
    if self._device.type != "cuda":
      return t
    return t.pin_memory().to(self._device, non_blocking=True)

  def _pad(self, inputs: list, padded: Optional[int] = None,
           rows: Optional[int] = None):
    """Zero-padded [rows, padded, ...] batch and [rows, padded] mask on the
    device, and the inputs' lengths. Inputs are host arrays or device
    tensors; rows past the inputs (fixed shapes) are zeros, all valid."""
    torch = self._torch
    lengths = [len(x) for x in inputs]
    padded = padded or max(lengths)
    rows = rows or len(inputs)
    full = lengths + [padded] * (rows - len(inputs))
    tail = tuple(inputs[0].shape[1:])
    if isinstance(inputs[0], np.ndarray):
      batch = np.zeros((rows, padded) + tail, np.float32)
      for i, x in enumerate(inputs):
        batch[i, :len(x)] = x
      batch = self._to_device(batch)
    else:
      batch = torch.zeros((rows, padded) + tail, dtype=torch.float32,
                          device=self._device)
      for i, x in enumerate(inputs):
        batch[i, :len(x)] = x
    valid = self._to_device(np.asarray(full, np.int64))
    mask = (torch.arange(padded, device=self._device)[None, :] <
            valid[:, None]).long()
    return batch.to(self._dtype), mask, valid, lengths

  def _fetch(self, out, lengths: Sequence[int]) -> list:
    """Per-input handles of a [rows, T, ...] device output: row i's first
    ``lengths[i]`` frames, copied to the host without waiting."""
    torch = self._torch
    if self._device.type != "cuda":
      host = out.cpu().numpy()
      return [host[i, :n] for i, n in enumerate(lengths)]
    host = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
    stream = self._copy_stream
    stream.wait_stream(torch.cuda.current_stream(self._device))
    with torch.cuda.stream(stream):
      host.copy_(out, non_blocking=True)
      out.record_stream(stream)
      event = torch.cuda.Event()
      event.record(stream)
    pending = _Pending(host, event)
    return [_Slice(pending, i, n) for i, n in enumerate(lengths)]


# =============================================================================
# Roles
# =============================================================================


class SemanticBackend(TorchBackend, base.SemanticEmbedder):
  """The 50 Hz speech encoders: layer choice, and 50 -> 25 Hz on the device.

  ``_forward`` returns 25 Hz frames: the model's 50 Hz frames, the last
  valid one repeated to an even count, averaged in pairs (what
  ``contract.fit_length`` then pairing does on the host, in float32). So the
  window grid is one pooled frame per ``SEMANTIC_FRAME_SAMPLES`` samples.
  """

  default_layer = 0
  Options = SemanticOptions

  def __init__(self, options: SemanticOptions):
    super().__init__(options)
    self.layer = (self.default_layer if options.layer is None
                  else int(options.layer))
    if self.layer < 0:
      raise ValueError(f"{self.name}: layer must be >= 0, got {self.layer}")

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

  def _keep_layers(self, model) -> None:
    """Drops the encoder layers above ``layer`` (they are never run)."""
    torch = self._torch
    layers = list(model.encoder.layers)
    if self.layer > len(layers):
      raise base.TokenizerError(
          f"{self.name}: layer {self.layer} asked, but {self.model} has "
          f"{len(layers)} layers")
    model.encoder.layers = torch.nn.ModuleList(layers[:self.layer])

  def _pool(self, h, frames):
    """[B, T, D] 50 Hz states with ``frames`` valid per row -> [B, T', D]
    float32 25 Hz frames (row b: ``ceil(frames[b] / 2)`` valid)."""
    torch = self._torch
    h = h.float()
    b, t, d = h.shape
    t2 = t + t % 2
    last = (frames - 1).clamp(min=0)
    idx = torch.minimum(torch.arange(t2, device=h.device)[None, :],
                        last[:, None])
    g = torch.gather(h, 1, idx[:, :, None].expand(b, t2, d))
    return (g[:, 0::2] + g[:, 1::2]) * 0.5

  def embed(self, waveform: np.ndarray) -> np.ndarray:
    return self._embed([waveform], batched=False)[0]

  def embed_batch(self, waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
    return self._embed(waveforms, batched=True)

  def _embed(self, waveforms, batched: bool) -> list[np.ndarray]:
    self.load()
    waveforms = [base.check_waveform(w) for w in waveforms]
    frames = [contract.num_semantic_frames(len(w)) for w in waveforms]
    units = self._prepare_all(waveforms, frames)
    pooled = self._run(units, batched)
    out = []
    for t, p in zip(frames, pooled):
      if not t:
        out.append(np.zeros((0, self.dim), np.float32))
      else:
        out.append(contract.fit_length(p, t).astype(np.float32, copy=False))
    return out


class AcousticBackend(TorchBackend, base.AcousticTokenizer):
  """The codecs: levels, rates, frame rule."""

  default_levels: Optional[int] = None  # None: all of the model's levels
  Options = AcousticOptions

  def __init__(self, options: AcousticOptions):
    super().__init__(options)
    levels = (self.default_levels if options.levels is None
              else options.levels)
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
