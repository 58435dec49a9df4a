r"""Fit the semantic k-means codebook on a sample of a corpus.

Locally::

  python -m pipelines.fit_kmeans --input_dir=/data/LibriSpeech \
    --splits=train-clean-100 --output=/data/kmeans_logmel_1024.npz \
    --k=1024 --file_fraction=0.1 --frames_per_file=100 --seed=0

On Dataflow, from the released archives::

  python -m pipelines.fit_kmeans --input_dir=gs://BUCKET/LibriSpeech \
    --archives --splits=train-clean-100 --output=gs://BUCKET/kmeans.npz \
    --semantic_backend=w2v_bert --semantic_option=model=facebook/w2v-bert-2.0 \
    --semantic_option=layer=7 \
    --runner=DataflowRunner --project=PROJECT --region=us-central1 \
    --temp_location=gs://BUCKET/tmp --setup_file=./setup.py

The corpus is read as the tokenization job reads it (directories,
``--archives``, ``--corpus=librilight``); see :mod:`pipelines.fit_codebook`
for the sampling. The codebook (.npz), its provenance (.json: backend, layer,
sample size, seed, inertia, cluster usage) and the inputs that could not be
used (``.failed.jsonl``) are written beside ``--output``.
"""

from __future__ import annotations

import sys
import time
from typing import Optional, Sequence

from audiolm_t5x import constants
from . import corpus as corpus_lib
from . import options as options_lib

MODULE = "audiolm_t5x.pipelines.fit_kmeans"


def make_parser() -> options_lib.CommandParser:
  p = options_lib.CommandParser(prog=options_lib.invocation(MODULE),
                                description=__doc__.split("\n\n")[0])
  options_lib.add_corpus_flags(p)
  p.add_argument("--output", required=True,
                 help="codebook path (.npz); provenance and failed inputs "
                 "are written beside it")
  p.add_argument("--k", type=int, default=constants.SEMANTIC_CODEBOOK_SIZE,
                 help="codebook size (number of clusters)")
  p.add_argument("--seed", type=int, default=0,
                 help="seed of the sampling and of k-means")
  p.add_argument("--file_fraction", type=float, default=1.0,
                 help="fraction of the inputs sampled (by a hash of path)")
  p.add_argument("--frames_per_file", type=int, default=100,
                 help="embedding frames taken from each sampled input")
  p.add_argument("--max_frames", type=int, default=200_000,
                 help="frames fitted at most (smallest hashes kept)")
  options_lib.add_tokenizer_flags(p, acoustic=False)
  return p


def _too_small(what: str, args) -> options_lib.UserError:
  return options_lib.UserError(
      f"{what}, fewer than --k={args.k} frames to fit: raise --file_fraction "
      f"(now {args.file_fraction:g}) or --frames_per_file (now "
      f"{args.frames_per_file}), or lower --k")


def run(argv: Optional[Sequence[str]] = None, *,
        command: Optional[str] = None) -> dict:
  """Fits and saves the codebook; returns its provenance.

  Raises:
    options_lib.UserError: a bad flag, an input that yields no sample large
      enough, an unusable output path (before any compute), or a sample
      that gave fewer than ``--k`` frames.
  """
  # pylint: disable=g-import-not-at-top
  import apache_beam as beam

  from . import fit_codebook
  from . import preflight
  from .tokenizers import base
  from .tokenizers import kmeans

  argv = list(sys.argv[1:] if argv is None else argv)
  args, beam_args = options_lib.parse_args(make_parser(), argv)
  start = time.time()
  options_lib.check_backends(args)
  preflight.check_output_file(args.output)
  splits = [s for s in args.splits.split(",") if s]
  entries = preflight.list_candidates(args.input_dir, splits=splits,
                                      archives=args.archives)
  if not args.archives:
    total, kept = fit_codebook.sample_size(entries, seed=args.seed,
                                           fraction=args.file_fraction)
    if kept * args.frames_per_file < args.k:
      raise _too_small(
          f"the sample keeps {kept} of {total} audio files, at most "
          f"{kept * args.frames_per_file} frames", args)
    entries = [e for e in entries if e.kind != corpus_lib.AUDIO or
               fit_codebook.keeps(e.path, seed=args.seed,
                                  fraction=args.file_fraction)]
  sem_opts = options_lib.semantic_options(args)
  embedder = base.make_semantic_embedder(args.semantic_backend, **sem_opts)
  command = command or options_lib.command_line(MODULE, argv)
  provenance = {
      "backend": args.semantic_backend, "backend_options": sem_opts,
      "embedder": embedder.info(), "layer": sem_opts.get("layer"),
      "input_dir": args.input_dir, "corpus": args.corpus,
      "splits": args.splits, "archives": args.archives,
      "file_fraction": args.file_fraction,
      "frames_per_file": args.frames_per_file,
      "max_frames": args.max_frames, "command": command,
      "rate_hz": constants.SEMANTIC_RATE_HZ,
  }
  opts = options_lib.pipeline_options(beam_args, verbose=args.verbose)
  with options_lib.make_pipeline(opts) as p:
    _ = (p
         | "Candidates" >> beam.Create(entries)
         | "Fit" >> fit_codebook.FitCodebook(
             input_dir=args.input_dir, output=args.output, k=args.k,
             seed=args.seed, file_fraction=args.file_fraction,
             frames_per_file=args.frames_per_file, max_frames=args.max_frames,
             backend=args.semantic_backend, backend_options=sem_opts,
             provenance=provenance, corpus=args.corpus, splits=splits,
             archives=args.archives))
  failed = fit_codebook.read_failed(args.output)
  failed_path = args.output + fit_codebook.FAILED_SUFFIX
  counters = options_lib.counters(p.result)
  n_frames = counters.get("kmeans_frames", 0)
  if n_frames < args.k:
    raise _too_small(
        f"the sample gave {n_frames} frames from "
        f"{counters.get('kmeans_files', 0)} inputs ({len(failed)} failed: "
        f"{failed_path})", args)
  book = kmeans.KMeansCodebook.load(args.output)
  usage = book.provenance["cluster_usage"]
  print(f"codebook: {args.output} (K={book.size}, D={book.dim}, "
        f"{book.provenance['num_frames']} frames from "
        f"{counters.get('kmeans_files', 0)} inputs)")
  print(f"inertia per frame: {book.provenance['inertia_per_frame']:.3f}; "
        f"clusters used: {usage['used_clusters']}/{usage['k']}; "
        f"perplexity {usage['perplexity']:.1f}; largest cluster share "
        f"{usage['max_cluster_share']:.3f}")
  print(f"failed inputs: {len(failed)} (listed in {failed_path})")
  print(f"provenance: {args.output}.json; wall time "
        f"{time.time() - start:.1f} s")
  return dict(book.provenance)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Console entry (``audiolm-fit-kmeans``): exit status, 2 on user errors."""
  return options_lib.main(run, MODULE, argv)


if __name__ == "__main__":
  sys.exit(main())
