"""Reading a corpus: the tokenization job's first step (``ReadCorpus``).

``ListInputs`` yields the candidates (:class:`corpus.Entry`) that the
launcher listed (or lists them itself); ``ReadCorpus`` turns them into
:class:`corpus.WorkItem` s, joining audio with transcripts by chapter. Every
candidate ends as a work item or a dead letter (output
:data:`reporting.DEAD`): candidates that must not be opened (folders, links,
special files), files off the ``<split>/<speaker>/<chapter>/<file>`` layout,
unreadable or non-UTF-8 transcripts (every utterance of the chapter, naming
the file), broken archives and refused members (naming archive and member).
"""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from audiolm_t5x import contract
from . import audio
from . import corpus as corpus_lib
from .reporting import DEAD
from .reporting import counter as _counter

OTHER_SPLIT = corpus_lib.OTHER_SPLIT


def write_listing(path: str, entries: Sequence[corpus_lib.Entry]) -> None:
  """Writes the launcher's listing (JSON lines) for :class:`ListInputs`."""
  with FileSystems.create(path) as f:
    for e in entries:
      f.write((json.dumps(dataclasses.asdict(e), sort_keys=True) + "\n"
               ).encode("utf-8"))


def _read_listing(path: str):
  with FileSystems.open(path) as f:
    for line in io.TextIOWrapper(f, encoding="utf-8"):
      if line.strip():
        yield corpus_lib.Entry(**json.loads(line))


class ListInputs(beam.PTransform):
  """The corpus's candidates, as :class:`corpus.Entry` elements.

  Args:
    listing: a file written by :func:`write_listing` (the job's launcher lists
      once and checks the listing against committed shards); or None to list
      ``input_dir`` here, at pipeline construction.
    input_dir, splits, archives, follow_external_links: what to list.
  """

  def __init__(self, *, listing: Optional[str] = None, input_dir: str = "",
               splits: Sequence[str] = (), archives: bool = False,
               follow_external_links: bool = False):
    super().__init__()
    self._listing = listing
    self._root = input_dir
    self._splits = tuple(splits)
    self._archives = archives
    self._follow = follow_external_links

  def expand(self, p):
    if self._listing:
      return (p | "Listing" >> beam.Create([self._listing])
              | "ReadListing" >> beam.FlatMap(_read_listing))
    if self._archives:
      entries = corpus_lib.list_archives(self._root)
    else:
      entries = corpus_lib.list_inputs(
          self._root, splits=self._splits,
          follow_external_links=self._follow)
    return p | "Entries" >> beam.Create(entries)


def _dead_read(path: str, rel: str, reason: str, corpus: str
               ) -> contract.DeadLetter:
  split, _ = corpus_lib.shard_key(rel, corpus=corpus, grouped=False)
  rid = ""
  if split != OTHER_SPLIT and corpus_lib.is_audio(rel):
    rid = corpus_lib.record_id(corpus_lib.audio_ref(path, "", rel=rel), corpus)
  return contract.DeadLetter(path=path, id=rid, split=split, step="read",
                             reason=reason)


class _ClassifyFn(beam.DoFn):
  """Entries -> ("audio", AudioRef) / ("text", (chapter, path, None)) / dead."""

  def __init__(self, corpus: str, strict_layout: bool):
    self._corpus = corpus
    self._strict = strict_layout
    self._inputs = _counter("inputs")
    self._failed = _counter("failed")

  def _dead(self, entry, reason):
    self._inputs.inc()
    self._failed.inc()
    return beam.pvalue.TaggedOutput(DEAD, _dead_read(
        entry.path, entry.rel, reason, self._corpus))

  def process(self, entry: corpus_lib.Entry):
    parts = entry.rel.split("/")
    off_layout = corpus_lib.chapter_of(entry.rel) is None or (
        self._strict and len(parts) != 4)
    if entry.kind == corpus_lib.TEXT:
      if not off_layout:  # a transcript outside any chapter shapes no record
        problem = (f"transcript {entry.path} {entry.problem}"
                   if entry.problem else None)
        yield ("text", (corpus_lib.chapter_key_of_transcript(entry.rel),
                        entry.path, problem))
    elif entry.problem:
      yield self._dead(entry, f"{entry.path} {entry.problem}")
    elif off_layout:
      yield self._dead(entry, f"{entry.rel} is not at <split>/<speaker>/"
                       "<chapter>/<file> under --input_dir")
    else:
      yield ("audio", corpus_lib.audio_ref(entry.path, "", rel=entry.rel))


