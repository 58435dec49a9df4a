"""Corpora of an operator's bad day, built from the team's real clips.

Every clip is cut to :data:`SECONDS` so that the job's runs stay cheap. Each
builder returns what the job must make of it: the ids written, and for every
dead letter its path's tail, step and words of its reason.
"""

from __future__ import annotations

import io
import os
import pathlib
import tarfile

import numpy as np
import soundfile as sf

from tests import corpus_fixtures as cf

SPLIT = "dev-clean"
SECONDS = 2.0
RATE = 16000
GOOD = ("2412-153948-0000", "2412-153948-0001", "1088-134315-0000")


def clip(clips_dir: pathlib.Path, utt: str) -> np.ndarray:
  x, rate = sf.read(str(clips_dir / f"{utt}.flac"), dtype="float32",
                    frames=int(SECONDS * RATE))
  assert rate == RATE
  return x


def flac_bytes(x: np.ndarray, fmt: str = "FLAC", subtype: str = "PCM_16"
               ) -> bytes:
  buf = io.BytesIO()
  sf.write(buf, x, RATE, format=fmt, subtype=subtype)
  return buf.getvalue()


def _put(root, utt, data: bytes, *, suffix=".flac", text=True):
  d = cf.chapter_dir(root, SPLIT, utt)
  (d / f"{utt}{suffix}").write_bytes(data)
  if text:
    cf.add_transcript_line(root, SPLIT, utt)
  return d / f"{utt}{suffix}"


def build_tree(root: pathlib.Path, clips_dir: pathlib.Path,
               outside: pathlib.Path) -> dict:
  """A LibriSpeech-shaped tree with one of each bad candidate.

  Returns ``{"written": ids, "dead": {tail: (step, words)}}``.
  """
  for utt in GOOD:
    _put(root, utt, flac_bytes(clip(clips_dir, utt)))
  x = clip(clips_dir, "198-209-0000")
  _put(root, "7000-100-0000", flac_bytes(x), suffix=".FLAC")  # upper case
  d = cf.chapter_dir(root, SPLIT, "7000-100-0001")
  (d / "7000-100-0001.flac").mkdir()  # a folder named like audio
  cf.add_transcript_line(root, SPLIT, "7000-100-0001")
  (d / "7000-100-0002.flac").symlink_to(d / "gone.flac")  # dangling
  cf.add_transcript_line(root, SPLIT, "7000-100-0002")
  os.mkfifo(d / "7000-100-0003.flac")  # would block a reader forever
  cf.add_transcript_line(root, SPLIT, "7000-100-0003")
  outside.mkdir(parents=True, exist_ok=True)
  (outside / "elsewhere.flac").write_bytes(flac_bytes(x))
  (d / "7000-100-0004.flac").symlink_to(outside / "elsewhere.flac")
  cf.add_transcript_line(root, SPLIT, "7000-100-0004")
  (d / "7000-100-0005.flac").symlink_to(  # relative, inside the corpus
      "../../2412/153948/2412-153948-0000.flac")
  cf.add_transcript_line(root, SPLIT, "7000-100-0005")
  nan = np.full(int(SECONDS * RATE), np.nan, np.float32)
  _put(root, "7000-100-0006", flac_bytes(nan, "WAV", "FLOAT"), suffix=".wav")
  _put(root, "7000-100-0007", flac_bytes(x, "MP3", "MPEG_LAYER_III"))
  _put(root, "2412-153948-0001",
       flac_bytes(clip(clips_dir, "2412-153948-0001"), "WAV", "PCM_16"),
       suffix=".wav", text=False)  # the same utterance twice
  _put(root, "7000-100-0008", flac_bytes(np.clip(x * 20, -1, 1)))  # clipped
  _put(root, "7000-100-0009", flac_bytes(x * 0.002))  # very quiet
  bad_text = cf.chapter_dir(root, SPLIT, "7001-200-0000")
  (bad_text / "7001-200-0000.flac").write_bytes(flac_bytes(x))
  (bad_text / "7001-200.trans.txt").write_bytes(b"7001-200-0000 CAF\xc9\n")
  (root / SPLIT / "stray.flac").write_bytes(flac_bytes(x))  # off the layout
  base = f"{SPLIT}/7000/100/"
  return {
      "written": set(GOOD) | {"7000-100-0000", "7000-100-0005",
                              "7000-100-0008", "7000-100-0009"},
      "dead": {
          base + "7000-100-0001.flac": ("read", "is a folder"),
          base + "7000-100-0002.flac": ("read", "dangling link"),
          base + "7000-100-0003.flac": ("read", "is a FIFO"),
          base + "7000-100-0004.flac": ("read", "outside the corpus"),
          base + "7000-100-0006.wav": ("decode", "non-finite samples"),
          base + "7000-100-0007.flac": ("format", "content is MP3"),
          f"{SPLIT}/2412/153948/2412-153948-0001.wav": (
              "duplicate", "also read from"),
          f"{SPLIT}/7001/200/7001-200-0000.flac": (
              "transcript", "7001-200.trans.txt: not UTF-8 (byte 0xc9"),
          f"{SPLIT}/stray.flac": ("read", "<split>/<speaker>/<chapter>"),
      },
      "flags": {"clipped": ["7000-100-0008"], "quiet": ["7000-100-0009"]},
  }


