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
class whose ``Options`` attribute is a frozen dataclass of its settings (a
subclass of :class:`Options`); :func:`make_semantic_embedder` /
:func:`make_acoustic_tokenizer` build one from a name and keyword options
(``--semantic_option=KEY=VALUE`` on the command line). The options are parsed
once into that dataclass, checked against its fields and their types: an
unknown, mistyped or ill-typed option is one line of error naming the backend
and what it takes. The backend is built with ``cls.from_options(options)``.
"""

from __future__ import annotations

import abc
import dataclasses
import difflib
import hashlib
import json
import types
import typing
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from audiolm_t5x import constants
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


@dataclasses.dataclass(frozen=True)
class Options:
  """Base of the backends' option dataclasses (no fields of its own)."""


def _type_name(hint) -> str:
  args = typing.get_args(hint)
  if typing.get_origin(hint) in (typing.Union, types.UnionType):
    return " or ".join(_type_name(a) for a in args)
  if typing.get_origin(hint) is tuple:
    return f"a list of {_type_name(args[0])}"
  return {type(None): "null", bool: "true/false", int: "an integer",
          float: "a number", str: "a string"}.get(hint, str(hint))


def _coerce(hint, value):
  """``value`` (parsed from JSON or given in Python) as type ``hint``."""
  origin, args = typing.get_origin(hint), typing.get_args(hint)
  if origin in (typing.Union, types.UnionType):
    for a in args:
      try:
        return _coerce(a, value)
      except (TypeError, ValueError):
        pass
    raise TypeError
  if origin is tuple:
    if not isinstance(value, (list, tuple)):
      raise TypeError
    return tuple(_coerce(args[0], v) for v in value)
  if hint is type(None):
    if value is None:
      return None
    raise TypeError
  if hint is bool:
    if isinstance(value, bool):
      return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
      return value.lower() == "true"
    raise TypeError
  if hint is int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
        isinstance(value, float) and not value.is_integer()):
      raise TypeError
    return int(value)
  if hint is float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise TypeError
    return float(value)
  if hint is str:
    if not isinstance(value, str):
      raise TypeError
    return value
  raise TypeError(f"unsupported option type {hint}")


def parse_options(options_cls: type, values: Mapping[str, Any], *,
                  where: str) -> Options:
  """``values`` checked and converted into ``options_cls`` (a dataclass).

  Raises:
    ValueError: one line naming ``where`` (e.g. "semantic backend
      'w2v_bert'"), the offending option and what is accepted.
  """
  hints = typing.get_type_hints(options_cls)
  fields = {f.name: f for f in dataclasses.fields(options_cls)}
  kwargs = {}
  for key, value in values.items():
    if key not in fields:
      near = difflib.get_close_matches(key, fields, n=1)
      hint = f" (did you mean {near[0]!r}?)" if near else ""
      raise ValueError(f"{where} has no option {key!r}{hint}; it takes "
                       f"{', '.join(sorted(fields))}")
    if value is None and type(None) not in typing.get_args(hints[key]):
      continue  # None means "the default" where the field cannot be None
    try:
      kwargs[key] = _coerce(hints[key], value)
    except (TypeError, ValueError):
      raise ValueError(f"{where}: option {key}={json.dumps(value)} must be "
                       f"{_type_name(hints[key])}") from None
  try:
    return options_cls(**kwargs)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{where}: {e}") from None


class _Backend(abc.ABC):
  """Shared parts of both roles."""

  role: str = ""
  name: str = ""
  # The frozen dataclass of this backend's settings (its registry options).
  Options: type = Options
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

  @classmethod
  def from_options(cls, options: Options) -> "_Backend":
    """Builds the backend from its parsed options. The default passes the
    fields as keyword arguments; backends that keep the dataclass override
    it."""
    return cls(**{f.name: getattr(options, f.name)
                  for f in dataclasses.fields(options)})

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

  @property
  def on_accelerator(self) -> bool:
    """Whether the loaded model runs on a GPU (the job then overlaps its
    decoding with the model's work)."""
    return False


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
  # The frame rate this class produces, known without loading a model. The
  # commands offer only backends at the data contract's rate
  # (:func:`contract_acoustic_backends`).
  nominal_rate_hz: float = constants.ACOUSTIC_RATE_HZ

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

_SEMANTIC: dict[str, type] = {}
_ACOUSTIC: dict[str, type] = {}


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


def _build(registry: dict, role: str, name: str, options: Mapping):
  return registry_class(role, name).from_options(
      backend_options(role, name, options))


def registry_class(role: str, name: str) -> type:
  """The class registered as ``name`` in ``role`` (semantic / acoustic)."""
  _ensure_backends_imported()
  registry = _SEMANTIC if role == SEMANTIC else _ACOUSTIC
  if name not in registry:
    near = difflib.get_close_matches(name, registry, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise ValueError(f"unknown {role} backend {name!r}{hint}; known: "
                     f"{', '.join(sorted(registry))}")
  return registry[name]


def backend_options(role: str, name: str, options: Mapping) -> Options:
  """``options`` parsed into the backend's dataclass (errors: one line)."""
  cls = registry_class(role, name)
  if isinstance(options, cls.Options):
    return options
  return parse_options(cls.Options, dict(options),
                       where=f"{role} backend {name!r}")


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


def contract_acoustic_backends() -> list[str]:
  """Acoustic backends whose frames fit the data contract (50 Hz).

  The commands' ``--acoustic_backend`` offers only these; the others (EnCodec
  at 75 Hz) are library-only codecs, used from Python.
  """
  _ensure_backends_imported()
  return sorted(name for name, cls in _ACOUSTIC.items()
                if cls.nominal_rate_hz == constants.ACOUSTIC_RATE_HZ)


def unregister(role: str, name: str) -> None:
  """Removes a registered backend (tests register temporary ones)."""
  registry = _SEMANTIC if role == SEMANTIC else _ACOUSTIC
  registry.pop(name, None)


