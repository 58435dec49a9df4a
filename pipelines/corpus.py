"""Corpus layouts: LibriSpeech and Libri-Light, from directories or archives.

* LibriSpeech: ``<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac``
  with one ``<speaker>-<chapter>.trans.txt`` per chapter (``<utt id> <TEXT>``
  per line). The released ``.tar.gz`` archives hold the same tree under
  ``LibriSpeech/``; they are streamed member by member, never extracted.
* Libri-Light: ``<split>/<speaker>/<book>/<name>.flac`` with ``<name>.json``
  metadata beside each recording; no transcripts.

Listing (:func:`list_inputs`) finds every *candidate*: anything under the
corpus root whose name looks like audio (``.flac`` / ``.wav``, any case) or
like a transcript. Candidates that cannot be opened safely carry a
``problem`` and become dead letters without ever being opened:

* folders named like audio, dangling links, FIFOs, sockets and devices
  (never opened, so nothing blocks);
* links whose target leaves the corpus root. Rule: such links (to files or
  folders) are not followed unless ``follow_external_links`` is set; links
  that stay inside the root are followed (each target folder once).

Local paths are walked with ``lstat`` (Beam's local listing drops folders,
dangling links and special files silently); other Beam filesystems (object
stores) hold only plain objects and are listed with ``FileSystems.match``.

Archives are streamed (:func:`iter_archive`): a member larger than
``max_member_bytes`` is refused without being read, a truncated or non-gzip
archive ends with a ``broken`` item naming the archive and the member it
reached, transcripts are returned as bytes and decoded by
:func:`decode_transcript` (a non-UTF-8 byte names the file and offset).

The Beam transforms that use these functions are in
``audiolm_t5x.pipelines.read_corpus``.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import posixpath
import re
import stat
import tarfile
import zlib
from typing import BinaryIO, Iterable, Iterator, Optional, Sequence, Union

from audiolm_t5x import contract

LIBRISPEECH = "librispeech"
LIBRILIGHT = "librilight"
CORPORA = (LIBRISPEECH, LIBRILIGHT)
AUDIO_SUFFIXES = (".flac", ".wav")
TRANSCRIPT_SUFFIX = ".trans.txt"
# Archive members above this size are refused unread (memory stays bounded);
# an hour of 16 kHz FLAC is about 70 MB.
DEFAULT_MAX_MEMBER_BYTES = 256 << 20
AUDIO = "audio"
TEXT = "text"


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
  stem = stem_of(name)
  rel = "/".join([split, speaker, chapter, name])
  return AudioRef(path=path, rel=rel, split=split, speaker=speaker,
                  chapter=chapter, stem=stem, data=data)


OTHER_SPLIT = "_unsplit"  # inputs found outside any <split>/ folder


def stem_of(name: str) -> str:
  """File name without its audio suffix (any case) or last suffix."""
  suffix = audio_suffix(name)
  return name[: -len(suffix)] if suffix else name.rsplit(".", 1)[0]


def shard_key(rel: str, *, corpus: str, grouped: bool) -> tuple[str, str]:
  """``(split, key)`` whose hash picks the shard of an input and its record.

  Ungrouped: the record id the input would get (so a record and every
  other source of its id land in one shard); grouped: the chapter, since a
  group's id depends on durations. Inputs outside the layout: their path.
  """
  chapter = chapter_of(rel)
  if chapter is None:
    return OTHER_SPLIT, rel
  split, speaker, book, name = split_rel(rel)
  if grouped:
    return split, chapter
  stem = stem_of(name)
  return split, stem if corpus == LIBRISPEECH else f"{speaker}/{book}/{stem}"


def chapter_of(rel: str) -> Optional[str]:
  """``<split>/<speaker>/<chapter>`` of an input, None outside the layout."""
  parts = rel.split("/")
  if rel.startswith("/") or ".." in parts:
    return None
  try:
    split, speaker, chapter, _ = split_rel(rel)
  except CorpusError:
    return None
  return f"{split}/{speaker}/{chapter}"


def shard_of(key: str, num_shards: int) -> int:
  """Stable shard index of a key (same on every runner and run)."""
  digest = hashlib.sha1(key.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") % num_shards


def inputs_by_shard(entries: Iterable[Entry], *, corpus: str, grouped: bool,
                    num_shards: int) -> dict[tuple[str, int], set[str]]:
  """Which inputs (relative paths) each ``(split, shard)`` accounts for.

  An audio candidate belongs to the shard of :func:`shard_key`; a transcript
  to every shard holding audio of its chapter. Works on any set of whole
  chapters (the job applies it chapter by chapter, the launcher to the whole
  listing), so both sides agree.
  """
  out: dict[tuple[str, int], set[str]] = {}
  chapter_shards: dict[Optional[str], set] = {}
  texts = []
  for e in entries:
    if e.kind == TEXT:
      texts.append(e)
      continue
    split, key = shard_key(e.rel, corpus=corpus, grouped=grouped)
    where = (split, shard_of(key, num_shards))
    out.setdefault(where, set()).add(e.rel)
    chapter_shards.setdefault(chapter_of(e.rel), set()).add(where)
  for e in texts:
    chapter = chapter_of(e.rel)
    for where in chapter_shards.get(chapter, ()) if chapter else ():
      out[where].add(e.rel)
  return out


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
  """Named like audio (``.flac`` / ``.wav`` in any case)."""
  return name.lower().endswith(AUDIO_SUFFIXES)


def is_transcript(name: str) -> bool:
  return name.lower().endswith(TRANSCRIPT_SUFFIX)


def audio_suffix(name: str) -> str:
  """The lower-case audio suffix of a name (``""`` if none)."""
  lower = name.lower()
  return next((s for s in AUDIO_SUFFIXES if lower.endswith(s)), "")


def name_kind(name: str) -> Optional[str]:
  """``AUDIO``, ``TEXT`` (a ``*.trans.txt``) or None for other names."""
  if is_audio(name):
    return AUDIO
  if is_transcript(name):
    return TEXT
  return None


def decode_transcript(data: bytes, *, path: str) -> str:
  """UTF-8 text of a transcript file.

  Raises:
    CorpusError: naming the file and the offset of the first bad byte.
  """
  try:
    return data.decode("utf-8")
  except UnicodeDecodeError as e:
    raise CorpusError(
        f"{path}: not UTF-8 (byte 0x{data[e.start]:02x} at offset "
        f"{e.start})") from e


# --- Listing the candidates ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Entry:
  """One candidate input found by :func:`list_inputs`.

  ``problem`` is set when the candidate must not be opened (folder, link,
  special file): it becomes a dead letter with that reason.
  """

  path: str
  rel: str  # relative to the corpus root, "/"-separated
  kind: str  # AUDIO or TEXT
  problem: Optional[str] = None


EXTERNAL_LINK_HINT = ("rule: links that leave --input_dir are not followed; "
                      "pass --follow_external_links to read them")


def _special_kind(mode: int) -> str:
  for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                     (stat.S_ISCHR, "character device"),
                     (stat.S_ISBLK, "block device")):
    if test(mode):
      return name
  return "special file"


def _inside(path: str, root: str) -> bool:
  return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _walk_local(root: str, top: str, *, follow_external_links: bool,
                visited: set) -> Iterator[Entry]:
  real_root = os.path.realpath(root)
  stack = [top]
  while stack:
    folder = stack.pop()
    try:
      names = sorted(os.listdir(folder))
    except OSError as e:
      yield Entry(folder, _rel(folder, root), AUDIO,
                  f"folder cannot be listed ({e.strerror})")
      continue
    subdirs = []
    for name in names:
      path = os.path.join(folder, name)
      kind = name_kind(name)
      try:
        mode = os.lstat(path).st_mode
      except OSError:  # vanished while listing
        continue
      if stat.S_ISLNK(mode):
        target = os.path.realpath(path)
        try:
          mode = os.stat(path).st_mode
        except OSError:
          if kind:
            yield Entry(path, _rel(path, root), kind,
                        f"dangling link (to {os.readlink(path)!r})")
          continue
        if not follow_external_links and not _inside(target, real_root):
          if kind or stat.S_ISDIR(mode):
            what = "folder" if stat.S_ISDIR(mode) else "file"
            yield Entry(path, _rel(path, root), kind or AUDIO,
                        f"link to the {what} {target} outside the corpus "
                        f"({EXTERNAL_LINK_HINT})")
          continue
      if stat.S_ISDIR(mode):
        if kind:
          yield Entry(path, _rel(path, root), kind,
                      "is a folder, not a file")
        real = os.path.realpath(path)
        if real not in visited:  # each folder once (link cycles end here)
          visited.add(real)
          subdirs.append(path)
      elif stat.S_ISREG(mode):
        if kind:
          yield Entry(path, _rel(path, root), kind)
      elif kind:
        yield Entry(path, _rel(path, root), kind,
                    f"is a {_special_kind(mode)}, not a regular file "
                    "(never opened)")
    stack.extend(reversed(subdirs))


def _rel(path: str, root: str) -> str:
  return os.path.relpath(path, root).replace(os.sep, "/")


def is_local(path: str) -> bool:
  """True for paths of the local filesystem (no ``scheme://``)."""
  return "://" not in path


def list_inputs(root: str, *, splits: Sequence[str] = (),
                follow_external_links: bool = False) -> list[Entry]:
  """Every candidate under ``root`` (or under ``root/<split>``), sorted.

  Raises:
    CorpusError: ``root`` or a requested split folder does not exist.
  """
  root = root.rstrip("/") or "/"
  if is_local(root):
    if not os.path.isdir(root):
      raise CorpusError(f"--input_dir {root} is not a folder")
    tops = []
    for split in splits:
      top = os.path.join(root, split)
      if not os.path.isdir(top):
        raise CorpusError(f"split {split!r} not found: no folder {top}")
      tops.append(top)
    visited = {os.path.realpath(t) for t in tops or [root]}
    out = []
    for top in tops or [root]:
      out.extend(_walk_local(root, top,
                             follow_external_links=follow_external_links,
                             visited=visited))
    return sorted(set(out), key=lambda e: (e.rel, e.path))
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top

  patterns = [posixpath.join(root, s, "**") for s in splits] or [
      posixpath.join(root, "**")]
  out = []
  for pattern, result in zip(patterns, FileSystems.match(patterns)):
    if splits and not result.metadata_list:
      raise CorpusError(f"split not found: nothing matches {pattern}")
    for m in result.metadata_list:
      kind = name_kind(posixpath.basename(m.path))
      if kind:
        out.append(Entry(m.path, m.path[len(root):].lstrip("/"), kind))
  return sorted(set(out), key=lambda e: (e.rel, e.path))


ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
ARCHIVE = "archive"


def list_archives(root: str) -> list[Entry]:
  """The ``*.tar.gz`` / ``*.tgz`` / ``*.tar`` archives in ``root`` (any case).

  Local folders, links and special files named like an archive get a
  ``problem`` (never opened).
  """
  root = root.rstrip("/") or "/"
  if is_local(root):
    if not os.path.isdir(root):
      raise CorpusError(f"--input_dir {root} is not a folder")
    out = []
    for name in sorted(os.listdir(root)):
      if not name.lower().endswith(ARCHIVE_SUFFIXES):
        continue
      path = os.path.join(root, name)
      try:
        mode = os.stat(path).st_mode
      except OSError:
        out.append(Entry(path, name, ARCHIVE, "dangling link"))
        continue
      problem = None
      if stat.S_ISDIR(mode):
        problem = "is a folder, not an archive"
      elif not stat.S_ISREG(mode):
        problem = f"is a {_special_kind(mode)}, not a regular file (never opened)"
      out.append(Entry(path, name, ARCHIVE, problem))
    return out
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top

  result = FileSystems.match([posixpath.join(root, "*")])[0]
  return sorted(
      (Entry(m.path, posixpath.basename(m.path), ARCHIVE)
       for m in result.metadata_list
       if m.path.lower().endswith(ARCHIVE_SUFFIXES)), key=lambda e: e.rel)


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


class _Prefixed(io.RawIOBase):
  """A stream whose first bytes were already read (to sniff the format)."""

  def __init__(self, head: bytes, rest: BinaryIO):
    self._head = head
    self._rest = rest

  def readable(self) -> bool:
    return True

  def readinto(self, buf) -> int:
    if self._head:
      n = min(len(buf), len(self._head))
      buf[:n] = self._head[:n]
      self._head = self._head[n:]
      return n
    data = self._rest.read(len(buf))
    buf[:len(data)] = data
    return len(data)


def iter_archive(fileobj: BinaryIO, *,
                 max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES
                 ) -> Iterator[tuple[str, Union[bytes, str], str]]:
  """Streams a tar(.gz) archive: yields ``(kind, payload, member name)``.

  kind is ``"audio"`` / ``"transcript"`` (payload: the member's bytes),
  ``"refused"`` (payload: the reason; the member is not read) or, last,
  ``"broken"`` (payload: the reason; the archive is truncated, not a tar,
  not gzip, or has a corrupt header; the name is the last member reached).
  Members whose names are neither audio nor transcripts are skipped. At most
  ``max_member_bytes`` of one member are ever held in memory.
  """
  last = ""
  try:
    head = fileobj.read(2)
    stream = _Prefixed(head, fileobj)
    if head == b"\x1f\x8b":  # gzip: inflate in bounded steps (C, not tarfile)
      stream = gzip.GzipFile(fileobj=stream, mode="rb")
    with tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 16) as tar:
      for member in tar:
        last = member.name
        if member.isdir():
          continue
        reason = unsafe_member_reason(member)
        if reason:
          yield "refused", reason, member.name
          continue
        kind = name_kind(member.name)
        if kind is None:
          continue
        if member.size > max_member_bytes:
          yield "refused", (
              f"archive member {member.name!r} declares {member.size} bytes, "
              f"over the limit of {max_member_bytes} (--max_member_bytes); "
              "not read"), member.name
          continue
        data = tar.extractfile(member).read()
        if len(data) != member.size:
          raise tarfile.ReadError(
              f"member {member.name!r} declares {member.size} bytes, "
              f"{len(data)} present")
        yield ("audio" if kind == AUDIO else "transcript"), data, member.name
      # tarfile ends quietly at a corrupt header after the first member:
      # whatever follows the last header must be zero padding.
      while True:
        chunk = tar.fileobj.read(1 << 20)
        if not chunk:
          break
        if chunk.strip(b"\0"):
          raise tarfile.ReadError("corrupt header (data follows the last "
                                  "readable member)")
  except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
    after = f" after member {last!r}" if last else " before the first member"
    yield "broken", (f"archive is truncated or not a readable tar(.gz)"
                     f"{after}: {type(e).__name__}: {e}"), last


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
  refs = sorted(refs, key=lambda r: (utterance_index(r), r.path))
  need_text = corpus == LIBRISPEECH
  ok: list[tuple[AudioRef, str]] = []
  first_of: dict[str, AudioRef] = {}
  for ref in refs:
    if ref.stem in first_of:  # x.flac and x.wav, or one file in two archives
      kept = first_of[ref.stem]
      yield contract.DeadLetter(
          path=ref.path, id=record_id(ref, corpus), split=ref.split,
          step="duplicate", reason=duplicate_reason(
              record_id(ref, corpus), kept.path))
      continue
    first_of[ref.stem] = ref
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


def duplicate_reason(item_id: str, kept: str) -> str:
  return (f"duplicate id {item_id!r}: also read from {kept}, which is kept "
          "(rule: the first source in path order wins)")


def _item(item_id: str, parts: list[tuple[AudioRef, str]]) -> WorkItem:
  ref = parts[0][0]
  return WorkItem(
      id=item_id, split=ref.split,
      speaker_id=contract.optional_int(ref.speaker),
      chapter_id=contract.optional_int(ref.chapter),
      transcript=" ".join(t for _, t in parts if t),
      parts=tuple(r for r, _ in parts))