def _add(tar, name, data: bytes, size=None):
  info = tarfile.TarInfo(name)
  info.size = len(data) if size is None else size
  tar.addfile(info, io.BytesIO(data))


def build_archives(folder: pathlib.Path, clips_dir: pathlib.Path,
                   max_member_bytes: int) -> dict:
  """A folder of archives: good, truncated, not gzip, oversized member."""
  folder.mkdir(parents=True, exist_ok=True)
  x = clip(clips_dir, "2412-153948-0000")
  y = clip(clips_dir, "2412-153948-0001")
  text = (b"2412-153948-0000 PLACEHOLDER\n2412-153948-0001 PLACEHOLDER\n")
  prefix = "LibriSpeech/dev-clean/2412/153948/"
  with tarfile.open(folder / "dev-clean.tar.gz", "w:gz") as tar:
    _add(tar, prefix + "2412-153948.trans.txt", text)
    _add(tar, prefix + "2412-153948-0000.flac", flac_bytes(x))
    _add(tar, prefix + "2412-153948-0001.flac", flac_bytes(y))
    _add(tar, "LibriSpeech/dev-clean/9/9/9-9-0000.flac",
         bytes(max_member_bytes + 1))
  # The same chapter again in a second archive: duplicates.
  with tarfile.open(folder / "dev-clean-copy.tar.gz", "w:gz") as tar:
    _add(tar, prefix + "2412-153948-0000.flac", flac_bytes(x))
  z = clip(clips_dir, "1088-134315-0000")
  buf = io.BytesIO()
  with tarfile.open(fileobj=buf, mode="w:gz") as tar:
    p2 = "LibriSpeech/test-clean/1088/134315/"
    _add(tar, p2 + "1088-134315.trans.txt", b"1088-134315-0000 X\n"
         b"1088-134315-0001 Y\n")
    _add(tar, p2 + "1088-134315-0000.flac", flac_bytes(z))
    _add(tar, p2 + "1088-134315-0001.flac",
         np.random.default_rng(0).bytes(200_000))  # incompressible: the cut
  data = buf.getvalue()
  (folder / "test-clean.tar.gz").write_bytes(data[: len(data) - 50_000])
  (folder / "notgzip.tar.gz").write_bytes(b"plain text, not an archive\n" * 50)
  return {
      "written": {"2412-153948-0000", "2412-153948-0001", "1088-134315-0000"},
      "dead_reasons": ["declares", "duplicate id", "truncated or not a "
                       "readable tar(.gz) after member",
                       "truncated or not a readable tar(.gz) before"],
  }
