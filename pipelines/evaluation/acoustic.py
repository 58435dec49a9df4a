"""Acoustic consistency of a continuation with its prompt.

Three checks users ask for when they listen to continuations:

* **level**: RMS level (dBFS) of the non-silent 25 ms frames of the prompt and
  of the continuation, and their difference. A continuation that gets much
  quieter or louder than its prompt is audible at once.
* **silence ratio**: the share of 25 ms frames quieter than a threshold set
  from the *prompt* (its 95th-percentile frame level minus
  ``SILENCE_BELOW_DB``), for the prompt and the continuation alike, so a
  continuation that trails off into silence scores high where the prompt does
  not.
* **repetition of the prompt** (a common failure of small models): log-mel
  windows of the continuation (0.5 s, hop 0.1 s), each matched against every
  window of the prompt by cosine similarity after per-bin normalisation with
  the prompt's statistics. ``repeated_fraction`` is the share of continuation
  windows whose best match reaches ``REPEAT_SIMILARITY``; ``repeats_prompt``
  is true when it reaches ``REPEAT_FRACTION``. Where the generation job's
  semantic tokens are at hand, :func:`longest_token_copy_seconds` also gives
  the longest run of prompt tokens copied verbatim into the continuation.

Example::

  >>> stats = consistency(prompt_wave, continuation_wave)
  >>> sorted(stats)[:3]
  ['continuation_level_dbfs', 'continuation_silence_ratio', 'level_difference_db']
"""

from __future__ import annotations

import numpy as np

from audiolm_t5x import constants

FRAME_SECONDS = 0.025
SILENCE_BELOW_DB = 35.0  # below the prompt's 95th-percentile frame level
REPEAT_WINDOW_SECONDS = 0.5
REPEAT_HOP_SECONDS = 0.1
REPEAT_SIMILARITY = 0.9
REPEAT_FRACTION = 0.5
_EPS = 1e-10


