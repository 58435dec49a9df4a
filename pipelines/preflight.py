"""Checks a command makes before any compute; each failure is a UserError.

Each check names the flag to change and what it found: the input exists and
yields candidates (with the likely fix, e.g. ``--archives``), the requested
splits exist, an output path is usable, model and codebook files are
readable, and an acoustic layout fits the LM vocabulary (an error) and the
gin files' feature lengths (a warning with the numbers).
"""

from __future__ import annotations

import os
import posixpath
import sys
from typing import Optional, Sequence, TextIO

from audiolm_t5x import constants
from . import corpus as corpus_lib
from .options import UserError


def _local_splits(root: str) -> list[str]:
  try:
    return sorted(n for n in os.listdir(root)
                  if os.path.isdir(os.path.join(root, n)))
  except OSError:
    return []


def check_input_dir(input_dir: str, *, splits: Sequence[str] = (),
                    archives: bool = False) -> None:
  """Refuses a missing input folder or split folder (local paths; cheap)."""
  root = input_dir.rstrip("/") or "/"
  if not corpus_lib.is_local(root):
    return  # listed (and refused if empty) by the launcher
  if not os.path.exists(root):
    raise UserError(f"--input_dir {root} does not exist")
  if not os.path.isdir(root):
    raise UserError(f"--input_dir {root} is a file, not a folder")
  if archives:
    return
  missing = [s for s in splits if not os.path.isdir(os.path.join(root, s))]
  if missing:
    found = _local_splits(root)
    raise UserError(
        f"--splits: no folder {', '.join(missing)} in {root}"
        + (f"; splits found: {', '.join(found)}" if found else ""))


def no_candidates(input_dir: str, *, splits: Sequence[str] = (),
                  archives: bool = False) -> UserError:
  """The error for an input that yields nothing, with the likely fix."""
  root = input_dir.rstrip("/") or "/"
  if archives:
    return UserError(
        f"--archives: no .tar.gz / .tgz / .tar archives in {root}; without "
        "--archives the job reads <split>/<speaker>/<chapter>/ folders")
  suffixes = "/".join(s.lstrip(".") for s in corpus_lib.AUDIO_SUFFIXES)
  where = (", ".join(posixpath.join(root, s) for s in splits) if splits
           else root)
  hint = ""
  try:
    if any(not e.problem for e in corpus_lib.list_archives(root)):
      hint = "; it holds archives: add --archives to read them"
  except corpus_lib.CorpusError:
    pass
  if not hint and corpus_lib.is_local(root) and not splits:
    found = _local_splits(root)
    if found:
      hint = (f"; expected <split>/<speaker>/<chapter>/<file> under it (its "
              f"folders: {', '.join(found[:5])})")
  return UserError(f"no audio files ({suffixes}) under {where}{hint}")


def list_candidates(input_dir: str, *, splits: Sequence[str] = (),
                    archives: bool = False,
                    follow_external_links: bool = False
                    ) -> list[corpus_lib.Entry]:
  """Lists the corpus as the job will; refuses an input that yields nothing.

  Returns:
    The candidates (:class:`corpus.Entry`): archives with ``archives``,
    otherwise audio and transcript files.

  Raises:
    UserError: the input does not exist, a split is missing, or nothing in it
      could become a record; the message says what was looked for and the
      likely fix.
  """
  check_input_dir(input_dir, splits=splits, archives=archives)
  root = input_dir.rstrip("/") or "/"
  try:
    if archives:
      entries = corpus_lib.list_archives(root)
    else:
      entries = corpus_lib.list_inputs(
          root, splits=splits, follow_external_links=follow_external_links)
  except corpus_lib.CorpusError as e:
    raise UserError(str(e)) from e
  if not any(e.kind in (corpus_lib.AUDIO, corpus_lib.ARCHIVE)
             for e in entries):
    raise no_candidates(root, splits=splits, archives=archives)
  return entries


def check_output_dir(path: str, *, flag: str = "--output_dir") -> None:
  """Refuses an output folder that is a file or cannot be created/written."""
  if not corpus_lib.is_local(path):
    return  # object stores: checked by the first write
  path = os.path.abspath(path)
  if os.path.exists(path) and not os.path.isdir(path):
    raise UserError(f"{flag} {path} is a file, not a folder")
  probe = path
  while not os.path.exists(probe):
    parent = os.path.dirname(probe)
    if parent == probe:
      break
    probe = parent
  if not os.path.isdir(probe):
    raise UserError(f"{flag} {path}: {probe} is a file, not a folder")
  if not os.access(probe, os.W_OK | os.X_OK):
    raise UserError(f"{flag} {path}: {probe} is not writable")


