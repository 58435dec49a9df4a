r"""Fit the semantic k-means codebook on a sample of a corpus.

Locally::

  python -m pipelines.fit_kmeans --input_dir=/data/LibriSpeech \
    --splits=train-clean-100 --output=/data/kmeans_logmel_1024.npz \
    --k=1024 --file_fraction=0.1 --frames_per_file=100 --seed=0

On Dataflow::

  python -m pipelines.fit_kmeans --input_dir=gs://BUCKET/LibriSpeech \
    --splits=train-clean-100 --output=gs://BUCKET/kmeans.npz \
    --semantic_backend=w2v_bert --semantic_option=model=facebook/w2v-bert-2.0 \
    --semantic_option=layer=7 \
    --runner=DataflowRunner --project=PROJECT --region=us-central1 \
    --temp_location=gs://BUCKET/tmp --setup_file=./setup.py

Sampling is deterministic for a seed: a file is kept when a hash of
(seed, path) falls under ``--file_fraction``; each kept file contributes up to
``--frames_per_file`` frames chosen by a generator seeded from (seed, path);
of those, the ``--max_frames`` with the smallest (seed, path, frame) hash are
fitted. Embeddings are standardised per dimension, then clustered with
mini-batch k-means (scikit-learn). The codebook (.npz) and its provenance
(.json: backend, layer, sample size, seed, inertia, cluster usage) are
written to ``--output``; the provenance is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import posixpath
import shlex
import sys
from typing import Optional, Sequence

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions
import numpy as np

from audiolm_t5x import constants
from . import audio
from . import corpus as corpus_lib
from . import options as options_lib
from .tokenizers import base
from .tokenizers import kmeans


def _hash(*parts) -> int:
  return int.from_bytes(hashlib.sha1(
      "\x00".join(map(str, parts)).encode()).digest()[:8], "big")


class SampleFramesFn(beam.DoFn):
  """Audio path -> (hash key, embedding frame) for up to N frames."""

  def __init__(self, backend: str, options: dict, *, seed: int,
               frames_per_file: int):
    self._backend = backend
    self._options = options
    self._seed = seed
    self._per_file = frames_per_file
    self._files = Metrics.counter("audiolm", "kmeans_files")
    self._failed = Metrics.counter("audiolm", "kmeans_failed")

  def setup(self):
    self._emb = base.make_semantic_embedder(self._backend, **self._options)
    self._emb.load()

  def process(self, path: str):
    from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top

    try:
      with FileSystems.open(path) as f:
        wave = audio.decode(f)
      audio.check_usable(wave)
      emb = self._emb.embed(wave)
    except (audio.AudioError, base.TokenizerError) as e:
      self._failed.inc()
      yield beam.pvalue.TaggedOutput("dead", {"path": path, "reason": str(e)})
      return
    self._files.inc()
    rng = np.random.default_rng(_hash(self._seed, path) % (1 << 63))
    take = min(self._per_file, emb.shape[0])
    for i in sorted(rng.choice(emb.shape[0], size=take, replace=False)):
      yield (_hash(self._seed, path, int(i)), emb[i].astype(np.float32))


class _FitFn(beam.DoFn):

  def __init__(self, output: str, k: int, seed: int, provenance: dict):
    self._output = output
    self._k = k
    self._seed = seed
    self._prov = provenance

  def process(self, keyed_frames):
    frames = np.stack([f for _, f in sorted(keyed_frames,
                                            key=lambda kv: kv[0])])
    book = kmeans.fit_codebook(frames, k=self._k, seed=self._seed,
                               provenance=self._prov)
    book.save(self._output)
    yield book.provenance


def build_pipeline(p: beam.Pipeline, args: argparse.Namespace, *,
                   command: str = "") -> beam.PCollection:
  sem_opts = options_lib.semantic_options(args)
  embedder = base.make_semantic_embedder(args.semantic_backend, **sem_opts)
  root = args.input_dir.rstrip("/")
  splits = [s for s in args.splits.split(",") if s] or ["*"]
  patterns = sorted(posixpath.join(root, s, "*", "*", "*" + suf)
                    for s in splits for suf in corpus_lib.AUDIO_SUFFIXES)
  seed, fraction = args.seed, args.file_fraction
  provenance = {
      "backend": args.semantic_backend, "backend_options": sem_opts,
      "embedder": embedder.info(), "layer": sem_opts.get("layer"),
      "input_dir": args.input_dir, "splits": args.splits,
      "file_fraction": fraction, "frames_per_file": args.frames_per_file,
      "max_frames": args.max_frames, "command": command,
      "rate_hz": constants.SEMANTIC_RATE_HZ,
  }
  sampled = (
      p
      | "Patterns" >> beam.Create(patterns)
      | "Match" >> fileio.MatchAll(
          empty_match_treatment=fileio.EmptyMatchTreatment.ALLOW)
      | "Paths" >> beam.Map(lambda m: m.path)
      | "SampleFiles" >> beam.Filter(
          lambda path: _hash(seed, path) / 2.0**64 < fraction)
      | "Spread" >> beam.Reshuffle()
      | "Embed" >> beam.ParDo(SampleFramesFn(
          args.semantic_backend, sem_opts, seed=seed,
          frames_per_file=args.frames_per_file)).with_outputs(
              "dead", main="frames"))
  return (
      sampled.frames
      | "KeepSmallestHashes" >> beam.combiners.Top.Smallest(
          args.max_frames, key=lambda kv: kv[0])
      | "Fit" >> beam.ParDo(_FitFn(args.output, args.k, args.seed,
                                   provenance)))


def make_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--input_dir", required=True)
  p.add_argument("--output", required=True, help="codebook path (.npz)")
  p.add_argument("--splits", default="")
  p.add_argument("--k", type=int, default=constants.SEMANTIC_CODEBOOK_SIZE)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--file_fraction", type=float, default=1.0)
  p.add_argument("--frames_per_file", type=int, default=100)
  p.add_argument("--max_frames", type=int, default=200_000)
  options_lib.add_tokenizer_flags(p, acoustic=False)
  return p


def run(argv: Optional[Sequence[str]] = None) -> dict:
  argv = list(sys.argv[1:] if argv is None else argv)
  args, beam_args = make_parser().parse_known_args(argv)
  options_lib.check_backends(args)
  command = "python -m pipelines.fit_kmeans " + shlex.join(argv)
  with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
    build_pipeline(p, args, command=command)
  book = kmeans.KMeansCodebook.load(args.output)
  usage = book.provenance["cluster_usage"]
  print(f"codebook: {args.output} (K={book.size}, D={book.dim}, "
        f"{book.provenance['num_frames']} frames)")
  print(f"inertia per frame: {book.provenance['inertia_per_frame']:.3f}; "
        f"clusters used: {usage['used_clusters']}/{usage['k']}; "
        f"perplexity {usage['perplexity']:.1f}; largest cluster share "
        f"{usage['max_cluster_share']:.3f}")
  print(f"provenance: {args.output}.json")
  return json.loads(json.dumps(book.provenance))


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Console-script entry: runs the job, returns the exit status."""
  run(argv)
  return 0


if __name__ == "__main__":
  sys.exit(main())
