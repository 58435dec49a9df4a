r"""Tokenize a LibriSpeech / Libri-Light corpus into sharded token TFRecords.

Locally (DirectRunner, the default)::

  python -m pipelines.tokenize_corpus \
    --input_dir=/data/LibriSpeech --splits=dev-clean,train-clean-100 \
    --output_dir=/data/tokens --kmeans=/data/kmeans_logmel_1024.npz \
    --lyra_dir=/models/lyra --num_shards=64 \
    --direct_running_mode=multi_processing --direct_num_workers=8

On Dataflow (every Beam option passes through unchanged)::

  python -m pipelines.tokenize_corpus \
    --input_dir=gs://BUCKET/LibriSpeech --archives \
    --output_dir=gs://BUCKET/tokens/librispeech \
    --kmeans=gs://BUCKET/kmeans.npz --lyra_download --num_shards=1024 \
    --runner=DataflowRunner --project=PROJECT --region=us-central1 \
    --temp_location=gs://BUCKET/tmp --setup_file=./setup.py \
    --max_num_workers=200

Output: ``<output_dir>/<split>/<split>-NNNNN-of-MMMMM.tfrecord`` (records as in
``audiolm_t5x.contract``, sorted by id, one shard per id hash), a manifest per
shard, ``dataset_info.json`` and ``dead_letter.jsonl``.

Restarts: a shard is committed by writing its manifest after its records
(both by atomic rename). A rerun with the same flags over the same
``--output_dir`` skips every input whose shard is committed and redoes only
the others; settings that differ from the committed shards are refused.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import posixpath
import sys
import tempfile
import time
from typing import Optional, Sequence

from . import options as options_lib  # first: it quiets Beam's import
# pylint: disable=g-bad-import-order,wrong-import-order
import apache_beam as beam

from audiolm_t5x import constants
from audiolm_t5x import contract
from . import corpus as corpus_lib
from . import preflight
from . import progress
from . import read_corpus
from . import job_guard
from . import tokenize_audio
from . import unique_ids
from . import write_shards
from .tokenizers import base

MODULE = "audiolm_t5x.pipelines.tokenize_corpus"


def make_parser() -> options_lib.CommandParser:
  p = options_lib.CommandParser(prog=options_lib.invocation(MODULE),
                                description=__doc__.split("\n\n")[0])
  options_lib.add_corpus_flags(p)
  p.add_argument("--output_dir", required=True,
                 help="where shards, manifests, dataset_info.json and "
                 "dead_letter.jsonl go; any Beam filesystem")
  p.add_argument("--kmeans", required=True,
                 help="semantic codebook .npz from pipelines.fit_kmeans")
  p.add_argument("--group_seconds", type=float, default=None,
                 help="group a chapter's utterances in reading order into "
                 "records of at most this many seconds (0: whole chapter); "
                 "default: one record per file")
  p.add_argument("--num_shards", type=int, default=16,
                 help="shards per split (keep it when resuming)")
  p.add_argument("--batch_size", type=int, default=8,
                 help="utterances per tokenizer call (batched backends)")
  p.add_argument("--stream_seconds", type=float, default=300.0,
                 help="inputs longer than this are streamed in blocks")
  p.add_argument("--keep_silence", action="store_true",
                 help="tokenize all-zero audio instead of dead-lettering it")
  options_lib.add_tokenizer_flags(p)
  job_guard.add_flags(p)
  return p


def tokenizer_spec(args: argparse.Namespace) -> tokenize_audio.TokenizerSpec:
  return tokenize_audio.TokenizerSpec(
      semantic=args.semantic_backend,
      semantic_options=tuple(sorted(
          options_lib.semantic_options(args).items())),
      codebook=args.kmeans,
      acoustic=args.acoustic_backend,
      acoustic_options=tuple(sorted(
          options_lib.acoustic_options(args).items())))


def tokenizer_infos(args: argparse.Namespace,
                    spec: tokenize_audio.TokenizerSpec) -> tuple[dict, dict]:
  """The tokenizers' descriptions; refuses rates the contract cannot align."""
  sem_info, ac_info = spec.info()
  for role, info_, rate in (("semantic", sem_info, constants.SEMANTIC_RATE_HZ),
                            ("acoustic", ac_info, constants.ACOUSTIC_RATE_HZ)):
    if info_.get("rate_hz") != rate:
      raise ValueError(
          f"the {role} backend {info_['name']!r} gives {info_.get('rate_hz')} "
          f"Hz frames; records of contract v{contract.CONTRACT_VERSION} "
          f"need {rate} Hz (audiolm_t5x/contract.py), so the tasks can align "
          "semantic and acoustic frames")
  return sem_info, ac_info


