"""Reading a corpus: the tokenization job's first step (``ReadCorpus``).

``ReadCorpus`` lists a corpus (directory tree or ``.tar.gz`` archives) and
joins audio with transcripts into :class:`corpus.WorkItem` s. Every listed
input ends as a work item or a dead letter (output :data:`reporting.DEAD`).
"""

from __future__ import annotations

import io
import posixpath
from typing import Optional, Sequence

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems

from audiolm_t5x import contract
from . import audio
from . import corpus as corpus_lib
from .reporting import DEAD
from .reporting import counter as _counter


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

