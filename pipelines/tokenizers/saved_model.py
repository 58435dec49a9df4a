"""TF SavedModel tokenizers: how a lab plugs in its own w2v-BERT or SoundStream.

Registered as ``saved_model`` in both roles. The model is any SavedModel
directory (local or any ``tf.io.gfile`` path, e.g. ``gs://``) with this
signature, loaded with ``tf.saved_model.load`` (not Beam's TF model handler,
which needs ``tensorflow_hub`` and cannot load a raw SavedModel under Keras 3):

Required, ``serving_default`` (or the ``signature`` option)::

  semantic:  (waveform: float32[num_samples]) -> {"embeddings": float32[T, D]}
  acoustic:  (waveform: float32[num_samples]) -> {"codes": int32|int64[T, Q]}

``waveform`` is 16 kHz mono in [-1, 1] (the one input may have any name);
``T`` is the contract's count (``num_samples // 640`` semantic at 25 Hz,
``num_samples // 320`` acoustic at 50 Hz) give or take ``2`` frames (brought
to it with :func:`contract.fit_length`); a model further off is an error, not
silently stretched. An output dict with one entry may name it freely.

Optional, ``batched`` (or the ``batch_signature`` option; used by
``embed_batch`` / ``encode_batch`` when present)::

  (waveforms: float32[B, S], lengths: int32[B])
      -> {"embeddings" | "codes": [B, T, ...], "num_frames": int32[B]}

Row ``b`` is ``waveforms[b, :lengths[b]]`` zero-padded; its first
``num_frames[b]`` frames must equal the single-waveform signature's output for
it (the backend checks the frame count, the model owns the masking). Without
it, batches run one waveform at a time.

Optional metadata, as attributes of the saved object (``tf.Variable`` or
constants tracked by the module): ``codebook_size`` (acoustic; else the
``codebook_size`` option is required) and ``layer`` (semantic, recorded in
dataset_info.json). ``D`` and ``Q`` are read from the output of a 1 s probe at
load.

Example, a semantic model exported from any TF code::

  class Export(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def embed(self, waveform):
      return {"embeddings": my_w2v_bert_layer_7(waveform)}   # [T, 1024]
  tf.saved_model.save(m, path, signatures={"serving_default": m.embed})

  emb = make_semantic_embedder("saved_model", path=path)

Long inputs: with ``window_seconds`` set, inputs are processed in windows with
``context_seconds`` of context on each side (``windowing.py``); the default,
0 or None, gives the model the whole input.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Optional, Sequence

import numpy as np

from audiolm_t5x import constants
from audiolm_t5x import contract
from audiolm_t5x.pipelines.tokenizers import base
from audiolm_t5x.pipelines.tokenizers import windowing

FRAME_TOLERANCE = 2  # frames a model may differ from the contract's count


def _tree_digest(path: str) -> str:
  """sha256 over the SavedModel's files (saved_model.pb, variables/...)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  h = hashlib.sha256()
  files = []
  for root, _, names in tf.io.gfile.walk(path):
    files += [os.path.join(root, n) for n in names]
  if not files:
    raise base.TokenizerError(f"no SavedModel at {path}")
  for f in sorted(files):
    h.update(os.path.relpath(f, path).encode("utf-8") + b"\x00")
    with tf.io.gfile.GFile(f, "rb") as fh:
      for block in iter(lambda: fh.read(1 << 22), b""):
        h.update(block)
  return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class SemanticOptions(base.Options):
  """``--semantic_option`` keys of the saved_model backend."""

  path: str = ""
  signature: str = "serving_default"
  batch_signature: Optional[str] = "batched"
  layer: Optional[int] = None
  device: str = "auto"
  window_seconds: Optional[float] = 0
  context_seconds: float = 5.0
  batch_size: int = 32
  batch_seconds: float = 240.0


@dataclasses.dataclass(frozen=True)
class AcousticOptions(base.Options):
  """``--acoustic_option`` keys of the saved_model backend."""

  path: str = ""
  signature: str = "serving_default"
  batch_signature: Optional[str] = "batched"
  codebook_size: Optional[int] = None
  device: str = "auto"
  window_seconds: Optional[float] = 0
  context_seconds: float = 1.0
  batch_size: int = 32
  batch_seconds: float = 480.0