def frame_levels_db(waveform: np.ndarray, *,
                    sample_rate: int = constants.SAMPLE_RATE) -> np.ndarray:
  """RMS level of each 25 ms frame in dBFS (full scale = 1.0)."""
  n = int(FRAME_SECONDS * sample_rate)
  frames = waveform[:len(waveform) // n * n].reshape(-1, n).astype(np.float64)
  if not len(frames):
    return np.zeros([0])
  rms = np.sqrt(np.mean(frames ** 2, axis=1))
  return 20.0 * np.log10(rms + _EPS)


def silence_threshold_db(reference: np.ndarray) -> float:
  """Frame level under which a frame counts as silence (from the prompt)."""
  levels = frame_levels_db(reference)
  return float(np.percentile(levels, 95) - SILENCE_BELOW_DB)


def level_dbfs(waveform: np.ndarray, *, threshold_db: float) -> float:
  """RMS level in dBFS over the frames above ``threshold_db``."""
  levels = frame_levels_db(waveform)
  active = levels[levels > threshold_db]
  if not len(active):
    return float("-inf")
  power = np.mean(10.0 ** (active / 10.0))
  return float(10.0 * np.log10(power))


def silence_ratio(waveform: np.ndarray, *, threshold_db: float) -> float:
  """Share of 25 ms frames at or below ``threshold_db``."""
  levels = frame_levels_db(waveform)
  return float(np.mean(levels <= threshold_db)) if len(levels) else 1.0


def _log_mel(waveform: np.ndarray) -> np.ndarray:
  """[frames, 64] log-mel at 100 Hz (numpy, no model)."""
  from scipy import signal  # pylint: disable=g-import-not-at-top

  sr = constants.SAMPLE_RATE
  _, _, spec = signal.stft(waveform.astype(np.float64), fs=sr, nperseg=400,
                           noverlap=400 - 160, nfft=512, boundary=None,
                           padded=False)
  power = np.abs(spec) ** 2  # [257, frames]
  return np.log(_mel_matrix(64, 512, sr) @ power + 1e-6).T


def _mel_matrix(num_mels: int, nfft: int, sr: int) -> np.ndarray:
  def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + f / 700.0)

  def mel_to_hz(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

  freqs = np.linspace(0, sr / 2, nfft // 2 + 1)
  edges = mel_to_hz(np.linspace(hz_to_mel(20.0), hz_to_mel(sr / 2),
                                num_mels + 2))
  lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
  up = (freqs[None] - lower) / (center - lower)
  down = (upper - freqs[None]) / (upper - center)
  return np.maximum(0.0, np.minimum(up, down))


def _windows(features: np.ndarray, width: int, hop: int) -> np.ndarray:
  starts = range(0, max(len(features) - width, -1) + 1, hop)
  return np.stack([features[s:s + width].ravel() for s in starts]) if len(
      features) >= width else np.zeros([0, width * features.shape[1]])


def repetition(prompt: np.ndarray, continuation: np.ndarray) -> dict:
  """How much of the continuation repeats the prompt (see module docstring)."""
  p, c = _log_mel(prompt), _log_mel(continuation)
  mean, std = p.mean(axis=0), p.std(axis=0) + 1e-3
  p, c = (p - mean) / std, (c - mean) / std
  width = int(REPEAT_WINDOW_SECONDS * 100)
  pw = _windows(p, width, 1)
  cw = _windows(c, width, int(REPEAT_HOP_SECONDS * 100))
  if not len(pw) or not len(cw):
    return {"repeated_fraction": 0.0, "max_prompt_similarity": 0.0,
            "repeats_prompt": False}
  pw = pw / (np.linalg.norm(pw, axis=1, keepdims=True) + _EPS)
  cw = cw / (np.linalg.norm(cw, axis=1, keepdims=True) + _EPS)
  best = (cw @ pw.T).max(axis=1)
  fraction = float(np.mean(best >= REPEAT_SIMILARITY))
  return {"repeated_fraction": fraction,
          "max_prompt_similarity": float(best.max()),
          "repeats_prompt": fraction >= REPEAT_FRACTION}


def longest_token_copy_seconds(prompt_tokens: np.ndarray,
                               continuation_tokens: np.ndarray, *,
                               rate_hz: float = constants.SEMANTIC_RATE_HZ
                               ) -> float:
  """Longest run of prompt tokens found verbatim in the continuation, in s.

  Example: prompt ``[1, 2, 3, 4]``, continuation ``[9, 2, 3, 4, 8]`` -> a run
  of 3 tokens -> 0.12 s at 25 Hz.
  """
  a = [int(t) for t in np.asarray(prompt_tokens).ravel()]
  b = [int(t) for t in np.asarray(continuation_tokens).ravel()]
  best, prev = 0, [0] * (len(b) + 1)
  for x in a:  # longest common substring, O(len(a) * len(b))
    cur = [0] * (len(b) + 1)
    for j, y in enumerate(b, 1):
      if x == y:
        cur[j] = prev[j - 1] + 1
        best = max(best, cur[j])
    prev = cur
  return best / rate_hz


def consistency(prompt: np.ndarray, continuation: np.ndarray) -> dict:
  """Level, silence ratio and repetition of ``continuation`` vs ``prompt``."""
  threshold = silence_threshold_db(prompt)
  p_level = level_dbfs(prompt, threshold_db=threshold)
  c_level = level_dbfs(continuation, threshold_db=threshold)
  finite = np.isfinite(p_level) and np.isfinite(c_level)
  out = {  # a level is None where every frame is silence
      "silence_threshold_dbfs": threshold,
      "prompt_level_dbfs": p_level if np.isfinite(p_level) else None,
      "continuation_level_dbfs": c_level if np.isfinite(c_level) else None,
      "level_difference_db": c_level - p_level if finite else None,
      "prompt_silence_ratio": silence_ratio(prompt, threshold_db=threshold),
      "continuation_silence_ratio": silence_ratio(continuation,
                                                  threshold_db=threshold),
  }
  out.update(repetition(prompt, continuation))
  return out
