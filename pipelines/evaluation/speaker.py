"""Speaker similarity: speaker embeddings and their cosine similarity.

Embedders behind one interface (:class:`SpeakerEmbedder`):

* ``resemblyzer`` (default): Resemblyzer's GE2E speaker encoder (Wan et al.,
  2018; 256-d, L2-normalised). Its weights (``pretrained.pt``, about 17 MB)
  ship inside the PyPI wheel, so it runs offline. Licence: Apache-2.0 (the
  package's metadata and repository, resemble-ai/Resemblyzer). Its
  ``preprocess_wav`` normalises the volume and trims long silences with
  webrtcvad before embedding.
* ``transformers``: a local ``save_pretrained`` x-vector checkpoint
  (``WavLMForXVector`` / ``Wav2Vec2ForXVector`` / ...): the model's
  ``embeddings`` output, L2-normalised.

AudioLM measures speaker similarity with a speaker classifier on the prompt
and the continuation; the absolute values of different embedders are not
comparable, which is why the evaluation also reports the control (prompt vs
continuations of other speakers).

Example::

  >>> emb = make_embedder("resemblyzer")
  >>> cosine(emb.embed(wave), emb.embed(wave))   # identical audio
  1.0
"""

from __future__ import annotations

import abc
from typing import Optional

import numpy as np

from audiolm_t5x import constants


def cosine(a: np.ndarray, b: np.ndarray) -> float:
  """Cosine similarity of two vectors."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


class SpeakerEmbedder(abc.ABC):
  """16 kHz mono float32 audio -> a speaker embedding. Picklable."""

  name = ""

  def load(self) -> None:
    """Loads the model (once per worker)."""

  @abc.abstractmethod
  def embed(self, waveform: np.ndarray) -> np.ndarray:
    """One L2-normalised vector per utterance."""

  def info(self) -> dict:
    return {"name": self.name}


def _import_resemblyzer():
  """Imports resemblyzer; supplies ``pkg_resources`` where setuptools lacks it.

  Resemblyzer imports webrtcvad 2.0.10, whose module reads its own version
  with ``pkg_resources.get_distribution``; setuptools 81 and later no longer
  ship ``pkg_resources``. Where it is missing, a stand-in answering that one
  call from ``importlib.metadata`` is registered before the import.
  """
  import sys  # pylint: disable=g-import-not-at-top
  import types  # pylint: disable=g-import-not-at-top

  try:
    import pkg_resources  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
  except ImportError:
    from importlib import metadata  # pylint: disable=g-import-not-at-top

    shim = types.ModuleType("pkg_resources")
    shim.get_distribution = lambda name: types.SimpleNamespace(
        version=metadata.version(name))
    sys.modules["pkg_resources"] = shim
  import resemblyzer  # pylint: disable=g-import-not-at-top

  return resemblyzer


class ResemblyzerEmbedder(SpeakerEmbedder):
  """Resemblyzer's VoiceEncoder (weights shipped in the wheel), on CPU."""

  name = "resemblyzer"

  def __init__(self):
    self._encoder = None

  def __getstate__(self):
    return {}

  def __setstate__(self, state):
    self._encoder = None

  def load(self) -> None:
    if self._encoder is None:
      resemblyzer = _import_resemblyzer()
      self._encoder = resemblyzer.VoiceEncoder("cpu", verbose=False)

  def embed(self, waveform: np.ndarray) -> np.ndarray:
    self.load()
    wav = _import_resemblyzer().preprocess_wav(np.asarray(waveform, np.float32),
                                     source_sr=constants.SAMPLE_RATE)
    if len(wav) == 0:  # all silence after VAD trimming
      wav = np.asarray(waveform, np.float32)
    return np.asarray(self._encoder.embed_utterance(wav), np.float32)

  def info(self) -> dict:
    return {"name": self.name, "model": "GE2E, weights in the resemblyzer "
            "wheel (Apache-2.0)"}


class TransformersXVectorEmbedder(SpeakerEmbedder):
  """A local transformers ``*ForXVector`` checkpoint."""

  name = "transformers"

  def __init__(self, model: str):
    self.model = model
    self._model = self._extractor = None

  def __getstate__(self):
    return {"model": self.model, "_model": None, "_extractor": None}

  def load(self) -> None:
    if self._model is None:
      import transformers  # pylint: disable=g-import-not-at-top

      self._extractor = transformers.AutoFeatureExtractor.from_pretrained(
          self.model)
      self._model = transformers.AutoModelForAudioXVector.from_pretrained(
          self.model).eval()

  def embed(self, waveform: np.ndarray) -> np.ndarray:
    import torch  # pylint: disable=g-import-not-at-top

    self.load()
    inputs = self._extractor(np.asarray(waveform, np.float32),
                             sampling_rate=constants.SAMPLE_RATE,
                             return_tensors="pt")
    with torch.no_grad():
      vec = self._model(**inputs).embeddings[0].numpy()
    return (vec / (np.linalg.norm(vec) + 1e-12)).astype(np.float32)

  def info(self) -> dict:
    return {"name": self.name, "model": self.model}


EMBEDDERS = ("resemblyzer", "transformers", "none")


def make_embedder(name: str, *, model: Optional[str] = None
                  ) -> Optional[SpeakerEmbedder]:
  """``resemblyzer`` | ``transformers`` (with ``model``) | ``none``."""
  if name == "none":
    return None
  if name == "resemblyzer":
    return ResemblyzerEmbedder()
  if name == "transformers":
    if not model:
      raise ValueError("--speaker_embedder=transformers needs "
                       "--speaker_model=PATH (a local x-vector checkpoint)")
    return TransformersXVectorEmbedder(model)
  raise ValueError(f"--speaker_embedder: expected one of "
                   f"{', '.join(EMBEDDERS)}, found {name!r}")