class _ReadArchiveFn(beam.DoFn):
  """Streams one archive: audio refs with bytes, transcripts, dead letters."""

  def __init__(self, splits: Optional[Sequence[str]], corpus: str,
               max_member_bytes: int):
    self._splits = set(splits) if splits else None
    self._corpus = corpus
    self._max = max_member_bytes
    self._refused = _counter("archive_members_refused")
    self._broken = _counter("archives_broken")
    self._inputs = _counter("inputs")
    self._failed = _counter("failed")

  def _dead(self, path, rel, reason):
    self._inputs.inc()
    self._failed.inc()
    return beam.pvalue.TaggedOutput(DEAD, _dead_read(path, rel, reason,
                                                     self._corpus))

  def _wanted(self, split: str) -> bool:
    return self._splits is None or split in self._splits or split == OTHER_SPLIT

  def process(self, entry: corpus_lib.Entry):
    if entry.problem:
      yield self._dead(entry.path, entry.rel,
                       f"{entry.path} {entry.problem}")
      return
    # Raw bytes: iter_archive inflates in 64 KiB steps. Beam's gzip reader
    # inflates 16 MiB of input at once, i.e. gigabytes of a zero-filled member.
    with FileSystems.open(entry.path,
                          compression_type=CompressionTypes.UNCOMPRESSED) as f:
      for kind, payload, name in corpus_lib.iter_archive(
          f, max_member_bytes=self._max):
        path = f"{entry.path}!{name}" if name else entry.path
        rel = name or entry.rel
        split, _ = corpus_lib.shard_key(rel, corpus=self._corpus,
                                        grouped=False)
        if not self._wanted(split):
          continue
        if kind == "broken":
          self._broken.inc()
          yield self._dead(path, rel, f"{entry.path}: {payload}")
        elif kind == "refused":
          self._refused.inc()
          yield self._dead(path, rel, payload)
        elif corpus_lib.chapter_of(rel) is None:
          if kind == "audio":
            yield self._dead(path, rel, f"archive member {name!r} is not at "
                             "<split>/<speaker>/<chapter>/<file>")
        elif kind == "audio":
          yield ("audio", corpus_lib.audio_ref(path, "", data=payload,
                                               rel=name))
        else:
          yield ("text", (corpus_lib.chapter_key_of_transcript(name), path,
                          payload))


class _ReadTranscriptFn(beam.DoFn):
  """(chapter, path, bytes | problem | None) -> (chapter, {id: text} | error)."""

  def process(self, item):
    key, path, payload = item
    if isinstance(payload, str):  # a problem found while listing
      yield key, payload
      return
    try:
      if payload is None:
        with FileSystems.open(path) as f:
          payload = f.read()
      text = corpus_lib.decode_transcript(payload, path=path)
      yield key, corpus_lib.parse_transcripts(text, path=path)
    except corpus_lib.CorpusError as e:
      yield key, f"unusable transcript file: {e}"
    except (IOError, OSError) as e:
      yield key, f"unreadable transcript file {path}: {e}"


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
          durations[ref.path] = duration_seconds(ref)
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


def duration_seconds(ref: corpus_lib.AudioRef) -> float:
  """Seconds of audio of one input, from its header."""
  import soundfile as sf  # pylint: disable=g-import-not-at-top

  try:
    if ref.data is not None:
      return sf.info(io.BytesIO(ref.data)).duration
    with FileSystems.open(ref.path) as f:
      return sf.info(f).duration
  except Exception as e:  # pylint: disable=broad-except
    raise audio.AudioError(f"unreadable header: {e}") from e