def check_output_file(path: str, *, flag: str = "--output") -> None:
  """Refuses an output file path that is a folder or in an unusable folder."""
  if not corpus_lib.is_local(path):
    return
  path = os.path.abspath(path)
  if os.path.isdir(path):
    raise UserError(f"{flag} {path} is a folder; give a file path (.npz)")
  check_output_dir(os.path.dirname(path), flag=flag)


def check_readable(path: str, *, flag: str) -> None:
  """Refuses a missing or unreadable input file (any Beam filesystem)."""
  if corpus_lib.is_local(path):
    if not os.path.isfile(path):
      raise UserError(f"{flag} {path}: no such file")
    if not os.access(path, os.R_OK):
      raise UserError(f"{flag} {path}: not readable")
    return
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top

  if not FileSystems.exists(path):
    raise UserError(f"{flag} {path}: no such file")


def check_layout(*, semantic_codebook_size: int, acoustic_levels: int,
                 acoustic_codebook_size: int, out: Optional[TextIO] = None
                 ) -> list[str]:
  """Checks an acoustic layout against the speech tasks and their gin files.

  Raises:
    UserError: the layout needs more LM ids than the speech tasks' vocabulary
      (the gin files' ``VOCAB_SIZE``).

  Returns:
    Warnings (also printed to ``out``, default stderr): the feature lengths
    that such data gives the tasks and that exceed the gin files' (the
    feature converter would trim them).
  """
  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.tasks import audiolm
  from audiolm_t5x.tasks import stages
  from audiolm_t5x.tasks import vocabulary

  k, q, n = semantic_codebook_size, acoustic_levels, acoustic_codebook_size
  layout = vocabulary.VocabularyLayout.from_sizes(
      semantic_codebook_size=k, acoustic_levels=q, acoustic_codebook_size=n)
  vocab = audiolm.VOCAB_SIZES[audiolm.COARSE_TASK]
  if layout.size > vocab:
    raise UserError(
        f"acoustic layout Q={q} levels x N={n} codes with K={k} needs "
        f"2 + K + Q*N = {layout.size} LM ids, more than the speech tasks' "
        f"vocabulary of {vocab} (the gin files' VOCAB_SIZE); choose a smaller "
        "layout, e.g. Lyra --acoustic_option=levels=24 "
        "--acoustic_option=pack=2 (12 x 256)")
  warnings = []
  if q <= constants.COARSE_LEVELS:
    # No fine levels: the speech coarse / fine tasks cannot use such data, but
    # the piano tasks can (their second stage predicts every level and there
    # is no third stage), so this is a warning, not an error.
    warnings.append(
        f"acoustic layout Q={q} levels leaves no fine levels after the "
        f"{constants.COARSE_LEVELS} coarse ones: only the piano tasks "
        "(audiolm_piano_*) can train on it; the speech tasks need more levels")
    for w in warnings:
      print(f"WARNING: {w}", file=out or sys.stderr)
    return warnings
  for task in (audiolm.SEMANTIC_TASK, audiolm.COARSE_TASK, audiolm.FINE_TASK):
    _, stage = audiolm.TASK_STAGES[task]
    crop = {audiolm.SEMANTIC_TASK: constants.SEMANTIC_CROP_SECONDS,
            audiolm.COARSE_TASK: constants.COARSE_CROP_SECONDS,
            audiolm.FINE_TASK: constants.FINE_CROP_SECONDS}[task]
    got = stages.feature_lengths(stage, crop_seconds=crop, acoustic_levels=q,
                                 coarse_levels=constants.COARSE_LEVELS)
    gin = audiolm.TASK_FEATURE_LENGTHS[task]
    for key in sorted(got):
      if got[key] > gin.get(key, got[key]):  # shorter data is only padded
        warnings.append(
            f"{task} {key}: up to {got[key]} ids with Q={q} acoustic levels, "
            f"but t5x_configs/stages/*.gin feeds {gin.get(key)} (made for "
            f"Q={constants.ACOUSTIC_LEVELS}); set TASK_FEATURE_LENGTHS or the "
            "feature converter trims them")
  for w in warnings:
    print(f"WARNING: {w}", file=out or sys.stderr)
  return warnings