def build_pipeline(p: beam.Pipeline, args: argparse.Namespace, *,
                   command: str = "",
                   prepared: job_guard.Prepared,
                   progress_dir: Optional[str] = None) -> beam.PCollection:
  """Wires the job; returns the PCollection of the final per-split summary.

  ``prepared`` (:func:`job_guard.prepare`) holds the listing, the settings
  and the committed shards this run skips. With ``progress_dir`` (local
  runs), records and dead letters are counted there for
  :class:`progress.ProgressPrinter`.
  """
  spec = tokenizer_spec(args)
  sem_info, ac_info = prepared.infos or tokenizer_infos(args, spec)
  fingerprints = {"semantic": sem_info["fingerprint"],
                  "acoustic": ac_info["fingerprint"]}
  done = prepared.done
  n = args.num_shards
  grouped = args.group_seconds is not None
  keys = write_shards.ShardKeys(num_shards=n, root=args.input_dir,
                                corpus=args.corpus, grouped=grouped)
  info = contract.DatasetInfo(
      semantic=sem_info, acoustic=ac_info, command=command,
      versions=write_shards.dataset_versions(),
      options={"corpus": args.corpus, "input_dir": args.input_dir,
               "splits": args.splits, "group_seconds": args.group_seconds,
               "num_shards": n, "archives": args.archives,
               "settings": prepared.settings})
  splits = [s for s in args.splits.split(",") if s]
  entries = p | "ListInputs" >> read_corpus.ListInputs(
      listing=prepared.listing)
  items, read_dead = entries | "ReadCorpus" >> read_corpus.ReadCorpus(
      input_dir=args.input_dir, corpus=args.corpus, splits=splits,
      archives=args.archives, group_seconds=args.group_seconds,
      follow_external_links=args.follow_external_links,
      max_member_bytes=args.max_member_bytes)
  items, dup_dead = items | "UniqueIds" >> unique_ids.DropDuplicateIds()
  todo = items | "SkipCommitted" >> beam.Filter(
      lambda it: keys.of_item(it) not in done)
  records, tok_dead = todo | "Tokenize" >> tokenize_audio.TokenizeAudio(
      spec=spec, batch_size=args.batch_size,
      stream_seconds=args.stream_seconds,
      reject_silence=not args.keep_silence)
  dead = ((read_dead, dup_dead, tok_dead) | "AllDead" >> beam.Flatten()
          | "SkipCommittedDead" >> beam.Filter(
              lambda d: keys.of_dead(d) not in done))
  if progress_dir:
    records = records | "NoteRecords" >> beam.ParDo(
        progress.NoteProgressFn(progress_dir))
    dead = dead | "NoteDead" >> beam.ParDo(
        progress.NoteProgressFn(progress_dir))
  shard_inputs = (records, dead)
  if not args.archives:
    inputs = (entries
              | "InputsByShard" >> read_corpus.InputsByShard(
                  corpus=args.corpus, grouped=grouped, num_shards=n)
              | "SkipCommittedInputs" >> beam.Filter(
                  lambda kv: kv[0] not in done))
    shard_inputs = (records, dead, inputs)
  written = shard_inputs | "Write" >> write_shards.WriteTokenShards(
      output_dir=args.output_dir, num_shards=n, fingerprints=fingerprints,
      settings=prepared.settings, keys=keys)
  return written | "Info" >> write_shards.WriteDatasetInfo(
      output_dir=args.output_dir, info=info)


def print_summary(output_dir: str, result=None, out=sys.stdout, *,
                  wall_seconds: Optional[float] = None) -> dict:
  """Prints counts per split and the counters; returns the dataset info."""
  info = contract.DatasetInfo.load(output_dir)
  counters = options_lib.counters(result) if result is not None else {}
  if wall_seconds is not None:
    hours = counters.get("audio_seconds_x1000", 0) / 1000 / 3600
    rate = hours / (wall_seconds / 3600) if wall_seconds > 0 else 0.0
    print(f"done in {wall_seconds:.1f} s: {counters.get('written', 0)} "
          f"records ({hours:.3f} h of audio, {rate:.1f} h audio per hour), "
          f"{counters.get('failed', 0)} failed, this run", file=out)
  print(f"dataset_info: {posixpath.join(output_dir, 'dataset_info.json')}",
        file=out)
  print(f"semantic: {info.semantic['name']} (K={info.semantic_codebook_size},"
        f" fingerprint {info.semantic['fingerprint']})", file=out)
  print(f"acoustic: {info.acoustic['name']} (Q={info.acoustic_levels}, "
        f"N={info.acoustic_codebook_size}, fingerprint "
        f"{info.acoustic['fingerprint']})", file=out)
  for name, s in sorted(info.splits.items()):
    print(f"  {name}: {s['records']} records, {s['failed']} failed, "
          f"{s['hours']:.3f} h, {s['semantic_tokens']} semantic tokens, "
          f"{s['acoustic_frames']} acoustic frames, failed by step "
          f"{s['failed_by_step']}", file=out)
  if result is not None:
    print(f"counters (this run): {json.dumps(counters, sort_keys=True)}",
          file=out)
  dead = posixpath.join(output_dir, contract.DEAD_LETTER_FILENAME)
  print(f"dead letters: {dead}", file=out)
  return info


