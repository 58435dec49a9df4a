"""The tokenizer interface shared by every backend, and its registry.

Two roles:

* a **semantic embedder** maps 16 kHz mono float32 audio to ``[T_s, D]``
  float32 embeddings at 25 Hz (``T_s = contract.num_semantic_frames(n)``);
  a :class:`~audiolm_t5x.pipelines.tokenizers.kmeans.KMeansCodebook` turns
  them into semantic ids.
* an **acoustic tokenizer** maps the same audio to ``[T_a, Q]`` integer codes
  in ``[0, N)`` at 50 Hz (``T_a = contract.num_acoustic_frames(n)``).

Backends are constructed cheaply with picklable settings (so a Beam DoFn can
carry them to workers) and load their model in :meth:`load`, once per worker.
Each one describes itself in :meth:`info` (name, fingerprint, rates, sizes)
for ``dataset_info.json``.

Batching: :meth:`embed_batch` / :meth:`encode_batch` take a list of waveforms
and return one array per waveform, equal to the unbatched result (within a
tolerance a backend states). The default loops.

Streaming: backends whose output is frame-local or causal may return a
:class:`FrameStream` from :meth:`new_stream`, so that hour-long recordings are
processed in bounded memory with the same frames as whole-file processing.

Registry: ``@register_semantic("name")`` / ``@register_acoustic("name")`` on a
class; :func:`make_semantic_embedder` / :func:`make_acoustic_tokenizer` build
one from a name and keyword options (unknown options are an error naming the
backend and what it accepts).
"""

from __future__ import annotations

import abc
import hashlib
import inspect
import json
from typing import Any, Callable, Optional, Sequence

import numpy as np

from audiolm_t5x import contract

SEMANTIC = "semantic"
ACOUSTIC = "acoustic"


class TokenizerError(RuntimeError):
  """A tokenizer could not be loaded or could not process an input."""


class FrameStream(abc.ABC):
  """Incremental processing of one recording.

  ``push`` takes the next block of samples (any length) and returns the frames
  that are complete; ``finish`` returns the rest. The concatenation of all
  returned frames equals the whole-file result for the same samples.
  """

  @abc.abstractmethod
  def push(self, samples: np.ndarray) -> np.ndarray:
    ...

  @abc.abstractmethod
  def finish(self) -> np.ndarray:
    ...


class _Backend(abc.ABC):
  """Shared parts of both roles."""

  role: str = ""
  name: str = ""
  # True where new_stream() returns a FrameStream (frame-local or causal).
  streaming: bool = False
  # Attributes that hold loaded models: reset on construction and never
  # pickled, so settings travel to Beam workers and each loads its own model.
  _runtime_attrs: tuple = ()

  def _clear_runtime(self) -> None:
    for a in self._runtime_attrs:
      setattr(self, a, None)

  def __getstate__(self) -> dict:
    state = dict(self.__dict__)
    for a in self._runtime_attrs:
      state[a] = None
    return state

  def load(self) -> None:
    """Loads model weights; called once per worker before any input."""

  @abc.abstractmethod
  def info(self) -> dict:
    """Name, fingerprint, rate and sizes, as stored in dataset_info.json."""

  def new_stream(self) -> Optional[FrameStream]:
    """A stream for bounded-memory processing, or None if not streaming."""
    return None

  @property
  def fingerprint(self) -> str:
    return self.info()["fingerprint"]


