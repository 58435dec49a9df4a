"""Intelligibility: speech recognition and WER / CER with ``jiwer``.

Recognizers behind one interface (:class:`Recognizer`):

* ``pocketsphinx`` (default): CMU PocketSphinx from PyPI, whose US English
  acoustic model, dictionary and language model ship inside the wheel, so it
  runs offline. It is a weak recogniser (far from the paper's Conformer), so
  compare its WER on generated audio with its WER on the original audio
  (``wer_original``), as the paper does.
* ``transformers``: any local CTC / seq2seq ASR checkpoint in
  ``save_pretrained`` layout (e.g. a Wav2Vec2ForCTC or Whisper directory),
  run through ``transformers.pipeline("automatic-speech-recognition")``.

Text is normalised before scoring (lower case, punctuation other than
apostrophes removed, whitespace collapsed), as LibriSpeech transcripts are
upper case without punctuation.

Example::

  >>> error_rates(["the cat sat on the mat"], ["the cat sit on mat"])["wer"]
  0.3333333333333333
"""

from __future__ import annotations

import abc
import re
from typing import Optional, Sequence

import numpy as np

from audiolm_t5x import constants


def normalize_text(text: str) -> str:
  """Lower case, no punctuation except apostrophes, single spaces."""
  text = re.sub(r"[^a-z0-9' ]+", " ", text.lower())
  return " ".join(text.split())


def error_rates(references: Sequence[str],
                hypotheses: Sequence[str]) -> dict:
  """Corpus-level WER and CER (errors over reference words / characters).

  Pairs whose normalised reference is empty are skipped (WER is undefined
  there); ``pairs`` says how many were scored.
  """
  import jiwer  # pylint: disable=g-import-not-at-top

  pairs = [(normalize_text(r), normalize_text(h))
           for r, h in zip(references, hypotheses, strict=True)]
  pairs = [(r, h) for r, h in pairs if r]
  if not pairs:
    return {"wer": None, "cer": None, "pairs": 0}
  refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
  return {"wer": float(jiwer.wer(refs, hyps)),
          "cer": float(jiwer.cer(refs, hyps)), "pairs": len(pairs)}


class Recognizer(abc.ABC):
  """Transcribes 16 kHz mono float32 audio. Picklable before :meth:`load`."""

  name = ""

  def load(self) -> None:
    """Loads the model (once per worker)."""

  @abc.abstractmethod
  def transcribe(self, waveform: np.ndarray) -> str:
    """Text of one utterance."""

  def info(self) -> dict:
    return {"name": self.name}


class PocketSphinxRecognizer(Recognizer):
  """CMU PocketSphinx with the US English model shipped in its wheel."""

  name = "pocketsphinx"

  def __init__(self):
    self._decoder = None

  def __getstate__(self):
    return {}

  def __setstate__(self, state):
    self._decoder = None

  def load(self) -> None:
    if self._decoder is None:
      import pocketsphinx  # pylint: disable=g-import-not-at-top

      self._decoder = pocketsphinx.Decoder(
          samprate=constants.SAMPLE_RATE, loglevel="FATAL")

  def transcribe(self, waveform: np.ndarray) -> str:
    self.load()
    pcm = (np.clip(waveform, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    self._decoder.start_utt()
    self._decoder.process_raw(pcm, full_utt=True)
    self._decoder.end_utt()
    hyp = self._decoder.hyp()
    return hyp.hypstr if hyp is not None else ""

  def info(self) -> dict:
    import pocketsphinx  # pylint: disable=g-import-not-at-top

    return {"name": self.name,
            "model": "en-us (shipped in the pocketsphinx wheel)",
            "version": getattr(pocketsphinx, "__version__", "")}


class TransformersRecognizer(Recognizer):
  """A local transformers ASR checkpoint (``save_pretrained`` directory)."""

  name = "transformers"

  def __init__(self, model: str, *, device: str = "cpu"):
    self.model = model
    self.device = device
    self._pipe = None

  def __getstate__(self):
    return {"model": self.model, "device": self.device, "_pipe": None}

  def load(self) -> None:
    if self._pipe is None:
      import transformers  # pylint: disable=g-import-not-at-top

      self._pipe = transformers.pipeline(
          "automatic-speech-recognition", model=self.model,
          device=self.device)

  def transcribe(self, waveform: np.ndarray) -> str:
    self.load()
    out = self._pipe({"raw": np.asarray(waveform, np.float32),
                      "sampling_rate": constants.SAMPLE_RATE})
    return str(out["text"])

  def info(self) -> dict:
    return {"name": self.name, "model": self.model}


RECOGNIZERS = ("pocketsphinx", "transformers", "none")


def make_recognizer(name: str, *, model: Optional[str] = None
                    ) -> Optional[Recognizer]:
  """``pocketsphinx`` | ``transformers`` (with ``model``) | ``none``."""
  if name == "none":
    return None
  if name == "pocketsphinx":
    return PocketSphinxRecognizer()
  if name == "transformers":
    if not model:
      raise ValueError("--asr=transformers needs --asr_model=PATH (a local "
                       "save_pretrained ASR checkpoint)")
    return TransformersRecognizer(model)
  raise ValueError(f"--asr: expected one of {', '.join(RECOGNIZERS)}, "
                   f"found {name!r}")