class _SavedModelBackend:
  """Loading, signature checks, windowing and batching for both roles."""

  output_key = ""
  frame_samples = 0
  _runtime_attrs = ("_loaded", "_single", "_batched", "_single_input",
                    "_tf", "_out_dim")

  def __init__(self, options: "SemanticOptions | AcousticOptions"):
    self.options = options
    if not options.path:
      raise ValueError(f"{self.name}: the SavedModel `path` is required")
    if options.device not in ("auto", "cpu", "gpu"):
      raise ValueError(f"{self.name}: device must be auto, cpu or gpu, "
                       f"got {options.device!r}")
    self.path = options.path
    self.signature = options.signature
    self.batch_signature = options.batch_signature
    self.device = options.device
    self.window_seconds = (float(options.window_seconds)
                           if options.window_seconds else None)
    self.context_seconds = float(options.context_seconds)
    self.batch_size = int(options.batch_size)
    self.batch_seconds = float(options.batch_seconds)
    self._digest: Optional[str] = None
    self._clear_runtime()

  @classmethod
  def from_options(cls, options):
    return cls(options)

  # --- Loading ----------------------------------------------------------------

  def load(self) -> None:
    if self._loaded is not None:
      return
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self._tf = tf
    with self._tf_device():
      loaded = tf.saved_model.load(self.path)
    sigs = loaded.signatures
    if self.signature not in sigs:
      raise base.TokenizerError(
          f"{self.path}: no signature {self.signature!r}; it has "
          f"{sorted(sigs)} (see saved_model.py for the expected signature)")
    single = sigs[self.signature]
    inputs = single.structured_input_signature[1]
    if len(inputs) != 1:
      raise base.TokenizerError(
          f"{self.path}: signature {self.signature!r} takes {sorted(inputs)}; "
          "expected one float32 [num_samples] waveform")
    (name, spec), = inputs.items()
    if spec.dtype != tf.float32 or spec.shape.rank != 1:
      raise base.TokenizerError(
          f"{self.path}: input {name!r} of {self.signature!r} is "
          f"{spec.dtype.name}{spec.shape}; expected float32 [num_samples]")
    self._single_input = name
    self._batched = sigs.get(self.batch_signature) if self.batch_signature \
        else None
    if self._batched is not None:
      names = set(self._batched.structured_input_signature[1])
      if names != {"waveforms", "lengths"}:
        raise base.TokenizerError(
            f"{self.path}: batch signature {self.batch_signature!r} takes "
            f"{sorted(names)}; expected waveforms and lengths")
    self._single = single
    self._loaded = loaded
    probe = self._call_single(np.zeros(constants.SAMPLE_RATE, np.float32))
    self._out_dim = int(probe.shape[1])

  def _tf_device(self):
    tf = self._tf
    if self.device == "cpu":
      return tf.device("/CPU:0")
    if self.device == "gpu":
      return tf.device("/GPU:0")
    return tf.device("/GPU:0" if tf.config.list_logical_devices("GPU")
                     else "/CPU:0")

  def _pick(self, outputs: dict, what: str):
    if self.output_key in outputs:
      return outputs[self.output_key]
    rest = [k for k in outputs if k != "num_frames"]
    if len(rest) == 1:
      return outputs[rest[0]]
    raise base.TokenizerError(
        f"{self.path}: {what} returns {sorted(outputs)}; expected "
        f"{self.output_key!r}")

  def _call_single(self, waveform: np.ndarray) -> np.ndarray:
    with self._tf_device():
      out = self._single(**{self._single_input: self._tf.constant(waveform)})
    value = np.asarray(self._pick(out, self.signature))
    if value.ndim != 2:
      raise base.TokenizerError(
          f"{self.path}: {self.signature!r} returned shape {value.shape} for "
          f"{len(waveform)} samples; expected [T, {self._width_name}]")
    return value

  def _call_batched(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
    lengths = np.asarray([len(x) for x in inputs], np.int32)
    batch = np.zeros((len(inputs), lengths.max()), np.float32)
    for i, x in enumerate(inputs):
      batch[i, :len(x)] = x
    with self._tf_device():
      out = self._batched(waveforms=self._tf.constant(batch),
                          lengths=self._tf.constant(lengths))
    value = np.asarray(self._pick(out, self.batch_signature))
    if "num_frames" not in out:
      raise base.TokenizerError(
          f"{self.path}: {self.batch_signature!r} returns {sorted(out)}; "
          "expected num_frames beside the frames")
    frames = np.asarray(out["num_frames"])
    return [value[i, :frames[i]] for i in range(len(inputs))]

  # --- Running ----------------------------------------------------------------

  def _fingerprint(self) -> str:
    if self._digest is None:
      self._digest = _tree_digest(self.path)
    return base.fingerprint_of(
        {"name": self.name, "role": self.role, "signature": self.signature,
         "window_seconds": self.window_seconds,
         "context_seconds": self.context_seconds}, self._digest)

  def _run(self, waveforms: Sequence[np.ndarray], batched: bool
           ) -> list[np.ndarray]:
    self.load()
    waveforms = [base.check_waveform(w) for w in waveforms]
    spec = windowing.spec_from_seconds(
        step_units=self.frame_samples, step_frames=1,
        step_seconds=self.frame_samples / constants.SAMPLE_RATE,
        window_seconds=self.window_seconds,
        context_seconds=self.context_seconds)
    use_batched = batched and self._batched is not None

    def forward(inputs):
      if use_batched and len(inputs) > 1:
        return self._call_batched(inputs)
      return [self._call_single(x) for x in inputs]

    counts = [base.expected_frames(self.role, len(w)) for w in waveforms]
    frames = windowing.run(
        [w if t else w[:0] for w, t in zip(waveforms, counts)], forward, spec,
        max_items=self.batch_size if use_batched else 1,
        max_units=max(1, int(self.batch_seconds * constants.SAMPLE_RATE)))
    out = []
    for w, t, f in zip(waveforms, counts, frames):
      if not t:
        out.append(np.zeros((0, self._out_dim), self._dtype))
        continue
      if abs(len(f) - t) > FRAME_TOLERANCE:
        raise base.TokenizerError(
            f"{self.path}: {len(f)} frames for {len(w)} samples; the contract "
            f"needs {t} (at most {FRAME_TOLERANCE} off)")
      out.append(contract.fit_length(f, t).astype(self._dtype))
    return out


@base.register_semantic("saved_model")
class SavedModelEmbedder(_SavedModelBackend, base.SemanticEmbedder):
  """A SavedModel: 16 kHz waveform -> [T, D] float32 embeddings at 25 Hz."""

  output_key = "embeddings"
  frame_samples = constants.SEMANTIC_FRAME_SAMPLES
  _width_name = "D"
  _dtype = np.float32
  Options = SemanticOptions

  @property
  def layer(self) -> Optional[int]:
    return self.options.layer

  @property
  def dim(self) -> int:
    self.load()
    return self._out_dim

  def info(self) -> dict:
    self.load()
    layer = self.layer
    if layer is None and hasattr(self._loaded, "layer"):
      layer = int(np.asarray(self._loaded.layer))
    return {"name": self.name, "fingerprint": self._fingerprint(),
            "path": self.path, "signature": self.signature,
            "rate_hz": constants.SEMANTIC_RATE_HZ, "dim": self.dim,
            "layer": layer, "window_seconds": self.window_seconds,
            "context_seconds": self.context_seconds}

  def embed(self, waveform: np.ndarray) -> np.ndarray:
    return self._run([waveform], batched=False)[0]

  def embed_batch(self, waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
    return self._run(waveforms, batched=True)


@base.register_acoustic("saved_model")
class SavedModelTokenizer(_SavedModelBackend, base.AcousticTokenizer):
  """A SavedModel: 16 kHz waveform -> [T, Q] codes at 50 Hz."""

  output_key = "codes"
  frame_samples = constants.ACOUSTIC_FRAME_SAMPLES
  _width_name = "Q"
  _dtype = np.int64
  Options = AcousticOptions

  @property
  def _codebook_size(self) -> Optional[int]:
    return self.options.codebook_size

  @property
  def levels(self) -> int:
    self.load()
    return self._out_dim

  @property
  def codebook_size(self) -> int:
    if self._codebook_size is not None:
      return int(self._codebook_size)
    self.load()
    if hasattr(self._loaded, "codebook_size"):
      return int(np.asarray(self._loaded.codebook_size))
    raise base.TokenizerError(
        f"{self.path}: the model has no codebook_size attribute; pass the "
        "codebook_size option")

  def info(self) -> dict:
    return {"name": self.name, "fingerprint": self._fingerprint(),
            "path": self.path, "signature": self.signature,
            "rate_hz": constants.ACOUSTIC_RATE_HZ, "levels": self.levels,
            "codebook_size": self.codebook_size,
            "window_seconds": self.window_seconds,
            "context_seconds": self.context_seconds}

  def encode(self, waveform: np.ndarray) -> np.ndarray:
    codes = self._run([waveform], batched=False)[0]
    self._check_range(codes)
    return codes

  def encode_batch(self, waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
    out = self._run(waveforms, batched=True)
    for codes in out:
      self._check_range(codes)
    return out

  def _check_range(self, codes: np.ndarray) -> None:
    if codes.size and (codes.min() < 0 or codes.max() >= self.codebook_size):
      raise base.TokenizerError(
          f"{self.path}: codes in [{codes.min()}, {codes.max()}], expected "
          f"[0, {self.codebook_size})")