class SemanticEmbedder(_Backend):
  """16 kHz waveform -> [T_s, D] float32 embeddings at 25 Hz."""

  role = SEMANTIC

  @property
  @abc.abstractmethod
  def dim(self) -> int:
    ...

  @abc.abstractmethod
  def embed(self, waveform: np.ndarray) -> np.ndarray:
    """Returns exactly ``num_semantic_frames(len(waveform))`` rows."""

  def embed_batch(self, waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [self.embed(w) for w in waveforms]


class AcousticTokenizer(_Backend):
  """16 kHz waveform -> [T_a, Q] int64 codes in [0, N) at 50 Hz."""

  role = ACOUSTIC

  @property
  @abc.abstractmethod
  def levels(self) -> int:
    """Q, the number of code levels per frame."""

  @property
  @abc.abstractmethod
  def codebook_size(self) -> int:
    """N, the number of codes per level."""

  @abc.abstractmethod
  def encode(self, waveform: np.ndarray) -> np.ndarray:
    """Returns exactly ``num_acoustic_frames(len(waveform))`` rows."""

  def encode_batch(self, waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [self.encode(w) for w in waveforms]

  def decode(self, codes: np.ndarray) -> np.ndarray:
    """[T_a, Q] codes -> 16 kHz waveform, where the backend has a decoder."""
    raise NotImplementedError(f"{self.name} has no decoder")


def fingerprint_of(*parts: Any) -> str:
  """A short stable hash of settings and file digests."""
  h = hashlib.sha256()
  for p in parts:
    if isinstance(p, (bytes, bytearray)):
      h.update(bytes(p))
    else:
      h.update(json.dumps(p, sort_keys=True, default=str).encode("utf-8"))
    h.update(b"\x00")
  return h.hexdigest()[:16]


def sha256_file(path: str) -> str:
  """Hex sha256 of a local file, read in blocks."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 22), b""):
      h.update(block)
  return h.hexdigest()


def check_waveform(waveform: np.ndarray) -> np.ndarray:
  """Validates the common input form: 1-D float32 at 16 kHz."""
  w = np.asarray(waveform)
  if w.ndim != 1:
    raise TokenizerError(f"expected mono 1-D audio, got shape {w.shape}")
  return w.astype(np.float32, copy=False)


def expected_frames(role: str, num_samples: int) -> int:
  if role == SEMANTIC:
    return contract.num_semantic_frames(num_samples)
  return contract.num_acoustic_frames(num_samples)


# --- Registry ----------------------------------------------------------------

_SEMANTIC: dict[str, Callable[..., SemanticEmbedder]] = {}
_ACOUSTIC: dict[str, Callable[..., AcousticTokenizer]] = {}


def register_semantic(name: str):
  def wrap(cls):
    cls.name = name
    _SEMANTIC[name] = cls
    return cls
  return wrap


def register_acoustic(name: str):
  def wrap(cls):
    cls.name = name
    _ACOUSTIC[name] = cls
    return cls
  return wrap


def _ensure_backends_imported() -> None:
  # Importing the package registers the built-in backends.
  from audiolm_t5x.pipelines import tokenizers  # pylint: disable=g-import-not-at-top,unused-import


def _build(registry: dict, role: str, name: str, options: dict):
  _ensure_backends_imported()
  if name not in registry:
    raise ValueError(f"unknown {role} backend {name!r}; known: "
                     f"{sorted(registry)}")
  cls = registry[name]
  accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
  options = {k: v for k, v in options.items() if v is not None}
  unknown = set(options) - accepted
  if unknown:
    raise ValueError(f"{role} backend {name!r} does not take options "
                     f"{sorted(unknown)}; it takes {sorted(accepted)}")
  return cls(**options)


def make_semantic_embedder(name: str, **options: Any) -> SemanticEmbedder:
  """Builds a registered semantic embedder, e.g. ``("logmel")``."""
  return _build(_SEMANTIC, SEMANTIC, name, options)


def make_acoustic_tokenizer(name: str, **options: Any) -> AcousticTokenizer:
  """Builds a registered acoustic tokenizer, e.g. ``("lyra", levels=30)``."""
  return _build(_ACOUSTIC, ACOUSTIC, name, options)


def semantic_backends() -> list[str]:
  _ensure_backends_imported()
  return sorted(_SEMANTIC)


def acoustic_backends() -> list[str]:
  _ensure_backends_imported()
  return sorted(_ACOUSTIC)


