"""A small LibriSpeech-shaped sample that the project makes itself.

It is SYNTHETIC, not speech: "utterances" of vowel-like syllables (a glottal
pulse train at a wandering pitch through three formant resonators) separated by
fricative-like noise bursts and pauses, 16 kHz mono FLAC, in LibriSpeech's
layout with ``*.trans.txt`` files whose text says it is synthetic. It exists
so that the whole data path runs on a fresh machine with no download; point
the jobs at a real LibriSpeech tree for real tokens.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np
from scipy import signal
import soundfile as sf

from audiolm_t5x import constants

# (F1, F2, F3) in Hz of a few vowels.
_VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240),
           (530, 1840, 2480), (640, 1190, 2390), (490, 1350, 1690))
LAYOUT = {  # split -> {speaker: {chapter: number of utterances}}
    "train-clean-100": {"9001": {"1": 4, "2": 3}, "9002": {"7": 4}},
    "dev-clean": {"9003": {"5": 3}},
}


def _resonator(x: np.ndarray, freq: float, bandwidth: float) -> np.ndarray:
  r = np.exp(-np.pi * bandwidth / constants.SAMPLE_RATE)
  theta = 2 * np.pi * freq / constants.SAMPLE_RATE
  return signal.lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], x)


def synth_utterance(rng: np.random.Generator, seconds: float) -> np.ndarray:
  """One synthetic utterance of about ``seconds``."""
  sr = constants.SAMPLE_RATE
  out = []
  total = 0
  while total < seconds * sr:
    n = int(rng.uniform(0.12, 0.3) * sr)
    f0 = rng.uniform(90, 220) * np.linspace(1.0, rng.uniform(0.85, 1.15), n)
    phase = np.cumsum(f0 / sr)
    pulses = (np.diff(np.floor(phase), prepend=0) > 0).astype(np.float64)
    vowel = _VOWELS[rng.integers(len(_VOWELS))]
    y = sum(_resonator(pulses, f, 80 + 0.05 * f) for f in vowel)
    y *= np.hanning(n)
    out.append(y)
    if rng.random() < 0.4:  # fricative burst
      m = int(rng.uniform(0.05, 0.12) * sr)
      out.append(0.05 * _resonator(rng.standard_normal(m), 4500, 2000) *
                 np.hanning(m))
    if rng.random() < 0.2:  # pause
      out.append(np.zeros(int(rng.uniform(0.1, 0.3) * sr)))
    total = sum(len(o) for o in out)
  wave = np.concatenate(out)
  return (0.3 * wave / np.max(np.abs(wave))).astype(np.float32)


def make_sample(root: str, *, seed: int = 0,
                layout: Mapping = LAYOUT) -> list[str]:
  """Writes the sample under ``root``; returns the FLAC paths written."""
  rng = np.random.default_rng(seed)
  written = []
  for split, speakers in layout.items():
    for speaker, chapters in speakers.items():
      for chapter, count in chapters.items():
        folder = os.path.join(root, split, speaker, chapter)
        os.makedirs(folder, exist_ok=True)
        lines = []
        for i in range(count):
          utt = f"{speaker}-{chapter}-{i:04d}"
          path = os.path.join(folder, f"{utt}.flac")
          sf.write(path, synth_utterance(rng, rng.uniform(4.0, 9.0)),
                   constants.SAMPLE_RATE, format="FLAC", subtype="PCM_16")
          lines.append(f"{utt} SYNTHETIC AUDIO NOT SPEECH NUMBER {i}")
          written.append(path)
        with open(os.path.join(folder, f"{speaker}-{chapter}.trans.txt"),
                  "w") as f:
          f.write("\n".join(lines) + "\n")
  return written
