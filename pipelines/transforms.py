"""Beam transforms of the tokenization job.

``ReadCorpus`` lists a corpus (directory tree or ``.tar.gz`` archives) and
joins audio with transcripts into work items; ``TokenizeAudio`` decodes and
tokenizes them; ``WriteTokenShards`` writes sorted, atomically committed
shards with a manifest each; ``WriteDatasetInfo`` sums the manifests into
``dataset_info.json`` and ``dead_letter.jsonl``.

Every input ends as a record or a dead letter (:class:`contract.DeadLetter`):
``inputs = written + failed`` in the counters and in dataset_info.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import posixpath
import time
import uuid
from typing import Any, Iterable, Optional, Sequence

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
import numpy as np

from audiolm_t5x import contract
from audiolm_t5x.pipelines import audio
from audiolm_t5x.pipelines import corpus as corpus_lib
from audiolm_t5x.pipelines.tokenizers import base
from audiolm_t5x.pipelines.tokenizers import kmeans

NAMESPACE = "audiolm"
DEAD = "dead_letter"
MANIFEST_SUFFIX = ".manifest.json"


def _counter(name: str):
  return Metrics.counter(NAMESPACE, name)


def shard_of(record_id: str, num_shards: int) -> int:
  """Stable shard index of a record id (same on every runner and run)."""
  digest = hashlib.sha1(record_id.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") % num_shards


# --- Reading the corpus --------------------------------------------------------


class _ReadArchiveFn(beam.DoFn):
  """Streams one .tar.gz: audio refs with bytes, transcripts, refused members."""

  def __init__(self, splits: Optional[Sequence[str]]):
    self._splits = set(splits) if splits else None
    self._refused = _counter("archive_members_refused")
    self._inputs = _counter("inputs")
    self._failed = _counter("failed")

  def process(self, archive: str):
    with FileSystems.open(archive) as f:
      for kind, payload, member in corpus_lib.iter_archive(f):
        path = f"{archive}!{member.name}"
        if kind == "refused":
          self._refused.inc()
          self._inputs.inc()
          self._failed.inc()
          yield beam.pvalue.TaggedOutput(DEAD, contract.DeadLetter(
              path=path, id="", split=_split_or_other(member.name),
              step="read", reason=payload))
          continue
        if kind == "other":
          continue
        try:
          if kind == "audio":
            ref = corpus_lib.audio_ref(path, "", data=payload,
                                       rel=member.name)
            if self._splits is None or ref.split in self._splits:
              yield ("audio", ref)
          else:
            key = corpus_lib.chapter_key_of_transcript(member.name)
            if self._splits is None or key.split("/")[0] in self._splits:
              yield ("text", (key, path, payload))
        except corpus_lib.CorpusError as e:
          self._inputs.inc()
          self._failed.inc()
          yield beam.pvalue.TaggedOutput(DEAD, contract.DeadLetter(
              path=path, id="", split=_split_or_other(member.name),
              step="read", reason=str(e)))


OTHER_SPLIT = "_unsplit"  # dead letters of archive members outside any split


def _split_or_other(name: str) -> str:
  if ".." in name.split("/") or name.startswith("/"):
    return OTHER_SPLIT
  try:
    split = corpus_lib.split_rel(name)[0]
  except corpus_lib.CorpusError:
    return OTHER_SPLIT
  return split if split not in (".", "..") else OTHER_SPLIT


def _classify_path(path: str, root: str):
  rel = posixpath.relpath(path, root.rstrip("/"))
  if corpus_lib.is_transcript(path):
    return ("text", (corpus_lib.chapter_key_of_transcript(rel), path, None))
  return ("audio", corpus_lib.audio_ref(path, root, rel=rel))


class _ReadTranscriptFn(beam.DoFn):

  def process(self, item):
    key, path, text = item
    if text is None:
      with FileSystems.open(path) as f:
        text = f.read().decode("utf-8")
    try:
      yield key, corpus_lib.parse_transcripts(text, path=path)
    except corpus_lib.CorpusError as e:
      yield key, f"malformed transcript file: {e}"


class _MakeItemsFn(beam.DoFn):
  """Joins one chapter's audio with its transcripts into work items."""

  def __init__(self, corpus: str, group_seconds: Optional[float]):
    self._corpus = corpus
    self._group = group_seconds
    self._inputs = _counter("inputs")
    self._failed = _counter("failed")

  def process(self, element):
    _, grouped = element
    refs = list(grouped["audio"])
    texts = list(grouped["text"])
    transcripts = None
    error = None
    for t in texts:
      if isinstance(t, str):
        error = t
      else:
        transcripts = {**(transcripts or {}), **t}
    if error is not None:
      for ref in refs:
        self._inputs.inc()
        self._failed.inc()
        yield beam.pvalue.TaggedOutput(DEAD, contract.DeadLetter(
            path=ref.path, id=corpus_lib.record_id(ref, self._corpus),
            split=ref.split, step="transcript", reason=error))
      return
    durations = None
    if self._group is not None and self._group > 0:
      durations = {}
      for ref in refs:
        try:
          durations[ref.path] = _duration(ref)
        except audio.AudioError as e:
          self._inputs.inc()
          self._failed.inc()
          yield beam.pvalue.TaggedOutput(DEAD, contract.DeadLetter(
              path=ref.path, id=corpus_lib.record_id(ref, self._corpus),
              split=ref.split, step="group", reason=str(e)))
      refs = [r for r in refs if r.path in durations]
    for out in corpus_lib.make_items(refs, transcripts, corpus=self._corpus,
                                     group_seconds=self._group,
                                     durations=durations):
      self._inputs.inc()
      if isinstance(out, contract.DeadLetter):
        self._failed.inc()
        yield beam.pvalue.TaggedOutput(DEAD, out)
      else:
        yield out


