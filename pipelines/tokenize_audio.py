"""Tokenizing: the tokenization job's middle step (``TokenizeAudio``).

``TokenizeAudio`` decodes work items and turns them into
:class:`contract.TokenRecord` s with the semantic embedder + k-means codebook
and the acoustic tokenizer of a :class:`TokenizerSpec`; failures go to the
tagged output :data:`reporting.DEAD`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from typing import Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.utils import windowed_value
import numpy as np

from audiolm_t5x import contract
from . import audio
from . import corpus as corpus_lib
from .read_corpus import duration_seconds
from .reporting import DEAD
from .reporting import counter as _counter
from .tokenizers import base
from .tokenizers import kmeans


@dataclasses.dataclass(frozen=True)
class TokenizerSpec:
  """Picklable settings of the two tokenizers (built on workers)."""

  semantic: str
  semantic_options: tuple = ()
  codebook: str = ""
  acoustic: str = "lyra"
  acoustic_options: tuple = ()

  def build(self):
    sem = base.make_semantic_embedder(self.semantic,
                                      **dict(self.semantic_options))
    ac = base.make_acoustic_tokenizer(self.acoustic,
                                      **dict(self.acoustic_options))
    return sem, ac

  def info(self) -> tuple[dict, dict]:
    """dataset_info's tokenizer entries (loads the codebook and small files)."""
    sem, ac = self.build()
    book = kmeans.KMeansCodebook.load(self.codebook)
    sem_info = {**sem.info(), **book.info()}
    sem_info["fingerprint"] = base.fingerprint_of(sem_info["fingerprint"],
                                                  book.fingerprint)
    return sem_info, ac.info()


