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
import json
import posixpath
import shlex
import sys
from typing import Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from audiolm_t5x import constants
from audiolm_t5x import contract
from . import corpus as corpus_lib
from . import options as options_lib
from . import read_corpus
from . import job_guard
from . import reporting
from . import tokenize_audio
from . import unique_ids
from . import write_shards


def make_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--input_dir", required=True,
                 help="corpus root with <split>/ folders (or, with "
                 "--archives, a folder of .tar.gz); any Beam filesystem")
  p.add_argument("--output_dir", required=True)
  p.add_argument("--kmeans", required=True,
                 help="semantic codebook .npz from pipelines.fit_kmeans")
  p.add_argument("--corpus", default=corpus_lib.LIBRISPEECH,
                 choices=corpus_lib.CORPORA)
  p.add_argument("--splits", default="",
                 help="comma-separated split names (default: all found)")
  p.add_argument("--archives", action="store_true",
                 help="read the released .tar.gz archives, streamed")
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
                   prepared: job_guard.Prepared) -> beam.PCollection:
  """Wires the job; returns the PCollection of the final per-split summary.

  ``prepared`` (:func:`job_guard.prepare`) holds the listing, the settings
  and the committed shards this run skips.
  """
  spec = tokenizer_spec(args)
  sem_info, ac_info = tokenizer_infos(args, spec)
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


def print_summary(output_dir: str, result=None, out=sys.stdout) -> dict:
  """Prints counts per split and the counters; returns the dataset info."""
  info = contract.DatasetInfo.load(output_dir)
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
    counters = {}
    for c in result.metrics().query()["counters"]:
      if c.key.metric.namespace == reporting.NAMESPACE:  # summed over steps
        counters[c.key.metric.name] = (counters.get(c.key.metric.name, 0) +
                                       c.committed)
    print(f"counters (this run): {json.dumps(counters, sort_keys=True)}",
          file=out)
  dead = posixpath.join(output_dir, contract.DEAD_LETTER_FILENAME)
  print(f"dead letters: {dead}", file=out)
  return info


def run(argv: Optional[Sequence[str]] = None) -> dict:
  argv = list(sys.argv[1:] if argv is None else argv)
  args, beam_args = make_parser().parse_known_args(argv)
  options_lib.check_backends(args)
  opts = PipelineOptions(beam_args)
  command = "python -m pipelines.tokenize_corpus " + shlex.join(argv)
  spec = tokenizer_spec(args)
  sem_info, ac_info = tokenizer_infos(args, spec)
  with job_guard.lock(args, command):
    prepared = job_guard.prepare(
        args, semantic=sem_info, acoustic=ac_info,
        semantic_options=options_lib.semantic_options(args),
        acoustic_options=options_lib.acoustic_options(args))
    print(f"{prepared.num_entries} candidates listed; "
          f"{len(prepared.done)} committed shards kept, "
          f"{len(prepared.plan.redo)} redone", flush=True)
    with beam.Pipeline(options=opts) as p:
      build_pipeline(p, args, command=command, prepared=prepared)
    result = p.result
  return print_summary(args.output_dir, result)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Console-script entry: runs the job, returns the exit status."""
  try:
    run(argv)
  except job_guard.UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
