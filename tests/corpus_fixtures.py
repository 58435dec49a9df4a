"""Builds LibriSpeech-shaped trees from the team's real clips, for tests.

The clips (``../shared/assets/librispeech_clips``) came without transcripts:
every ``*.trans.txt`` written here says that its text is a placeholder.
"""

from __future__ import annotations

import pathlib
import shutil
from typing import Iterable, Mapping

PLACEHOLDER = "PLACEHOLDER TRANSCRIPT NOT THE REAL TEXT"

# Which clips go to which split (train / validation, as the tasks expect).
DEFAULT_SPLITS = {
    "train-clean-100": ("1088-134315-0000", "198-209-0000",
                        "3436-172162-0000", "5703-47212-0000"),
    "dev-clean": ("2412-153948-0000", "2412-153948-0001"),
}


def chapter_dir(root: pathlib.Path, split: str, utt: str) -> pathlib.Path:
  speaker, chapter, _ = utt.split("-")
  d = root / split / speaker / chapter
  d.mkdir(parents=True, exist_ok=True)
  return d


def add_transcript_line(root: pathlib.Path, split: str, utt: str,
                        text: str = PLACEHOLDER) -> None:
  speaker, chapter, _ = utt.split("-")
  path = chapter_dir(root, split, utt) / f"{speaker}-{chapter}.trans.txt"
  with open(path, "a") as f:
    f.write(f"{utt} {text}\n")


def build_tree(root: pathlib.Path, clips_dir: pathlib.Path,
               splits: Mapping[str, Iterable[str]] = DEFAULT_SPLITS
               ) -> pathlib.Path:
  """Copies clips into <root>/<split>/<spk>/<chap>/ with placeholder text."""
  for split, utts in splits.items():
    for utt in utts:
      shutil.copy(clips_dir / f"{utt}.flac",
                  chapter_dir(root, split, utt) / f"{utt}.flac")
      add_transcript_line(root, split, utt)
  return root