def _duration(ref: corpus_lib.AudioRef) -> float:
  import io  # pylint: disable=g-import-not-at-top
  import soundfile as sf  # pylint: disable=g-import-not-at-top

  try:
    if ref.data is not None:
      return sf.info(io.BytesIO(ref.data)).duration
    with FileSystems.open(ref.path) as f:
      return sf.info(f).duration
  except Exception as e:  # pylint: disable=broad-except
    raise audio.AudioError(f"unreadable header: {e}") from e


class ReadCorpus(beam.PTransform):
  """Lists a corpus and yields WorkItems; failures go to output ``DEAD``.

  Args:
    input_dir: the corpus root (holding ``<split>/`` folders), or a folder of
      ``*.tar.gz`` archives when ``archives`` is True.
    corpus: ``librispeech`` or ``librilight``.
    splits: split names to keep (all when empty).
    group_seconds: see :func:`corpus.make_items`.
  """

  def __init__(self, *, input_dir: str, corpus: str = corpus_lib.LIBRISPEECH,
               splits: Sequence[str] = (), archives: bool = False,
               group_seconds: Optional[float] = None):
    super().__init__()
    if corpus not in corpus_lib.CORPORA:
      raise ValueError(f"corpus must be one of {corpus_lib.CORPORA}")
    self._root = input_dir.rstrip("/")
    self._corpus = corpus
    self._splits = tuple(splits)
    self._archives = archives
    self._group = group_seconds

  def _patterns(self) -> list[str]:
    splits = self._splits or ("*",)
    suffixes = ["*" + s for s in corpus_lib.AUDIO_SUFFIXES]
    if self._corpus == corpus_lib.LIBRISPEECH:
      suffixes.append("*" + corpus_lib.TRANSCRIPT_SUFFIX)
    return sorted(posixpath.join(self._root, s, "*", "*", suf)
                  for s in splits for suf in suffixes)

  def expand(self, p):
    if self._archives:
      listed = (
          p
          | "ListArchives" >> beam.Create(
              [posixpath.join(self._root, "*.tar.gz")])
          | "MatchArchives" >> fileio.MatchAll()
          | "ArchivePaths" >> beam.Map(lambda m: m.path)
          | "SpreadArchives" >> beam.Reshuffle()
          | "StreamArchives" >> beam.ParDo(
              _ReadArchiveFn(self._splits)).with_outputs(DEAD, main="files"))
      files, archive_dead = listed.files, listed[DEAD]
    else:
      root = self._root
      files = (
          p
          | "Patterns" >> beam.Create(self._patterns())
          | "Match" >> fileio.MatchAll(
              empty_match_treatment=fileio.EmptyMatchTreatment.ALLOW)
          | "Classify" >> beam.Map(lambda m: _classify_path(m.path, root)))
      archive_dead = None
    audio_refs = (files
                  | "AudioOnly" >> beam.Filter(lambda kv: kv[0] == "audio")
                  | "ByChapter" >> beam.Map(
                      lambda kv: (kv[1].chapter_key, kv[1])))
    texts = (files
             | "TextOnly" >> beam.Filter(lambda kv: kv[0] == "text")
             | "Values" >> beam.Map(lambda kv: kv[1])
             | "ReadTranscripts" >> beam.ParDo(_ReadTranscriptFn()))
    items = (
        {"audio": audio_refs, "text": texts}
        | "JoinChapters" >> beam.CoGroupByKey()
        | "MakeItems" >> beam.ParDo(
            _MakeItemsFn(self._corpus, self._group)).with_outputs(
                DEAD, main="items"))
    dead = items[DEAD]
    if archive_dead is not None:
      dead = (dead, archive_dead) | "AllReadDead" >> beam.Flatten()
    return items.items, dead


