"""An ABX item set built offline with espeak-ng: synthetic, labelled speech.

For tests and for users without LibriSpeech's official ABX items. Words are
synthesised with the espeak-ng library (Debian ``libespeak-ng1``, loaded with
ctypes; no Python binding needed). libespeak-ng reports a PHONEME event at the
start of every phone, with its time in the output (``audio_position``, ms);
a phone ends where the next one starts. Each non-pause phone with a phone on
either side becomes a triphone item (``file onset offset phone prev next
speaker``; the segment spans the three phones; pauses are labelled ``SIL``
and cut to ``SIL_SECONDS`` where they border the triphone). Audio is
resampled from espeak's 22,050 Hz to 16 kHz (``pipelines.audio.resample``)
and written as 16-bit WAV.

Speakers are espeak voice variants of one accent (``en-us+m3``, ...; one
accent so that a word has the same phone labels for everyone), each at its own
pitch and rate; every speaker reads the word list ``repetitions`` times, each
time at a slightly different rate and pitch (espeak is deterministic, so
without that the repetitions of a word would be identical and the within-
speaker task trivial). The word list holds minimal sets such as beat / bit /
bait / bet / bat / but / boot / bought / bite, so that many contexts hold
several phones.

THIS IS NOT LIBRISPEECH ABX. Synthetic speech from one rule-based synthesiser
is far more regular than read speech (one accent, no coarticulation variety,
no noise, formant "speakers" that differ in a few parameters), so error rates
on this set are much lower than on LibriSpeech dev-clean and must never be
compared with the paper's figures. Use it to compare tokenizers with each
other, and to check that the ABX code works.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import json
import os
import threading
from typing import Optional, Sequence

import numpy as np

from audiolm_t5x import constants
from audiolm_t5x.pipelines import audio
from audiolm_t5x.pipelines.evaluation import abx

SIL = "SIL"
SIL_SECONDS = 0.1  # pause kept at a triphone's border

# Minimal sets over shared consonant frames (American English).
DEFAULT_WORDS = (
    "beat bit bait bet bat but boot bought bite boat "
    "peat pit pate pet pat putt pot pout "
    "heed hid hayed head had hood hawed hide "
    "keen kin cane ken can coon con "
    "seat sit set sat soot sought site"
).split()

# espeak-ng enums (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000
_EVENT_PHONEME = 7
_EVENT_LIST_TERMINATED = 0
_PARAM_RATE = 1
_PARAM_PITCH = 3
_CHARS_UTF8 = 1


class EspeakUnavailable(RuntimeError):
  """libespeak-ng could not be loaded; the message says what to install."""


class _Event(ctypes.Structure):
  _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
              ("text_position", ctypes.c_int), ("length", ctypes.c_int),
              ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
              ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short),
                             ctypes.c_int, ctypes.POINTER(_Event))


@dataclasses.dataclass(frozen=True)
class Speaker:
  """An espeak voice with its own pitch (0-99) and rate (words per minute)."""

  name: str
  voice: str
  pitch: int
  rate: int


DEFAULT_SPEAKERS = (
    Speaker("m1", "en-us+m1", 40, 165), Speaker("m3", "en-us+m3", 50, 150),
    Speaker("m5", "en-us+m5", 35, 175), Speaker("m7", "en-us+m7", 45, 160),
    Speaker("f1", "en-us+f1", 60, 160), Speaker("f2", "en-us+f2", 70, 150),
    Speaker("f4", "en-us+f4", 65, 170), Speaker("klatt", "en-us+klatt", 50,
                                                155),
)


class _Espeak:
  """The process-wide espeak-ng engine (the C library keeps global state)."""

  _lock = threading.Lock()
  _instance: Optional["_Espeak"] = None

  def __init__(self):
    name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    try:
      self._lib = ctypes.CDLL(name)
    except OSError as e:
      raise EspeakUnavailable(
          f"libespeak-ng not found ({e}); install the Debian/Ubuntu package "
          "espeak-ng (apt-get install espeak-ng)") from e
    self.sample_rate = self._lib.espeak_Initialize(
        _AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
        _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT)
    if self.sample_rate <= 0:
      raise EspeakUnavailable("espeak_Initialize failed (espeak-ng-data "
                              "missing?)")
    self._chunks: list = []
    self._events: list = []
    self._callback = _CALLBACK(self._collect)  # keep a reference
    self._lib.espeak_SetSynthCallback(self._callback)

  @classmethod
  def get(cls) -> "_Espeak":
    with cls._lock:
      if cls._instance is None:
        cls._instance = cls()
      return cls._instance

  def _collect(self, wav, n, events) -> int:
    if n > 0 and wav:
      self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
    k = 0
    while events[k].type != _EVENT_LIST_TERMINATED:
      e = events[k]
      if e.type == _EVENT_PHONEME:
        self._events.append((e.id.decode("ascii", "replace").strip(),
                             e.audio_position / 1000.0))
      k += 1
    return 0

  def synthesize(self, text: str, *, voice: str, pitch: int, rate: int):
    with self._lock:
      if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise ValueError(f"espeak-ng has no voice {voice!r}")
      self._lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
      self._lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
      self._chunks, self._events = [], []
      data = text.encode("utf-8")
      self._lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8, None,
                             None)
      self._lib.espeak_Synchronize()
      wav = (np.concatenate(self._chunks) if self._chunks
             else np.zeros([0], np.int16))
      return wav, list(self._events)


def synthesize(text: str, *, voice: str = "en-us", pitch: int = 50,
               rate: int = 160) -> tuple[np.ndarray, list[tuple[str, float,
                                                                float]]]:
  """Speech for ``text`` at 16 kHz, with (phone, start s, end s) per phone.

  Pauses are labelled ``SIL``. Raises EspeakUnavailable without espeak-ng.
  """
  engine = _Espeak.get()
  wav, events = engine.synthesize(text, voice=voice, pitch=pitch, rate=rate)
  total = wav.shape[0] / engine.sample_rate
  wave = audio.resample(wav.astype(np.float32) / 32768.0, engine.sample_rate)
  phones = []
  for k, (name, start) in enumerate(events):
    end = events[k + 1][1] if k + 1 < len(events) else total
    label = SIL if (not name or name.startswith("_")) else name
    if end <= start:
      continue
    if phones and label == SIL and phones[-1][0] == SIL:
      phones[-1] = (SIL, phones[-1][1], end)  # merge pauses
      continue
    phones.append((label, start, min(end, total)))
  return wave, phones


def triphone_items(phones: Sequence[tuple[str, float, float]], *, file: str,
                   speaker: str) -> list[abx.Item]:
  """One item per non-pause phone with a neighbour on both sides."""
  items = []
  for k in range(1, len(phones) - 1):
    (prev, p0, p1), (ph, _, _), (nxt, n0, n1) = phones[k - 1:k + 2]
    if ph == SIL:
      continue
    onset = max(p0, p1 - SIL_SECONDS) if prev == SIL else p0
    offset = min(n1, n0 + SIL_SECONDS) if nxt == SIL else n1
    items.append(abx.Item(file, round(onset, 4), round(offset, 4), ph, prev,
                          nxt, speaker))
  return items


@dataclasses.dataclass
class ItemSet:
  """Where a built set lies and what it holds."""

  item_file: str
  audio_dir: str
  num_files: int
  num_items: int
  seconds: float
  speakers: list


def build_item_set(output_dir: str, *,
                   speakers: Sequence[Speaker] = DEFAULT_SPEAKERS,
                   words: Sequence[str] = DEFAULT_WORDS,
                   repetitions: int = 2, seed: int = 0) -> ItemSet:
  """Writes ``<output_dir>/wav/<file>.wav`` and ``<output_dir>/espeak.item``.

  Each speaker reads ``words`` (comma-separated, so each word is its own
  phrase) ``repetitions`` times in a shuffled order, repetition r at rate
  ``rate * (1 + 0.08 r)`` and pitch ``pitch + 4 r``. Deterministic for a
  seed. Also writes ``espeak_set.json`` (settings, espeak version, warning).
  """
  import soundfile as sf  # pylint: disable=g-import-not-at-top

  wav_dir = os.path.join(output_dir, "wav")
  os.makedirs(wav_dir, exist_ok=True)
  rng = np.random.default_rng(seed)
  items, seconds, files = [], 0.0, 0
  for spk in speakers:
    for r in range(repetitions):
      order = list(words)
      rng.shuffle(order)
      text = ", ".join(order) + "."
      wave, phones = synthesize(text, voice=spk.voice,
                                pitch=min(99, spk.pitch + 4 * r),
                                rate=int(round(spk.rate * (1 + 0.08 * r))))
      name = f"{spk.name}-{r:02d}"
      sf.write(os.path.join(wav_dir, name + ".wav"), wave,
               constants.SAMPLE_RATE, subtype="PCM_16")
      items.extend(triphone_items(phones, file=name, speaker=spk.name))
      seconds += wave.shape[0] / constants.SAMPLE_RATE
      files += 1
  item_file = os.path.join(output_dir, "espeak.item")
  with open(item_file, "w", encoding="utf-8") as f:
    f.write(abx.format_items(items))
  info = {
      "warning": "synthetic espeak-ng speech: NOT comparable with LibriSpeech "
                 "ABX or the paper's figures",
      "speakers": [dataclasses.asdict(s) for s in speakers],
      "words": list(words), "repetitions": repetitions, "seed": seed,
      "num_files": files, "num_items": len(items), "seconds": seconds,
      "espeak_sample_rate": _Espeak.get().sample_rate,
  }
  with open(os.path.join(output_dir, "espeak_set.json"), "w",
            encoding="utf-8") as f:
    json.dump(info, f, indent=2)
  return ItemSet(item_file=item_file, audio_dir=wav_dir, num_files=files,
                 num_items=len(items), seconds=seconds,
                 speakers=[s.name for s in speakers])