def _checked_infos(args: argparse.Namespace) -> tuple[dict, dict]:
  """Loads the tokenizers' descriptions; a user's mistake is a UserError."""
  preflight.check_readable(args.kmeans, flag="--kmeans")
  try:
    sem_info, ac_info = tokenizer_infos(args, tokenizer_spec(args))
  except base.TokenizerError as e:  # model files missing or unreadable
    raise options_lib.UserError(str(e)) from e
  except (OSError, ValueError) as e:
    if isinstance(e, options_lib.UserError):
      raise
    raise options_lib.UserError(f"{type(e).__name__}: {e}") from e
  preflight.check_layout(
      semantic_codebook_size=int(sem_info["codebook_size"]),
      acoustic_levels=int(ac_info["levels"]),
      acoustic_codebook_size=int(ac_info["codebook_size"]))
  return sem_info, ac_info


def run(argv: Optional[Sequence[str]] = None, *,
        command: Optional[str] = None) -> dict:
  """Runs the job; returns the output's dataset info.

  Raises:
    options_lib.UserError: a bad flag, an unusable input or output, model or
      codebook files that cannot be read, or an acoustic layout the tasks
      cannot take; raised before any compute.
  """
  argv = list(sys.argv[1:] if argv is None else argv)
  args, beam_args = options_lib.parse_args(make_parser(), argv)
  start = time.time()
  options_lib.check_backends(args)
  preflight.check_input_dir(args.input_dir,
                            splits=[s for s in args.splits.split(",") if s],
                            archives=args.archives)
  preflight.check_output_dir(args.output_dir)
  opts = options_lib.pipeline_options(beam_args, verbose=args.verbose)
  local = options_lib.runs_in_process(opts)
  command = command or options_lib.command_line(MODULE, argv)
  with job_guard.lock(args, command):  # before any compute
    sem_info, ac_info = _checked_infos(args)
    prepared = job_guard.prepare(
        args, semantic=sem_info, acoustic=ac_info,
        semantic_options=options_lib.semantic_options(args),
        acoustic_options=options_lib.acoustic_options(args))
    audio_inputs = _audio_inputs(prepared)
    if not prepared.num_entries or audio_inputs == 0:
      raise preflight.no_candidates(
          args.input_dir, splits=[s for s in args.splits.split(",") if s],
          archives=args.archives)
    print(f"{prepared.num_entries} candidates listed; "
          f"{len(prepared.done)} committed shards kept, "
          f"{len(prepared.plan.redo)} redone", flush=True)
    with tempfile.TemporaryDirectory(prefix="audiolm_progress_") as tmp:
      folder = os.path.join(tmp, "progress") if local else None
      p = options_lib.make_pipeline(opts)
      build_pipeline(p, args, command=command, prepared=prepared,
                     progress_dir=folder)
      with (progress.ProgressPrinter(folder, total=audio_inputs) if folder
            else contextlib.nullcontext()), options_lib.worker_threads(opts):
        result = p.run()
        result.wait_until_finish()
  return print_summary(args.output_dir, result,
                       wall_seconds=time.time() - start)


def _audio_inputs(prepared: job_guard.Prepared) -> Optional[int]:
  """Audio candidates of the listing (None for archives: unknown)."""
  if any(e.kind == corpus_lib.ARCHIVE
         for e in read_corpus._read_listing(prepared.listing)):  # pylint: disable=protected-access
    return None
  return sum(1 for e in read_corpus._read_listing(prepared.listing)  # pylint: disable=protected-access
             if e.kind == corpus_lib.AUDIO)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Console entry (``audiolm-tokenize``): exit status, 2 on user errors."""
  return options_lib.main(run, MODULE, argv)


if __name__ == "__main__":
  sys.exit(main())