class TokenizeFn(beam.DoFn):
  """Batches of WorkItems -> TokenRecords; failures to output ``DEAD``.

  Short inputs are decoded whole and tokenized as a batch (the backends'
  ``embed_batch`` / ``encode_batch``). Inputs longer than ``stream_seconds``
  are streamed block by block when both backends stream, so memory stays
  bounded on hour-long recordings.

  Overlap (``overlap``; default: on when a backend runs on a GPU): the two
  models run on one background thread while the worker's thread decodes the
  next batch (its files on up to ``decode_threads`` threads) and turns the
  previous batch's output into records (k-means, validation, counters). A
  batch's records are thus emitted one ``process`` call later, the last ones
  in ``finish_bundle``, in their own window; what is emitted is the same.
  """

  def __init__(self, spec: TokenizerSpec, *, stream_seconds: float = 300.0,
               reject_silence: bool = True, overlap: Optional[bool] = None,
               decode_threads: int = 4):
    self._spec = spec
    self._overlap_opt = overlap
    self._decode_threads = max(1, decode_threads)
    self._stream_samples = int(stream_seconds * audio.constants.SAMPLE_RATE)
    self._reject_silence = reject_silence
    self._c = {n: _counter(n) for n in (
        "written", "failed", "resampled", "downmixed", "streamed",
        "audio_seconds_x1000", "semantic_tokens", "acoustic_frames",
        "suffix_mismatch", *audio.LEVEL_FLAGS)}

  def setup(self):
    self._sem, self._ac = self._spec.build()
    self._sem.load()
    self._ac.load()
    self._book = kmeans.KMeansCodebook.load(self._spec.codebook)
    self._can_stream = self._sem.streaming and self._ac.streaming
    if self._book.dim != self._sem.dim:
      raise base.TokenizerError(
          f"codebook {self._spec.codebook} has dim {self._book.dim}, but the "
          f"{self._sem.name} embedder gives {self._sem.dim}")
    self._overlap = (self._overlap_opt if self._overlap_opt is not None
                     else self._sem.on_accelerator or
                     self._ac.on_accelerator)
    self._models_pool = self._decode_pool = None
    self._inflight = None  # (pending, window, timestamp, future)
    if self._overlap:
      self._models_pool = concurrent.futures.ThreadPoolExecutor(1)
      threads = min(self._decode_threads, os.cpu_count() or 1)
      if threads > 1:
        self._decode_pool = concurrent.futures.ThreadPoolExecutor(threads)

  def teardown(self):
    for pool in (self._models_pool, self._decode_pool):
      if pool is not None:
        pool.shutdown(wait=True)

  def _dead(self, item: corpus_lib.WorkItem, step: str, reason: str):
    self._c["failed"].inc()
    return beam.pvalue.TaggedOutput(DEAD, contract.DeadLetter(
        path=item.path, id=item.id, split=item.split, step=step,
        reason=reason))

  def _note(self, stats: audio.AudioStats) -> None:
    if stats.resampled:
      self._c["resampled"].inc()
    if stats.downmixed:
      self._c["downmixed"].inc()

  def _blocks(self, item, stats_list):
    for ref in item.parts:
      stats = audio.AudioStats()
      stats_list.append(stats)
      source = ref.data if ref.data is not None else FileSystems.open(ref.path)
      try:
        yield from audio.iter_blocks(source, block_samples=1 << 18,
                                     stats=stats,
                                     suffix=corpus_lib.audio_suffix(ref.rel))
      finally:
        if ref.data is None:
          source.close()

  def _size(self, item) -> int:
    """Samples of a single-part 16 kHz input from its header, or 0."""
    if len(item.parts) != 1:
      return 0
    try:
      return int(duration_seconds(item.parts[0]) * audio.constants.SAMPLE_RATE)
    except audio.AudioError:
      return 0

  def _record(self, item, num_samples, sem_ids, codes, flags=()):
    rec = contract.TokenRecord(
        id=item.id, split=item.split, speaker_id=item.speaker_id,
        chapter_id=item.chapter_id, source=item.source,
        transcript=item.transcript, num_samples=num_samples,
        semantic_tokens=np.asarray(sem_ids, np.int64),
        acoustic_tokens=np.asarray(codes, np.int64), flags=tuple(flags))
    rec.validate(semantic_codebook_size=self._book.size,
                 acoustic_levels=self._ac.levels,
                 acoustic_codebook_size=self._ac.codebook_size)
    self._c["written"].inc()
    self._c["audio_seconds_x1000"].inc(
        int(1000 * num_samples / audio.constants.SAMPLE_RATE))
    self._c["semantic_tokens"].inc(rec.semantic_tokens.size)
    self._c["acoustic_frames"].inc(rec.acoustic_tokens.shape[0])
    for flag in rec.flags:
      self._c[flag].inc()
    return rec

  def _stream(self, item):
    sem_stream, ac_stream = self._sem.new_stream(), self._ac.new_stream()
    stats_list: list[audio.AudioStats] = []
    emb, codes, total, nonzero = [], [], 0, False
    for block in self._blocks(item, stats_list):
      total += block.shape[0]
      nonzero = nonzero or bool(np.any(block))
      emb.append(self._book.quantize(sem_stream.push(block)))
      codes.append(ac_stream.push(block))
    emb.append(self._book.quantize(sem_stream.finish()))
    codes.append(ac_stream.finish())
    for s in stats_list:
      self._note(s)
    audio.check_counts(total, has_signal=nonzero,
                       reject_silence=self._reject_silence)
    self._c["streamed"].inc()
    return self._record(item, total, np.concatenate(emb),
                        np.concatenate(codes), audio.level_flags(stats_list))

  def _failure(self, item, e: Exception):
    """The dead letter of an input that failed before or after the models."""
    if isinstance(e, audio.FormatMismatchError):
      self._c["suffix_mismatch"].inc()
      return self._dead(item, "format", str(e))
    if isinstance(e, audio.AudioError):
      return self._dead(item, "decode", str(e))
    if isinstance(e, contract.MalformedRecordError):
      return self._dead(item, "validate", str(e))
    return self._dead(item, "tokenize", f"{type(e).__name__}: {e}")

  def _decode(self, item):
    """(waveform, stats of a complete read, exception) of one input
    (thread-safe: the caller counts)."""
    stats_list: list[audio.AudioStats] = []
    read = []
    try:
      blocks = list(self._blocks(item, stats_list))
      read = stats_list
      wave = (np.concatenate(blocks) if blocks else
              np.zeros([0], np.float32))
      audio.check_usable(wave, reject_silence=self._reject_silence)
      return wave, read, None
    except Exception as e:  # pylint: disable=broad-except
      return None, read, e

  def _models(self, waves):
    """Both models on a batch; per input its (embeddings, codes), or the
    exception of an input that fails alone."""
    try:
      return list(zip(self._sem.embed_batch(waves),
                      self._ac.encode_batch(waves)))
    except Exception:  # pylint: disable=broad-except
      # Isolate the failing input: redo one by one.
      out = []
      for w in waves:
        try:
          out.append((self._sem.embed(w), self._ac.encode(w)))
        except Exception as e:  # pylint: disable=broad-except
          out.append((e, e))
      return out

  def _emit(self, pending, outputs):
    for (item, wave, flags), (e, c) in zip(pending, outputs):
      if isinstance(e, Exception):
        yield self._dead(item, "tokenize", f"{type(e).__name__}: {e}")
        continue
      try:
        yield self._record(item, wave.shape[0], self._book.quantize(e), c,
                           flags)
      except Exception as err:  # pylint: disable=broad-except
        yield self._failure(item, err)

  def _collect(self):
    """The in-flight batch's outputs (waits for the models)."""
    pending, win, ts, future = self._inflight
    self._inflight = None
    return pending, win, ts, future.result()

  def process(self, batch: Sequence[corpus_lib.WorkItem],
              win=beam.DoFn.WindowParam, ts=beam.DoFn.TimestampParam):
    pending = []  # (item, waveform, level flags)
    whole = []
    for item in batch:
      if self._can_stream and self._size(item) > self._stream_samples:
        try:
          yield self._stream(item)
        except Exception as e:  # pylint: disable=broad-except
          yield self._failure(item, e)
        continue
      whole.append(item)
    decoded = (list(self._decode_pool.map(self._decode, whole))
               if self._decode_pool is not None and len(whole) > 1
               else [self._decode(item) for item in whole])
    for item, (wave, stats_list, error) in zip(whole, decoded):
      for s in stats_list:
        self._note(s)
      if error is not None:
        yield self._failure(item, error)
        continue
      pending.append((item, wave, audio.level_flags(stats_list)))
    if not self._overlap:
      if pending:
        yield from self._emit(pending, self._models([w for _, w, _ in pending]))
      return
    # Overlapped: start this batch's models, then emit the previous batch
    # (its window may differ from this one's).
    previous = self._collect() if self._inflight is not None else None
    if pending:
      self._inflight = (pending, win, ts, self._models_pool.submit(
          self._models, [w for _, w, _ in pending]))
    if previous is not None:
      p_pending, p_win, p_ts, outputs = previous
      for out in self._emit(p_pending, outputs):
        yield _in_window(out, p_win, p_ts, same=(p_win, p_ts) == (win, ts))

  def finish_bundle(self):
    if self._inflight is not None:
      pending, win, ts, outputs = self._collect()
      for out in self._emit(pending, outputs):
        yield _in_window(out, win, ts, same=False)


