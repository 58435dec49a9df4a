"""Corpus layouts: LibriSpeech and Libri-Light, from directories or archives.

* LibriSpeech: ``<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac``
  with one ``<speaker>-<chapter>.trans.txt`` per chapter (``<utt id> <TEXT>``
  per line). The released ``.tar.gz`` archives hold the same tree under
  ``LibriSpeech/``; they are streamed member by member, never extracted.
* Libri-Light: ``<split>/<speaker>/<book>/<name>.flac`` with ``<name>.json``
  metadata beside each recording; no transcripts.

Pure functions here; the Beam transforms that use them are in
``audiolm_t5x.pipelines.transforms``.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
import tarfile
from typing import BinaryIO, Iterator, Optional, Union

from audiolm_t5x import contract

LIBRISPEECH = "librispeech"
LIBRILIGHT = "librilight"
CORPORA = (LIBRISPEECH, LIBRILIGHT)
AUDIO_SUFFIXES = (".flac", ".wav")
TRANSCRIPT_SUFFIX = ".trans.txt"


class CorpusError(ValueError):
  """A path or file that does not fit the corpus layout."""


@dataclasses.dataclass(frozen=True)
class AudioRef:
  """One audio file of the corpus (bytes carried for archive members)."""

  path: str  # a filesystem path, or "<archive>!<member>"
  rel: str  # relative to the corpus root: <split>/<speaker>/<chapter>/<file>
  split: str
  speaker: str
  chapter: str
  stem: str  # file name without suffix
  data: Optional[bytes] = None

  @property
  def chapter_key(self) -> str:
    return f"{self.split}/{self.speaker}/{self.chapter}"


@dataclasses.dataclass(frozen=True)
class WorkItem:
  """One future record: an utterance, a recording, or a group of them."""

  id: str
  split: str
  speaker_id: int
  chapter_id: int
  transcript: str
  parts: tuple[AudioRef, ...]

  @property
  def source(self) -> str:
    return ";".join(p.rel for p in self.parts)

  @property
  def path(self) -> str:
    return ";".join(p.path for p in self.parts)


def split_rel(rel: str) -> tuple[str, str, str, str]:
  """``.../<split>/<speaker>/<chapter>/<file>`` -> its four parts."""
  parts = [p for p in rel.split("/") if p]
  if len(parts) < 4:
    raise CorpusError(f"{rel!r} is not <split>/<speaker>/<chapter>/<file>")
  return parts[-4], parts[-3], parts[-2], parts[-1]


def audio_ref(path: str, root: str, *, data: Optional[bytes] = None,
              rel: Optional[str] = None) -> AudioRef:
  """Builds the reference of an audio file from its place in the tree."""
  if rel is None:
    rel = posixpath.relpath(path.replace("\\", "/"), root.rstrip("/"))
  split, speaker, chapter, name = split_rel(rel)
  stem = name.rsplit(".", 1)[0]
  rel = "/".join([split, speaker, chapter, name])
  return AudioRef(path=path, rel=rel, split=split, speaker=speaker,
                  chapter=chapter, stem=stem, data=data)


def record_id(ref: AudioRef, corpus: str) -> str:
  """LibriSpeech: the utterance id; Libri-Light: speaker/book/name."""
  if corpus == LIBRISPEECH:
    return ref.stem
  return f"{ref.speaker}/{ref.chapter}/{ref.stem}"


_UTT_RE = re.compile(r"^(\d+)-(\d+)-(\d+)$")


def utterance_index(ref: AudioRef) -> tuple:
  """Reading order inside a chapter (numeric utterance index)."""
  m = _UTT_RE.match(ref.stem)
  return (int(m.group(3)), ref.stem) if m else (1 << 62, ref.stem)


def parse_transcripts(text: str, *, path: str) -> dict[str, str]:
  """Parses a ``*.trans.txt``: ``{utterance id: text}``.

  Raises:
    CorpusError: naming the file and line for a line without text.
  """
  out = {}
  for n, line in enumerate(text.splitlines(), 1):
    line = line.strip()
    if not line:
      continue
    key, _, words = line.partition(" ")
    if not words.strip():
      raise CorpusError(f"{path}:{n}: line has an id but no text: {line!r}")
    out[key] = words.strip()
  return out


def is_audio(name: str) -> bool:
  return name.lower().endswith(AUDIO_SUFFIXES)


def is_transcript(name: str) -> bool:
  return name.endswith(TRANSCRIPT_SUFFIX)


def unsafe_member_reason(member: tarfile.TarInfo) -> Optional[str]:
  """Why an archive member must not be read, or None if it is a plain file."""
  name = member.name
  if member.issym() or member.islnk():
    return f"archive member {name!r} is a link (to {member.linkname!r})"
  if name.startswith("/") or ".." in posixpath.normpath(name).split("/"):
    return f"archive member {name!r} escapes the archive root"
  if not member.isfile():
    return f"archive member {name!r} is not a regular file"
  return None


def iter_archive(fileobj: BinaryIO
                 ) -> Iterator[tuple[str, Union[bytes, str], tarfile.TarInfo]]:
  """Streams a tar(.gz) archive: yields (kind, payload, member).

  kind is ``"audio"`` (payload: bytes), ``"transcript"`` (payload: text),
  ``"refused"`` (payload: the reason) or ``"other"``.
  """
  with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
    for member in tar:
      if member.isdir():
        continue
      reason = unsafe_member_reason(member)
      if reason:
        yield "refused", reason, member
        continue
      if is_audio(member.name):
        yield "audio", tar.extractfile(member).read(), member
      elif is_transcript(member.name):
        text = tar.extractfile(member).read().decode("utf-8")
        yield "transcript", text, member
      else:
        yield "other", "", member


def chapter_key_of_transcript(rel: str) -> str:
  """``<split>/<speaker>/<chapter>/<s>-<c>.trans.txt`` -> chapter key."""
  split, speaker, chapter, _ = split_rel(rel)
  return f"{split}/{speaker}/{chapter}"


def make_items(refs: list[AudioRef], transcripts: Optional[dict[str, str]], *,
               corpus: str, group_seconds: Optional[float],
               durations: Optional[dict[str, float]] = None
               ) -> Iterator[Union[WorkItem, contract.DeadLetter]]:
  """Turns one chapter's audio files into work items (or dead letters).

  Args:
    refs: the chapter's audio files, any order.
    transcripts: the chapter's transcript map, or None where the corpus has
      none (Libri-Light) or the chapter's transcript file is missing.
    corpus: LIBRISPEECH requires a transcript line per utterance.
    group_seconds: None: one item per file. 0: the whole chapter as one item.
      > 0: consecutive utterances, in reading order, packed while the group
      stays within this many seconds (``durations`` needed).
    durations: seconds per ``ref.path``, for grouping.
  """
  refs = sorted(refs, key=utterance_index)
  need_text = corpus == LIBRISPEECH
  ok: list[tuple[AudioRef, str]] = []
  for ref in refs:
    rid = record_id(ref, corpus)
    if need_text and transcripts is None:
      yield contract.DeadLetter(
          path=ref.path, id=rid, split=ref.split, step="transcript",
          reason=f"no {ref.speaker}-{ref.chapter}{TRANSCRIPT_SUFFIX} in "
          f"{ref.split}/{ref.speaker}/{ref.chapter}")
      continue
    if need_text and ref.stem not in transcripts:
      yield contract.DeadLetter(
          path=ref.path, id=rid, split=ref.split, step="transcript",
          reason=f"{ref.speaker}-{ref.chapter}{TRANSCRIPT_SUFFIX} has no line "
          f"for {ref.stem}")
      continue
    ok.append((ref, transcripts.get(ref.stem, "") if transcripts else ""))
  if group_seconds is None:
    for ref, text in ok:
      yield _item(record_id(ref, corpus), [(ref, text)])
    return
  groups: list[list[tuple[AudioRef, str]]] = []
  total = 0.0
  for ref, text in ok:
    sec = (durations or {}).get(ref.path, 0.0)
    if groups and (group_seconds == 0 or total + sec <= group_seconds):
      groups[-1].append((ref, text))
      total += sec
    else:
      groups.append([(ref, text)])
      total = sec
  for g in groups:
    first, last = g[0][0], g[-1][0]
    gid = (f"{first.speaker}-{first.chapter}-"
           f"{utterance_index(first)[0]:04d}_{utterance_index(last)[0]:04d}")
    yield _item(gid, g)


def _item(item_id: str, parts: list[tuple[AudioRef, str]]) -> WorkItem:
  ref = parts[0][0]
  return WorkItem(
      id=item_id, split=ref.split,
      speaker_id=contract.optional_int(ref.speaker),
      chapter_id=contract.optional_int(ref.chapter),
      transcript=" ".join(t for _, t in parts if t),
      parts=tuple(r for r, _ in parts))
