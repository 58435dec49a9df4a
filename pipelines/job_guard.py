"""What the tokenization job's launcher does before any compute.

Under the output directory's writer lock (:mod:`writer_lock`), it lists the
corpus once (:func:`corpus.list_inputs`, or the archives), builds the
run's settings (everything that shapes records), checks them and the
listing against the committed shards (:func:`resume.plan`), removes the
leftovers of interrupted runs, and writes the listing to
``<output_dir>/_inputs.jsonl`` for the pipeline to read. Every refusal is a
:class:`UserError` with one message saying what to change.
"""

from __future__ import annotations

import argparse
import dataclasses
import posixpath
import uuid
from typing import Callable, Optional

from apache_beam.io.filesystems import FileSystems

from . import corpus as corpus_lib
from . import integrity
from . import options
from . import read_corpus
from . import resume
from . import writer_lock

LISTING_FILENAME = "_inputs.jsonl"
# Tokenizer options that say where files are, not what they hold (the
# fingerprints cover the files' content).
LOCATION_OPTIONS = ("model_dir", "download", "model", "cache_dir")
# Errors that are the user's to fix: one line, exit status 2.
UserError = options.UserError


def add_flags(parser: argparse.ArgumentParser) -> None:
  """The job's data-safety flags."""
  parser.add_argument(
      "--follow_external_links", action="store_true",
      help="read links whose target is outside --input_dir (by default they "
      "are dead-lettered)")
  parser.add_argument(
      "--max_member_bytes", type=int,
      default=corpus_lib.DEFAULT_MAX_MEMBER_BYTES,
      help="archive members larger than this are dead-lettered unread "
      "(bounds memory)")
  parser.add_argument(
      "--redo_changed_shards", action="store_true",
      help="when inputs were added to or removed from the corpus since shards "
      "were committed, redo exactly those shards instead of refusing")
  parser.add_argument(
      "--verify_committed", default=integrity.SHA256,
      choices=integrity.CHECKS,
      help="how a rerun checks committed shards against their manifests "
      "(missing or corrupt ones are redone)")
  parser.add_argument(
      "--break_lock", action="store_true",
      help="take the output directory's writer lock even if another job "
      "seems to hold it (only when that job is known to be dead)")
  parser.add_argument(
      "--lock_stale_seconds", type=float,
      default=writer_lock.DEFAULT_STALE_SECONDS,
      help="a writer lock whose heartbeat is older than this is taken over")


def _tokenizer_settings(info: dict, options: dict) -> dict:
  return {"name": info.get("name"), "fingerprint": info.get("fingerprint"),
          "options": {k: v for k, v in sorted(options.items())
                      if k not in LOCATION_OPTIONS}}


def settings_of(args: argparse.Namespace, *, semantic: dict, acoustic: dict,
                semantic_options: dict, acoustic_options: dict,
                archives: Optional[list] = None) -> dict:
  """Everything that shapes the records of a run (JSON-comparable)."""
  out = {
      "semantic": _tokenizer_settings(semantic, semantic_options),
      "acoustic": _tokenizer_settings(acoustic, acoustic_options),
      "corpus": args.corpus,
      "splits": sorted(s for s in args.splits.split(",") if s) or "all",
      "layout": "archives" if args.archives else "folders",
      "group_seconds": args.group_seconds,
      "num_shards": args.num_shards,
      "keep_silence": bool(args.keep_silence),
      "follow_external_links": bool(args.follow_external_links),
      "max_member_bytes": args.max_member_bytes,
  }
  if archives is not None:
    out["input_archives"] = archives
  return out


@dataclasses.dataclass
class Prepared:
  """The launcher's decisions, handed to the pipeline."""

  settings: dict
  done: frozenset
  listing: str
  num_entries: int
  plan: resume.Plan
  infos: tuple = ()  # (semantic, acoustic) tokenizer descriptions


def _archive_sizes(entries) -> list:
  out = []
  for e in entries:
    size = None
    if not e.problem:
      found = FileSystems.match([e.path])[0].metadata_list
      size = found[0].size_in_bytes if found else None
    out.append([e.rel, size])
  return out


def prepare(args: argparse.Namespace, *, semantic: dict, acoustic: dict,
            semantic_options: dict, acoustic_options: dict,
            log: Callable[[str], None] = print) -> Prepared:
  """Lists, checks and plans a run; call it holding the writer lock.

  Raises:
    corpus.CorpusError: the input or a split does not exist.
    resume.ResumeError: the output cannot be resumed by this run.
  """
  try:
    return _prepare(args, semantic=semantic, acoustic=acoustic,
                    semantic_options=semantic_options,
                    acoustic_options=acoustic_options, log=log)
  except corpus_lib.CorpusError as e:  # no such input folder or split
    raise options.UserError(str(e)) from e


def _prepare(args, *, semantic, acoustic, semantic_options, acoustic_options,
             log) -> Prepared:
  splits = [s for s in args.splits.split(",") if s]
  archives = None
  if args.archives:
    entries = corpus_lib.list_archives(args.input_dir)
    if not entries:
      raise corpus_lib.CorpusError(
          f"no .tar.gz / .tgz / .tar archives in {args.input_dir}")
    archives = _archive_sizes(entries)
    expected = None
  else:
    entries = corpus_lib.list_inputs(
        args.input_dir, splits=splits,
        follow_external_links=args.follow_external_links)
    expected = corpus_lib.inputs_by_shard(
        entries, corpus=args.corpus,
        grouped=args.group_seconds is not None, num_shards=args.num_shards)
  settings = settings_of(args, semantic=semantic, acoustic=acoustic,
                         semantic_options=semantic_options,
                         acoustic_options=acoustic_options, archives=archives)
  resume.remove_temporaries(args.output_dir)
  plan = resume.plan(args.output_dir, settings=settings, expected=expected,
                     check=args.verify_committed,
                     redo_changed=args.redo_changed_shards, log=log)
  listing = posixpath.join(args.output_dir.rstrip("/"), LISTING_FILENAME)
  tmp = f"{listing}{integrity.TMP_MARK}{uuid.uuid4().hex}"
  read_corpus.write_listing(tmp, entries)
  if FileSystems.exists(listing):
    FileSystems.delete([listing])
  FileSystems.rename([tmp], [listing])
  return Prepared(settings=settings, done=plan.done, listing=listing,
                  num_entries=len(entries), plan=plan,
                  infos=(semantic, acoustic))


def lock(args: argparse.Namespace, command: str,
         log: Callable[[str], None] = print) -> writer_lock.WriterLock:
  """The output directory's writer lock for this run (not yet acquired)."""
  return writer_lock.WriterLock(
      args.output_dir, command=command, break_lock=args.break_lock,
      stale_seconds=args.lock_stale_seconds, log=log)