def _in_window(out, win, ts, *, same: bool):
  """``out`` (a value or TaggedOutput) as emitted from another call than
  its input's: in ``win`` at ``ts`` (kept as is when that is the current
  call's own window)."""
  if same:
    return out
  if isinstance(out, beam.pvalue.TaggedOutput):
    return beam.pvalue.TaggedOutput(out.tag, windowed_value.WindowedValue(
        out.value, ts, [win]))
  return windowed_value.WindowedValue(out, ts, [win])


class TokenizeAudio(beam.PTransform):
  """WorkItems -> (TokenRecords, dead letters)."""

  def __init__(self, *, spec: TokenizerSpec, batch_size: int = 8,
               stream_seconds: float = 300.0, reject_silence: bool = True,
               overlap: Optional[bool] = None):
    super().__init__()
    self._overlap = overlap
    self._spec = spec
    self._batch_size = batch_size
    self._stream_seconds = stream_seconds
    self._reject_silence = reject_silence

  def expand(self, items):
    out = (
        items
        | "Spread" >> beam.Reshuffle()
        # Full batches: BatchElements' adaptive sizing starts at one input
        # per batch and grows per bundle, which left batches of 1-2 inputs
        # (measured on the DirectRunner), too few for batched models.
        | "Batch" >> beam.BatchElements(min_batch_size=self._batch_size,
                                        max_batch_size=self._batch_size)
        | "Tokenize" >> beam.ParDo(TokenizeFn(
            self._spec, stream_seconds=self._stream_seconds,
            reject_silence=self._reject_silence,
            overlap=self._overlap)).with_outputs(
                DEAD, main="records"))
    return out.records, out[DEAD]

