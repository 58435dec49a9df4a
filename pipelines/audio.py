"""Audio decoding: any soundfile format to mono float32 at 16 kHz, with checks.

Every failure raises :class:`AudioError` whose message names the problem in
words a user can act on (empty file, truncated stream, undecodable bytes,
non-finite samples, digital silence, too short for one token); the Beam job
turns it into a dead-letter entry.

Rules that keep odd audio from being silently accepted:

* a sample that is NaN or infinite (float WAV) fails the input;
* content must match the suffix (:data:`SUFFIX_FORMATS`): an MP3 or a WAV
  named ``.flac`` fails with :class:`FormatMismatchError` (dead-letter step
  ``format``), since a mislabelled file usually means a broken copy or a
  lossy re-encode that the corpus should not contain;
* clipping and abnormal levels do not fail an input but are measured
  (:class:`AudioStats`, :func:`level_flags`) and counted per split.

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
from typing import BinaryIO, Iterator, Sequence, Union

import numpy as np
import soundfile as sf

from audiolm_t5x import constants


class AudioError(ValueError):
  """The input is not usable audio; the message says why."""


class FormatMismatchError(AudioError):
  """The content's format is not the one the file's suffix names."""


# Container formats (soundfile's names) each audio suffix may hold.
SUFFIX_FORMATS = {".flac": ("FLAC",), ".wav": ("WAV", "WAVEX", "RF64", "W64")}
# A sample at or above this magnitude counts as clipped (16-bit full scale
# less one step); an input is flagged "clipped" when more than CLIPPED_FRACTION
# of its samples are.
CLIP_LEVEL = 1.0 - 2.0 / 32768
CLIPPED_FRACTION = 1e-3
# RMS levels (dB re full scale) outside [QUIET_DBFS, LOUD_DBFS] are flagged;
# read speech in LibriSpeech sits around -20 to -30 dBFS.
QUIET_DBFS = -50.0
LOUD_DBFS = -6.0
LEVEL_FLAGS = ("clipped", "quiet", "loud")


@dataclasses.dataclass
class AudioStats:
  """What decoding did to one input (fed into the job's counters)."""

  source_rate: int = 0
  source_channels: int = 0
  resampled: bool = False
  downmixed: bool = False
  num_samples: int = 0  # at 16 kHz, after resampling
  format: str = ""  # soundfile's container name, e.g. "FLAC"
  source_samples: int = 0  # samples x channels read at the source rate
  clipped_samples: int = 0
  sum_squares: float = 0.0  # of the 16 kHz mono signal

  def note_source(self, block: np.ndarray, start: int) -> None:
    """Checks one decoded source block; counts clipped samples."""
    finite = np.isfinite(block)
    if not finite.all():
      first = int(np.argwhere(~finite)[0][0])
      raise AudioError(f"non-finite samples (NaN or Inf), first at sample "
                       f"{start + first}")
    self.source_samples += block.size
    self.clipped_samples += int(np.count_nonzero(np.abs(block) >= CLIP_LEVEL))

  def note_output(self, mono: np.ndarray) -> None:
    self.num_samples += mono.shape[0]
    self.sum_squares += float(np.dot(mono.astype(np.float64),
                                     mono.astype(np.float64)))


def level_flags(stats: Sequence[AudioStats]) -> tuple[str, ...]:
  """Which of :data:`LEVEL_FLAGS` apply to an input read as ``stats``."""
  source = sum(s.source_samples for s in stats)
  n = sum(s.num_samples for s in stats)
  flags = []
  if source and sum(s.clipped_samples for s in stats) > CLIPPED_FRACTION * source:
    flags.append("clipped")
  if n:
    rms = math.sqrt(sum(s.sum_squares for s in stats) / n)
    dbfs = 20 * math.log10(rms) if rms > 0 else -math.inf
    if dbfs < QUIET_DBFS:
      flags.append("quiet")
    elif dbfs > LOUD_DBFS:
      flags.append("loud")
  return tuple(flags)


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
                stats: AudioStats | None = None,
                suffix: str = "") -> Iterator[np.ndarray]:
  """Yields mono float32 16 kHz blocks of ``block_samples`` (last may be short).

  Args:
    source: the file's bytes or an open binary file.
    block_samples: block length.
    stats: filled in while reading.
    suffix: the file name's lower-case suffix (``.flac``); when given, the
      content must be a format :data:`SUFFIX_FORMATS` allows for it.

  Raises:
    AudioError: on empty, undecodable, truncated or non-finite input. A
      truncated input is detected when fewer frames decode than the header
      declares. FormatMismatchError when the content does not match
      ``suffix``.
  """
  stats = stats if stats is not None else AudioStats()
  f = _open(source)
  with f:
    stats.format = f.format
    allowed = SUFFIX_FORMATS.get(suffix)
    if allowed and f.format not in allowed:
      raise FormatMismatchError(
          f"content is {f.format} but the name ends in {suffix} (rule: the "
          f"content must be {' or '.join(allowed)})")
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
        raw = f.read(dtype="float32", always_2d=True)
        stats.note_source(raw, 0)
        data = _to_mono(raw)
        del raw
        decoded = data.shape[0]
        _check_complete(decoded, declared)
        data = resample(data, f.samplerate)
        for start in range(0, data.shape[0], block_samples):
          block = data[start:start + block_samples]
          stats.note_output(block)
          yield block
        return
      # Read in source frames; the rate is 16 kHz here.
      for block in f.blocks(blocksize=block_samples, dtype="float32",
                            always_2d=True):
        stats.note_source(block, decoded)
        decoded += block.shape[0]
        mono = _to_mono(block)
        stats.note_output(mono)
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


def decode(source: Source, *, stats: AudioStats | None = None,
           suffix: str = "") -> np.ndarray:
  """Decodes a whole input to mono float32 16 kHz."""
  blocks = list(iter_blocks(source, block_samples=1 << 20, stats=stats,
                            suffix=suffix))
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
