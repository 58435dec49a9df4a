"""Audio decoding: any soundfile format to mono float32 at 16 kHz, with checks.

Every failure raises :class:`AudioError` whose message names the problem in
words a user can act on (empty file, truncated stream, undecodable bytes,
digital silence, too short for one token); the Beam job turns it into a
dead-letter entry.

Long recordings are read in blocks (:func:`iter_blocks`), so a streaming
tokenizer never holds the whole waveform. Files at another sample rate are
resampled with a polyphase filter (``scipy.signal.resample_poly``, Kaiser
window), whole-file, since the corpora this job targets are 16 kHz and a
non-16 kHz file is the exception that gets counted.
"""

from __future__ import annotations

import dataclasses
import io
import math
from typing import BinaryIO, Iterator, Union

import numpy as np
import soundfile as sf

from audiolm_t5x import constants


class AudioError(ValueError):
  """The input is not usable audio; the message says why."""


@dataclasses.dataclass
class AudioStats:
  """What decoding did to one input (fed into the job's counters)."""

  source_rate: int = 0
  source_channels: int = 0
  resampled: bool = False
  downmixed: bool = False
  num_samples: int = 0  # at 16 kHz, after resampling


Source = Union[bytes, BinaryIO]


def _open(source: Source) -> sf.SoundFile:
  if isinstance(source, (bytes, bytearray)):
    if not source:
      raise AudioError("empty file (0 bytes)")
    source = io.BytesIO(source)
  elif _size(source) == 0:
    raise AudioError("empty file (0 bytes)")
  try:
    return sf.SoundFile(source)
  except (sf.LibsndfileError, RuntimeError, TypeError) as e:
    raise AudioError(f"not a readable audio file ({_short(e)})") from e


def _size(fileobj: BinaryIO) -> int:
  """Size of a seekable file object (-1 where it cannot tell)."""
  try:
    pos = fileobj.tell()
    end = fileobj.seek(0, io.SEEK_END)
    fileobj.seek(pos)
    return end
  except (OSError, AttributeError, ValueError):
    return -1


def _short(error: Exception) -> str:
  """libsndfile's message without the object repr it embeds."""
  text = str(error)
  return text.split(": ", 1)[-1] if "<_io." in text else text


def _to_mono(block: np.ndarray) -> np.ndarray:
  return block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]


def resample(waveform: np.ndarray, source_rate: int,
             target_rate: int = constants.SAMPLE_RATE) -> np.ndarray:
  """Polyphase resampling by the reduced ratio target/source."""
  if source_rate == target_rate:
    return waveform
  from scipy import signal  # pylint: disable=g-import-not-at-top

  g = math.gcd(int(source_rate), int(target_rate))
  up, down = target_rate // g, source_rate // g
  return signal.resample_poly(waveform, up, down).astype(np.float32)


def iter_blocks(source: Source, *, block_samples: int,
                stats: AudioStats | None = None) -> Iterator[np.ndarray]:
  """Yields mono float32 16 kHz blocks of ``block_samples`` (last may be short).

  Raises:
    AudioError: on empty, undecodable or truncated input. A truncated input
      is detected when fewer frames decode than the header declares.
  """
  stats = stats if stats is not None else AudioStats()
  f = _open(source)
  with f:
    stats.source_rate = f.samplerate
    stats.source_channels = f.channels
    stats.downmixed = f.channels > 1
    stats.resampled = f.samplerate != constants.SAMPLE_RATE
    declared = f.frames
    if declared == 0:
      raise AudioError("no audio frames (header declares 0 samples)")
    decoded = 0
    try:
      if stats.resampled:
        # Whole-file resampling (see module docstring).
        data = _to_mono(f.read(dtype="float32", always_2d=True))
        decoded = data.shape[0]
        _check_complete(decoded, declared)
        data = resample(data, f.samplerate)
        for start in range(0, data.shape[0], block_samples):
          block = data[start:start + block_samples]
          stats.num_samples += block.shape[0]
          yield block
        return
      # Read in source frames; the rate is 16 kHz here.
      for block in f.blocks(blocksize=block_samples, dtype="float32",
                            always_2d=True):
        decoded += block.shape[0]
        mono = _to_mono(block)
        stats.num_samples += mono.shape[0]
        yield mono
    except sf.LibsndfileError as e:
      raise AudioError(
          f"corrupt or truncated stream: decoding failed after {decoded} of "
          f"{declared} declared samples ({_short(e)})") from e
    _check_complete(decoded, declared)


def _check_complete(decoded: int, declared: int) -> None:
  if decoded < declared:
    raise AudioError(f"truncated: header declares {declared} samples, only "
                     f"{decoded} decode")


def decode(source: Source, *, stats: AudioStats | None = None) -> np.ndarray:
  """Decodes a whole input to mono float32 16 kHz."""
  blocks = list(iter_blocks(source, block_samples=1 << 20, stats=stats))
  return np.concatenate(blocks) if blocks else np.zeros([0], np.float32)


def check_usable(waveform: np.ndarray, *, reject_silence: bool = True) -> None:
  """Raises AudioError for audio too short for one token, or digital silence."""
  check_counts(waveform.shape[0], has_signal=bool(np.any(waveform)),
               reject_silence=reject_silence)


def check_counts(num_samples: int, *, has_signal: bool,
                 reject_silence: bool = True) -> None:
  """:func:`check_usable` from counts, for audio streamed in blocks."""
  if num_samples < constants.SEMANTIC_FRAME_SAMPLES:
    raise AudioError(
        f"too short: {num_samples} samples, need at least "
        f"{constants.SEMANTIC_FRAME_SAMPLES} (one semantic frame)")
  if reject_silence and not has_signal:
    raise AudioError("digital silence: every sample is zero")
