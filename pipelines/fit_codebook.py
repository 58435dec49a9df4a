"""The k-means codebook job's Beam steps (``pipelines.fit_kmeans`` runs them).

The corpus is read by the tokenization job's own reader
(:class:`read_corpus.ReadCorpus`: directories, ``--archives``, Libri-Light), so
the codebook is fitted on what the job will tokenize.

Sampling is deterministic for a seed: an input is kept when a hash of
(seed, path) falls under ``file_fraction``; each kept input contributes up to
``frames_per_file`` frames chosen by a generator seeded from (seed, path); of
those, the ``max_frames`` with the smallest (seed, path, frame) hash are
fitted. Embeddings are standardised per dimension, then clustered with
mini-batch k-means (scikit-learn). Inputs that cannot be used are dead
letters, written to ``<output>.failed.jsonl`` and counted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
import numpy as np

from audiolm_t5x import contract
from . import audio
from . import corpus as corpus_lib
from . import read_corpus
from .reporting import DEAD
from .reporting import counter
from .tokenizers import base
from .tokenizers import kmeans

FAILED_SUFFIX = ".failed.jsonl"


def hash_of(*parts) -> int:
  """Stable 64-bit hash of the parts (same on every worker and run)."""
  return int.from_bytes(hashlib.sha1(
      "\x00".join(map(str, parts)).encode()).digest()[:8], "big")


def keeps(path: str, *, seed: int, fraction: float) -> bool:
  """Whether the sample keeps the input at ``path``."""
  return hash_of(seed, path) / 2.0**64 < fraction


def decode_item(item: corpus_lib.WorkItem) -> np.ndarray:
  """The 16 kHz mono waveform of a work item (its parts in order)."""
  waves = []
  for ref in item.parts:
    suffix = corpus_lib.audio_suffix(ref.rel)
    if ref.data is not None:
      waves.append(audio.decode(ref.data, suffix=suffix))
    else:
      with FileSystems.open(ref.path) as f:
        waves.append(audio.decode(f, suffix=suffix))
  return np.concatenate(waves) if waves else np.zeros([0], np.float32)


class SampleFramesFn(beam.DoFn):
  """WorkItem -> (hash key, embedding frame) for up to N frames."""

  def __init__(self, backend: str, options: dict, *, seed: int,
               frames_per_file: int):
    self._backend = backend
    self._options = options
    self._seed = seed
    self._per_file = frames_per_file
    self._files = counter("kmeans_files")
    self._frames = counter("kmeans_frames")
    self._failed = counter("kmeans_failed")

  def setup(self):
    self._emb = base.make_semantic_embedder(self._backend, **self._options)
    self._emb.load()

  def process(self, item: corpus_lib.WorkItem):
    try:
      wave = decode_item(item)
      audio.check_usable(wave)
      emb = self._emb.embed(wave)
    except (audio.AudioError, base.TokenizerError, OSError) as e:
      self._failed.inc()
      yield beam.pvalue.TaggedOutput(DEAD, contract.DeadLetter(
          path=item.path, id=item.id, split=item.split, step="embed",
          reason=f"{type(e).__name__}: {e}"))
      return
    self._files.inc()
    rng = np.random.default_rng(hash_of(self._seed, item.path) % (1 << 63))
    take = min(self._per_file, emb.shape[0])
    self._frames.inc(take)
    for i in sorted(rng.choice(emb.shape[0], size=take, replace=False)):
      yield (hash_of(self._seed, item.path, int(i)),
             emb[i].astype(np.float32))


class FitFn(beam.DoFn):
  """All sampled frames -> the saved codebook's provenance.

  With fewer frames than ``k`` nothing is fitted or saved; the output says
  how many frames there were, for the launcher to report.
  """

  def __init__(self, output: str, k: int, seed: int, provenance: dict):
    self._output = output
    self._k = k
    self._seed = seed
    self._prov = provenance

  def process(self, keyed_frames):
    keyed_frames = sorted(keyed_frames, key=lambda kv: kv[0])
    if len(keyed_frames) < self._k:
      yield {"too_few_frames": len(keyed_frames)}
      return
    frames = np.stack([f for _, f in keyed_frames])
    book = kmeans.fit_codebook(frames, k=self._k, seed=self._seed,
                               provenance=self._prov)
    book.save(self._output)
    yield book.provenance


def _write_failed(dead: list, path: str) -> int:
  rows = sorted((dataclasses.asdict(d) for d in dead),
                key=lambda d: (d["path"], d["step"]))
  with FileSystems.create(path) as f:
    f.write("".join(json.dumps(r, sort_keys=True) + "\n"
                    for r in rows).encode("utf-8"))
  return len(rows)


class FitCodebook(beam.PTransform):
  """Candidates (:class:`corpus.Entry`) -> k-means codebook at ``output``.

  Returns the PCollection of the single provenance dict (or
  ``{"too_few_frames": n}``); dead letters go to ``output + FAILED_SUFFIX``.
  """

  def __init__(self, *, input_dir: str, output: str, k: int, seed: int,
               file_fraction: float, frames_per_file: int, max_frames: int,
               backend: str, backend_options: dict, provenance: dict,
               corpus: str = corpus_lib.LIBRISPEECH,
               splits: Sequence[str] = (), archives: bool = False):
    super().__init__()
    self._input_dir = input_dir
    self._output = output
    self._k = k
    self._seed = seed
    self._fraction = file_fraction
    self._per_file = frames_per_file
    self._max_frames = max_frames
    self._backend = backend
    self._options = backend_options
    self._prov = provenance
    self._corpus = corpus
    self._splits = tuple(splits)
    self._archives = archives

  def expand(self, entries):
    seed, fraction = self._seed, self._fraction
    items, read_dead = entries | "ReadCorpus" >> read_corpus.ReadCorpus(
        input_dir=self._input_dir, corpus=self._corpus, splits=self._splits,
        archives=self._archives)
    sampled = (
        items
        | "SampleFiles" >> beam.Filter(
            lambda it: keeps(it.path, seed=seed, fraction=fraction))
        | "Spread" >> beam.Reshuffle()
        | "Embed" >> beam.ParDo(SampleFramesFn(
            self._backend, self._options, seed=seed,
            frames_per_file=self._per_file)).with_outputs(DEAD, main="frames"))
    failed = self._output + FAILED_SUFFIX
    _ = ((read_dead, sampled[DEAD])
         | "AllDead" >> beam.Flatten()
         | "CollectDead" >> beam.combiners.ToList()
         | "WriteDead" >> beam.Map(_write_failed, failed))
    return (
        sampled.frames
        | "KeepSmallestHashes" >> beam.combiners.Top.Smallest(
            self._max_frames, key=lambda kv: kv[0])
        | "Fit" >> beam.ParDo(FitFn(self._output, self._k, self._seed,
                                    self._prov)))


def read_failed(output: str) -> list[dict]:
  """The dead letters a run wrote beside ``output`` (empty if none)."""
  path = output + FAILED_SUFFIX
  if not FileSystems.exists(path):
    return []
  with FileSystems.open(path) as f:
    return [json.loads(line) for line in f.read().decode("utf-8").splitlines()
            if line.strip()]


def sample_size(entries: Sequence[corpus_lib.Entry], *, seed: int,
                fraction: float) -> tuple[int, int]:
  """(audio candidates, of which the sample keeps) for a directory listing."""
  audio_paths = [e.path for e in entries
                 if e.kind == corpus_lib.AUDIO and not e.problem]
  kept = sum(keeps(p, seed=seed, fraction=fraction) for p in audio_paths)
  return len(audio_paths), kept


__all__ = ["FitCodebook", "SampleFramesFn", "FitFn", "decode_item",
           "sample_size", "read_failed", "keeps", "hash_of"]