class ReadCorpus(beam.PTransform):
  """Candidates -> WorkItems; failures go to output ``DEAD``.

  Apply to a PCollection of :class:`corpus.Entry` (from :class:`ListInputs`),
  or to the pipeline to list ``input_dir`` here.

  Args:
    input_dir: the corpus root (holding ``<split>/`` folders), or a folder of
      archives when ``archives`` is True.
    corpus: ``librispeech`` or ``librilight``.
    splits: split names to keep (all when empty).
    group_seconds: see :func:`corpus.make_items`.
    follow_external_links: read links that leave ``input_dir``.
    max_member_bytes: archive members above this size are refused unread.
  """

  def __init__(self, *, input_dir: str = "",
               corpus: str = corpus_lib.LIBRISPEECH,
               splits: Sequence[str] = (), archives: bool = False,
               group_seconds: Optional[float] = None,
               follow_external_links: bool = False,
               max_member_bytes: int = corpus_lib.DEFAULT_MAX_MEMBER_BYTES):
    super().__init__()
    if corpus not in corpus_lib.CORPORA:
      raise ValueError(f"corpus must be one of {corpus_lib.CORPORA}")
    self._root = input_dir.rstrip("/")
    self._corpus = corpus
    self._splits = tuple(splits)
    self._archives = archives
    self._group = group_seconds
    self._follow = follow_external_links
    self._max = max_member_bytes

  def expand(self, pcoll):
    if isinstance(pcoll, beam.pvalue.PBegin):
      pcoll = pcoll | "ListInputs" >> ListInputs(
          input_dir=self._root, splits=self._splits, archives=self._archives,
          follow_external_links=self._follow)
    if self._archives:
      files = (pcoll
               | "SpreadArchives" >> beam.Reshuffle()
               | "StreamArchives" >> beam.ParDo(_ReadArchiveFn(
                   self._splits, self._corpus, self._max)).with_outputs(
                       DEAD, main="files"))
    else:
      files = pcoll | "Classify" >> beam.ParDo(_ClassifyFn(
          self._corpus, strict_layout=True)).with_outputs(DEAD, main="files")
    audio_refs = (files.files
                  | "AudioOnly" >> beam.Filter(lambda kv: kv[0] == "audio")
                  | "ByChapter" >> beam.Map(
                      lambda kv: (kv[1].chapter_key, kv[1])))
    texts = (files.files
             | "TextOnly" >> beam.Filter(lambda kv: kv[0] == "text")
             | "Values" >> beam.Map(lambda kv: kv[1])
             | "ReadTranscripts" >> beam.ParDo(_ReadTranscriptFn()))
    items = (
        {"audio": audio_refs, "text": texts}
        | "JoinChapters" >> beam.CoGroupByKey()
        | "MakeItems" >> beam.ParDo(
            _MakeItemsFn(self._corpus, self._group)).with_outputs(
                DEAD, main="items"))
    dead = (items[DEAD], files[DEAD]) | "AllReadDead" >> beam.Flatten()
    return items.items, dead


class InputsByShard(beam.PTransform):
  """Candidates -> ``((split, shard), relative path)``: what each shard covers.

  The job's manifests record these (see :func:`corpus.inputs_by_shard`; the
  launcher applies the same rule to decide what a rerun may keep).
  """

  def __init__(self, *, corpus: str, grouped: bool, num_shards: int):
    super().__init__()
    self._corpus = corpus
    self._grouped = grouped
    self._n = num_shards

  def expand(self, entries):
    corpus, grouped, n = self._corpus, self._grouped, self._n

    def assign(element):
      _, chapter_entries = element
      shards = corpus_lib.inputs_by_shard(
          chapter_entries, corpus=corpus, grouped=grouped, num_shards=n)
      for key, rels in sorted(shards.items()):
        for rel in sorted(rels):
          yield key, rel

    return (entries
            | "ByChapter" >> beam.Map(
                lambda e: (corpus_lib.chapter_of(e.rel) or e.rel, e))
            | "GroupChapters" >> beam.GroupByKey()
            | "Assign" >> beam.FlatMap(assign))