# --- Tokenizing ------------------------------------------------------------------


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
  """

  def __init__(self, spec: TokenizerSpec, *, stream_seconds: float = 300.0,
               reject_silence: bool = True):
    self._spec = spec
    self._stream_samples = int(stream_seconds * audio.constants.SAMPLE_RATE)
    self._reject_silence = reject_silence
    self._c = {n: _counter(n) for n in (
        "written", "failed", "resampled", "downmixed", "streamed",
        "audio_seconds_x1000", "semantic_tokens", "acoustic_frames")}

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
                                     stats=stats)
      finally:
        if ref.data is None:
          source.close()

  def _size(self, item) -> int:
    """Samples of a single-part 16 kHz input from its header, or 0."""
    if len(item.parts) != 1:
      return 0
    try:
      return int(_duration(item.parts[0]) * audio.constants.SAMPLE_RATE)
    except audio.AudioError:
      return 0

  def _record(self, item, num_samples, sem_ids, codes):
    rec = contract.TokenRecord(
        id=item.id, split=item.split, speaker_id=item.speaker_id,
        chapter_id=item.chapter_id, source=item.source,
        transcript=item.transcript, num_samples=num_samples,
        semantic_tokens=np.asarray(sem_ids, np.int64),
        acoustic_tokens=np.asarray(codes, np.int64))
    rec.validate(semantic_codebook_size=self._book.size,
                 acoustic_levels=self._ac.levels,
                 acoustic_codebook_size=self._ac.codebook_size)
    self._c["written"].inc()
    self._c["audio_seconds_x1000"].inc(
        int(1000 * num_samples / audio.constants.SAMPLE_RATE))
    self._c["semantic_tokens"].inc(rec.semantic_tokens.size)
    self._c["acoustic_frames"].inc(rec.acoustic_tokens.shape[0])
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
                        np.concatenate(codes))

  def process(self, batch: Sequence[corpus_lib.WorkItem]):
    pending = []  # (item, waveform)
    for item in batch:
      try:
        if self._can_stream and self._size(item) > self._stream_samples:
          yield self._stream(item)
          continue
        stats_list: list[audio.AudioStats] = []
        blocks = list(self._blocks(item, stats_list))
        wave = (np.concatenate(blocks) if blocks else
                np.zeros([0], np.float32))
        for s in stats_list:
          self._note(s)
        audio.check_usable(wave, reject_silence=self._reject_silence)
        pending.append((item, wave))
      except audio.AudioError as e:
        yield self._dead(item, "decode", str(e))
      except contract.MalformedRecordError as e:
        yield self._dead(item, "validate", str(e))
      except Exception as e:  # pylint: disable=broad-except
        yield self._dead(item, "tokenize", f"{type(e).__name__}: {e}")
    if not pending:
      return
    waves = [w for _, w in pending]
    try:
      embs = self._sem.embed_batch(waves)
      codes = self._ac.encode_batch(waves)
    except Exception:  # pylint: disable=broad-except
      # Isolate the failing input: redo one by one.
      embs, codes = [], []
      for w in waves:
        try:
          embs.append(self._sem.embed(w))
          codes.append(self._ac.encode(w))
        except Exception as e:  # pylint: disable=broad-except
          embs.append(e)
          codes.append(e)
    for (item, wave), e, c in zip(pending, embs, codes):
      if isinstance(e, Exception):
        yield self._dead(item, "tokenize", f"{type(e).__name__}: {e}")
        continue
      try:
        yield self._record(item, wave.shape[0], self._book.quantize(e), c)
      except contract.MalformedRecordError as err:
        yield self._dead(item, "validate", str(err))
      except Exception as err:  # pylint: disable=broad-except
        yield self._dead(item, "tokenize", f"{type(err).__name__}: {err}")


class TokenizeAudio(beam.PTransform):
  """WorkItems -> (TokenRecords, dead letters)."""

  def __init__(self, *, spec: TokenizerSpec, batch_size: int = 8,
               stream_seconds: float = 300.0, reject_silence: bool = True):
    super().__init__()
    self._spec = spec
    self._batch_size = batch_size
    self._stream_seconds = stream_seconds
    self._reject_silence = reject_silence

  def expand(self, items):
    out = (
        items
        | "Spread" >> beam.Reshuffle()
        | "Batch" >> beam.BatchElements(min_batch_size=1,
                                        max_batch_size=self._batch_size)
        | "Tokenize" >> beam.ParDo(TokenizeFn(
            self._spec, stream_seconds=self._stream_seconds,
            reject_silence=self._reject_silence)).with_outputs(
                DEAD, main="records"))
    return out.records, out[DEAD]


# --- Writing ---------------------------------------------------------------------


def manifest_path(output_dir: str, split: str, index: int,
                  num_shards: int) -> str:
  name = contract.shard_name(split, index, num_shards)
  return posixpath.join(output_dir, split,
                        name[: -len(contract.SHARD_SUFFIX)] + MANIFEST_SUFFIX)


def read_manifests(output_dir: str) -> list[dict]:
  """Every committed shard manifest under ``output_dir`` (sorted)."""
  pattern = posixpath.join(output_dir, "*", "*" + MANIFEST_SUFFIX)
  try:
    matches = FileSystems.match([pattern])[0].metadata_list
  except Exception:  # pylint: disable=broad-except
    return []
  out = []
  for m in sorted(matches, key=lambda m: m.path):
    with FileSystems.open(m.path) as f:
      out.append(json.loads(f.read().decode("utf-8")))
  return out


def _tfrecord_bytes(payloads: Iterable[bytes]) -> bytes:
  """TFRecord framing (length, masked crc32c of length, data, masked crc)."""
  from apache_beam.io.tfrecordio import _TFRecordUtil  # pylint: disable=g-import-not-at-top

  buf = io.BytesIO()
  for payload in payloads:
    _TFRecordUtil.write_record(buf, payload)
  return buf.getvalue()


def _atomic_write(path: str, data: bytes) -> None:
  """Writes through any Beam filesystem: a temporary name, then a rename."""
  folder = posixpath.dirname(path)
  if not FileSystems.exists(folder):
    try:
      FileSystems.mkdirs(folder)
    except (IOError, OSError):  # another worker made it meanwhile
      if not FileSystems.exists(folder):
        raise
  tmp = f"{path}.tmp-{uuid.uuid4().hex}"
  with FileSystems.create(tmp) as f:
    f.write(data)
  if FileSystems.exists(path):
    FileSystems.delete([path])
  FileSystems.rename([tmp], [path])


class _WriteShardFn(beam.DoFn):
  """Writes one shard: records sorted by id, then its manifest (the commit)."""

  def __init__(self, output_dir: str, num_shards: int, fingerprints: dict):
    self._out = output_dir
    self._n = num_shards
    self._fp = fingerprints

  def process(self, element):
    (split, index), grouped = element
    records = sorted(grouped["records"], key=lambda r: r.id)
    dead = sorted(grouped["dead"], key=lambda d: (d.path, d.step))
    final = posixpath.join(self._out, split,
                           contract.shard_name(split, index, self._n))
    _atomic_write(final, _tfrecord_bytes(r.to_example_bytes() for r in records))
    manifest = {
        "split": split, "shard": index, "num_shards": self._n,
        "file": posixpath.basename(final), "fingerprints": self._fp,
        "records": len(records), "failed": len(dead),
        "num_samples": sum(r.num_samples for r in records),
        "semantic_tokens": sum(int(r.semantic_tokens.size) for r in records),
        "acoustic_frames": sum(int(r.acoustic_tokens.shape[0])
                               for r in records),
        "ids": [r.id for r in records],
        "dead_letters": [dataclasses.asdict(d) for d in dead],
    }
    _atomic_write(manifest_path(self._out, split, index, self._n),
                  json.dumps(manifest, sort_keys=True).encode("utf-8"))
    yield (split, index)


class WriteTokenShards(beam.PTransform):
  """(records, dead letters) -> committed shards; yields (split, shard) keys."""

  def __init__(self, *, output_dir: str, num_shards: int, fingerprints: dict):
    super().__init__()
    self._out = output_dir
    self._n = num_shards
    self._fp = fingerprints

  def expand(self, pcolls):
    records, dead = pcolls
    n = self._n
    keyed_records = records | "KeyRecords" >> beam.Map(
        lambda r: ((r.split, shard_of(r.id, n)), r))
    keyed_dead = dead | "KeyDead" >> beam.Map(
        lambda d: ((d.split, shard_of(d.id or d.path, n)), d))
    return (
        {"records": keyed_records, "dead": keyed_dead}
        | "GroupShards" >> beam.CoGroupByKey()
        | "WriteShards" >> beam.ParDo(
            _WriteShardFn(self._out, self._n, self._fp)))


def summarize(manifests: Iterable[dict]) -> dict:
  """Per-split and total counts from shard manifests."""
  splits: dict[str, dict[str, Any]] = {}
  for m in manifests:
    s = splits.setdefault(m["split"], {
        "records": 0, "failed": 0, "num_samples": 0, "semantic_tokens": 0,
        "acoustic_frames": 0, "shards": 0, "num_shards": m["num_shards"],
        "failed_by_step": {}})
    for k in ("records", "failed", "num_samples", "semantic_tokens",
              "acoustic_frames"):
      s[k] += m[k]
    s["shards"] += 1
    for d in m["dead_letters"]:
      s["failed_by_step"][d["step"]] = s["failed_by_step"].get(d["step"], 0) + 1
  for s in splits.values():
    s["hours"] = round(s["num_samples"] / audio.constants.SAMPLE_RATE / 3600,
                       6)
    s["inputs"] = s["records"] + s["failed"]
  return splits


class _WriteInfoFn(beam.DoFn):

  def __init__(self, output_dir: str, info: contract.DatasetInfo):
    self._out = output_dir
    self._info = info

  def process(self, unused_count):
    manifests = read_manifests(self._out)
    info = dataclasses.replace(self._info, splits=summarize(manifests))
    dead = sorted((d for m in manifests for d in m["dead_letters"]),
                  key=lambda d: (d["split"], d["path"], d["step"]))
    _atomic_write(
        posixpath.join(self._out, contract.DEAD_LETTER_FILENAME),
        "".join(json.dumps(d, sort_keys=True) + "\n" for d in dead).encode())
    info.options = {**info.options, "finished_unix": int(time.time())}
    _atomic_write(posixpath.join(self._out, contract.DATASET_INFO_FILENAME),
                  info.to_json().encode("utf-8"))
    yield info.splits


class WriteDatasetInfo(beam.PTransform):
  """After every shard is committed, writes dataset_info.json from manifests."""

  def __init__(self, *, output_dir: str, info: contract.DatasetInfo):
    super().__init__()
    self._out = output_dir
    self._info = info

  def expand(self, written):
    return (written
            | "CountShards" >> beam.combiners.Count.Globally()
            | "WriteInfo" >> beam.ParDo(_WriteInfoFn(self._out, self._info)))


def done_shards(output_dir: str, fingerprints: dict, num_shards: int
                ) -> frozenset:
  """(split, shard) pairs already committed by an earlier run.

  Raises:
    ValueError: if the output holds shards of other tokenizers or shard count.
  """
  done = set()
  for m in read_manifests(output_dir):
    if m["fingerprints"] != fingerprints or m["num_shards"] != num_shards:
      raise ValueError(
          f"{output_dir} holds shards written with other settings "
          f"(fingerprints {m['fingerprints']}, num_shards {m['num_shards']}); "
          f"this run has {fingerprints}, {num_shards}. Use a new --output_dir "
          "or delete the old one.")
    done.add((m["split"], m["shard"]))
  return frozenset(done)


def dataset_versions() -> dict:
  import platform  # pylint: disable=g-import-not-at-top

  out = {"python": platform.python_version(), "audiolm_t5x": _own_version()}
  for mod in ("apache_beam", "numpy", "soundfile", "tensorflow", "sklearn"):
    try:
      out[mod] = __import__(mod).__version__
    except Exception:  # pylint: disable=broad-except
      pass
  return out


def _own_version() -> str:
  import audiolm_t5x  # pylint: disable=g-import-not-at-top
  return audiolm_t5x.__version__


__all__ = ["ReadCorpus", "TokenizeAudio", "WriteTokenShards",
           "WriteDatasetInfo", "TokenizerSpec", "TokenizeFn", "shard_of",
           "done_shards", "summarize", "read_manifests", "DEAD"]
