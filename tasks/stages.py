"""Where the token data is, and the per-stage pipelines over it (resolved lazily).

The registered tasks (:mod:`audiolm_t5x.tasks.audiolm`) must import without
any data present: T5X imports them from gin before anything else. So nothing
here touches the file system until a dataset is built. Then the data directory
is resolved, in this order:

1. gin: ``audiolm_tasks.speech_corpus.data_dir = "gs://bucket/tokens"``
   (``audiolm_tasks.piano_corpus.data_dir`` for the piano tasks);
2. the environment: ``AUDIOLM_DATA_DIR`` (``AUDIOLM_PIANO_DATA_DIR``).

That directory is the tokenization job's output: ``dataset_info.json`` plus
``<split>/<split>-00000-of-00004.tfrecord`` shards. K, Q, N and the token
rates come from ``dataset_info.json``; crop seconds, the sampling prompt's
seconds and Q' are options (gin
``audiolm_tasks.speech_corpus.coarse_crop_seconds = 5.0``, ...).

Task splits map to corpus splits: ``train`` defaults to every split listed in
``dataset_info.json`` whose name does not start with ``dev`` or ``test``;
``validation`` defaults to ``dev-clean`` (or every ``dev*`` split when there
is no ``dev-clean``). Override with gin (``train_splits``,
``validation_splits``) or comma-separated ``AUDIOLM_TRAIN_SPLITS`` /
``AUDIOLM_VALIDATION_SPLITS`` (``AUDIOLM_PIANO_...`` for piano).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import os
from typing import Dict, Mapping, Optional, Sequence, Tuple

import gin
import seqio
import tensorflow as tf

from audiolm_t5x import constants
from audiolm_t5x import contract
from . import preprocessors as prep
from . import vocabulary as vocabulary_lib

SPEECH = "speech"
PIANO = "piano"
TRAIN = "train"
VALIDATION = "validation"
TASK_SPLITS = (TRAIN, VALIDATION)

# Stages. "acoustic" is the piano's second stage: all Q levels from semantics.
# "semantic_prompt" is stage 1's sampling data: a prompt to continue (inputs)
# and the rest of the crop (targets), for T5X's infer binary.
SEMANTIC = "semantic"
COARSE = "coarse"
FINE = "fine"
ACOUSTIC = "acoustic"
SEMANTIC_PROMPT = "semantic_prompt"
STAGES = (SEMANTIC, COARSE, FINE, ACOUSTIC, SEMANTIC_PROMPT)

_ENV_PREFIX = {SPEECH: "AUDIOLM", PIANO: "AUDIOLM_PIANO"}


@dataclasses.dataclass(frozen=True)
class CorpusOptions:
  """User options of one corpus (all optional; see the module docstring)."""

  corpus: str
  data_dir: Optional[str] = None
  train_splits: Optional[Tuple[str, ...]] = None
  validation_splits: Optional[Tuple[str, ...]] = None
  semantic_crop_seconds: float = constants.SEMANTIC_CROP_SECONDS
  coarse_crop_seconds: float = constants.COARSE_CROP_SECONDS
  fine_crop_seconds: float = constants.FINE_CROP_SECONDS
  coarse_levels: Optional[int] = None  # Q'; None: the paper's 4 (speech).
  prompt_seconds: float = constants.PROMPT_SECONDS
  continuation_seconds: float = constants.CONTINUATION_SECONDS


def _tuple(value) -> Optional[Tuple[str, ...]]:
  if value is None:
    return None
  if isinstance(value, str):
    value = value.split(",")
  return tuple(v.strip() for v in value if v.strip())


@gin.configurable(module="audiolm_tasks")
def speech_corpus(
    *, data_dir: Optional[str] = None,
    train_splits: Optional[Sequence[str]] = None,
    validation_splits: Optional[Sequence[str]] = None,
    semantic_crop_seconds: float = constants.SEMANTIC_CROP_SECONDS,
    coarse_crop_seconds: float = constants.COARSE_CROP_SECONDS,
    fine_crop_seconds: float = constants.FINE_CROP_SECONDS,
    coarse_levels: Optional[int] = constants.COARSE_LEVELS,
    prompt_seconds: float = constants.PROMPT_SECONDS,
    continuation_seconds: float = constants.CONTINUATION_SECONDS,
) -> CorpusOptions:
  """Options of the speech tasks (``audiolm_{semantic,coarse,fine}_*``)."""
  return CorpusOptions(SPEECH, data_dir, _tuple(train_splits),
                       _tuple(validation_splits), float(semantic_crop_seconds),
                       float(coarse_crop_seconds), float(fine_crop_seconds),
                       coarse_levels, prompt_seconds=float(prompt_seconds),
                       continuation_seconds=float(continuation_seconds))


@gin.configurable(module="audiolm_tasks")
def piano_corpus(
    *, data_dir: Optional[str] = None,
    train_splits: Optional[Sequence[str]] = None,
    validation_splits: Optional[Sequence[str]] = None,
    semantic_crop_seconds: float = constants.SEMANTIC_CROP_SECONDS,
    acoustic_crop_seconds: float = constants.COARSE_CROP_SECONDS,
    prompt_seconds: float = constants.PROMPT_SECONDS,
    continuation_seconds: float = constants.CONTINUATION_SECONDS,
) -> CorpusOptions:
  """Options of the piano tasks (``audiolm_piano_*``); no third stage."""
  return CorpusOptions(PIANO, data_dir, _tuple(train_splits),
                       _tuple(validation_splits), float(semantic_crop_seconds),
                       float(acoustic_crop_seconds), float(acoustic_crop_seconds),
                       None, prompt_seconds=float(prompt_seconds),
                       continuation_seconds=float(continuation_seconds))


_OPTION_FNS = {SPEECH: speech_corpus, PIANO: piano_corpus}


@dataclasses.dataclass(frozen=True)
class ResolvedCorpus:
  """A corpus's options bound to the dataset on disk."""

  options: CorpusOptions
  data_dir: str
  info: contract.DatasetInfo
  layout: vocabulary_lib.VocabularyLayout
  split_map: Mapping[str, Tuple[str, ...]]  # task split -> corpus splits
  semantic_rate_hz: int
  acoustic_rate_hz: int

  @property
  def acoustic_frames_per_step(self) -> int:
    return self.acoustic_rate_hz // self.semantic_rate_hz

  @property
  def coarse_levels(self) -> int:
    """Q' (the piano's acoustic stage predicts all Q levels)."""
    if self.options.coarse_levels is None:
      return self.layout.acoustic_levels
    return self.options.coarse_levels

  def crop_seconds(self, stage: str) -> float:
    return {SEMANTIC: self.options.semantic_crop_seconds,
            COARSE: self.options.coarse_crop_seconds,
            ACOUSTIC: self.options.coarse_crop_seconds,
            FINE: self.options.fine_crop_seconds,
            SEMANTIC_PROMPT: self.options.continuation_seconds}[stage]

  def crop_steps(self, stage: str) -> int:
    """Crop length in semantic frames (steps of 1 / semantic_rate_hz s)."""
    steps = int(round(self.crop_seconds(stage) * self.semantic_rate_hz))
    if steps < 1:
      raise ValueError(f"{self.options.corpus} {stage} crop of "
                       f"{self.crop_seconds(stage)} s is shorter than one "
                       f"semantic frame at {self.semantic_rate_hz} Hz")
    return steps

  @property
  def prompt_steps(self) -> int:
    """Sampling prompt length in semantic frames (3 s x 25 Hz = 75)."""
    steps = int(round(self.options.prompt_seconds * self.semantic_rate_hz))
    if not 1 <= steps < self.crop_steps(SEMANTIC_PROMPT):
      raise ValueError(
          f"{self.options.corpus} prompt of {self.options.prompt_seconds} s "
          f"({steps} semantic frames): expected at least one frame and fewer "
          f"than the {self.options.continuation_seconds} s continuation crop "
          f"({self.crop_steps(SEMANTIC_PROMPT)} frames)")
    return steps

  def file_patterns(self, split: str) -> list:
    """The committed shard files of a task split (see :func:`committed_shards`).

    Not a glob: a shard written before a crash but never committed is not
    read, and a committed shard that is missing or differs from its manifest
    raises :class:`CorruptShardError` naming the file.
    """
    if split not in self.split_map:
      raise ValueError(f"task split: expected one of {sorted(self.split_map)},"
                       f" found {split!r}")
    return [path for s in self.split_map[split]
            for path in committed_shards(self.data_dir, s)]

  def num_records(self, split: str) -> Optional[int]:
    """Records of a task split from ``dataset_info.json``, if it says."""
    total = 0
    for s in self.split_map.get(split, ()):
      counts = self.info.splits.get(s)
      if isinstance(counts, int):
        total += counts
        continue
      if not isinstance(counts, Mapping):
        return None
      for key in ("num_records", "records", "num_examples", "written"):
        if isinstance(counts.get(key), int):
          total += counts[key]
          break
      else:
        return None
    return total


@functools.lru_cache(maxsize=16)
def _load_info(data_dir: str) -> contract.DatasetInfo:
  path = os.path.join(data_dir, contract.DATASET_INFO_FILENAME)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(
        f"{path}: expected the tokenization job's dataset_info.json there "
        "(is the data directory right?)")
  return contract.DatasetInfo.load(data_dir)


class CorruptShardError(IOError):
  """A committed shard is missing or does not match its manifest."""


MANIFEST_SUFFIX = ".manifest.json"
VERIFY_ENV = "AUDIOLM_VERIFY_SHARDS"  # sha256 (default) | size


def _sha256(path: str) -> str:
  import hashlib  # pylint: disable=g-import-not-at-top
  h = hashlib.sha256()
  with tf.io.gfile.GFile(path, "rb") as f:
    while True:
      chunk = f.read(1 << 22)
      if not chunk:
        return h.hexdigest()
      h.update(chunk)


@functools.lru_cache(maxsize=64)
def committed_shards(data_dir: str, split: str,
                     check: Optional[str] = None) -> Tuple[str, ...]:
  """Shard files of one corpus split that a manifest commits, checked once.

  Each manifest (written by the tokenization job after its shard) gives the
  shard's file, size and sha256. ``check``: ``"sha256"`` (default, from
  ``$AUDIOLM_VERIFY_SHARDS``; reads each shard once per process) or
  ``"size"`` (cheap; a flipped byte is then only caught by the TFRecord
  checksum, whose error does not name the file).

  Raises:
    FileNotFoundError: the split has no committed shard.
    CorruptShardError: a committed shard is missing or differs from its
      manifest (the message names the file).
  """
  import json  # pylint: disable=g-import-not-at-top
  check = check or os.environ.get(VERIFY_ENV, "sha256")
  pattern = os.path.join(data_dir, split, "*" + MANIFEST_SUFFIX)
  manifests = sorted(tf.io.gfile.glob(pattern))
  if not manifests:
    raise FileNotFoundError(f"no committed shards of split {split!r}: "
                            f"nothing matches {pattern}")
  out = []
  for manifest_path in manifests:
    with tf.io.gfile.GFile(manifest_path, "r") as f:
      m = json.load(f)
    path = os.path.join(data_dir, split, m["file"])
    fix = ("rerun the tokenization job on this output to redo it (python -m "
           "pipelines.verify lists every problem)")
    if not tf.io.gfile.exists(path):
      raise CorruptShardError(f"{path}: committed shard is missing; {fix}")
    size = tf.io.gfile.stat(path).length
    if "bytes" in m and size != m["bytes"]:
      raise CorruptShardError(f"{path}: corrupt shard ({size} bytes, its "
                              f"manifest says {m['bytes']}); {fix}")
    if check == "sha256" and "sha256" in m and _sha256(path) != m["sha256"]:
      raise CorruptShardError(f"{path}: corrupt shard (sha256 differs from "
                              f"its manifest); {fix}")
    out.append(path)
  return tuple(out)


def _default_splits(available: Sequence[str], task_split: str) -> Tuple[str, ...]:
  available = [s for s in available if not s.startswith("_")]  # "_unsplit"
  if task_split == TRAIN:
    return tuple(s for s in available if not s.startswith(("dev", "test")))
  if "dev-clean" in available:
    return ("dev-clean",)
  return tuple(s for s in available if s.startswith("dev"))


def resolve_corpus(corpus: str, *, data_dir: Optional[str] = None
                   ) -> ResolvedCorpus:
  """Binds a corpus's options (gin, environment) to its dataset on disk.

  Args:
    corpus: ``"speech"`` or ``"piano"``.
    data_dir: overrides gin and the environment (used by tests and tools).

  Returns:
    The resolved corpus.

  Raises:
    ValueError: no data directory is set, or a split or rate is unusable.
    FileNotFoundError: ``dataset_info.json`` is missing.
  """
  if corpus not in _OPTION_FNS:
    raise ValueError(f"corpus: expected one of {sorted(_OPTION_FNS)}, found "
                     f"{corpus!r}")
  options = _OPTION_FNS[corpus]()
  env = _ENV_PREFIX[corpus]
  data_dir = data_dir or options.data_dir or os.environ.get(f"{env}_DATA_DIR")
  if not data_dir:
    raise ValueError(
        f"no data directory for the {corpus} tasks: set the environment "
        f"variable {env}_DATA_DIR or gin "
        f"audiolm_tasks.{corpus}_corpus.data_dir to the tokenization job's "
        "output (the folder with dataset_info.json)")
  info = _load_info(data_dir)
  info_path = os.path.join(data_dir, contract.DATASET_INFO_FILENAME)
  available = sorted(info.splits)
  split_map = {}
  for task_split in TASK_SPLITS:
    chosen = (getattr(options, f"{task_split}_splits") or
              _tuple(os.environ.get(f"{env}_{task_split.upper()}_SPLITS")) or
              _default_splits(available, task_split))
    unknown = [s for s in chosen if available and s not in available]
    if unknown:
      raise ValueError(
          f"{info_path}: task split {task_split!r} maps to corpus splits "
          f"{list(chosen)}, but 'splits' lists only {available} "
          f"(not found: {unknown})")
    split_map[task_split] = tuple(chosen)
  sem_rate = int(info.semantic.get("rate_hz", constants.SEMANTIC_RATE_HZ))
  ac_rate = int(info.acoustic.get("rate_hz", constants.ACOUSTIC_RATE_HZ))
  if sem_rate < 1 or ac_rate % sem_rate:
    raise ValueError(
        f"{info_path}: acoustic.rate_hz must be a multiple of semantic.rate_hz "
        f"for time-aligned crops, found {ac_rate} and {sem_rate}")
  resolved = ResolvedCorpus(
      options=options, data_dir=data_dir, info=info,
      layout=vocabulary_lib.VocabularyLayout.from_dataset_info(info),
      split_map=split_map, semantic_rate_hz=sem_rate, acoustic_rate_hz=ac_rate)
  q, q_coarse = resolved.layout.acoustic_levels, resolved.coarse_levels
  if corpus == SPEECH and not 0 < q_coarse < q:
    raise ValueError(f"{info_path}: coarse_levels Q'={q_coarse} must be in "
                     f"[1, Q) with Q={q} acoustic levels")
  return resolved


# --- the data source ---------------------------------------------------------
class _LazySplitPatterns(collections.abc.Mapping):
  """``{task split: file patterns}``, resolved only when a split is read."""

  def __init__(self, corpus: str):
    self._corpus = corpus

  def __getitem__(self, split: str):
    if split not in TASK_SPLITS:
      raise KeyError(split)
    return resolve_corpus(self._corpus).file_patterns(split)

  def __iter__(self):
    return iter(TASK_SPLITS)

  def __len__(self) -> int:
    return len(TASK_SPLITS)

  def __repr__(self) -> str:
    return f"<{self._corpus} token shards, resolved at read time>"


def read_token_records(path) -> tf.data.Dataset:
  """Parsed contract records (``tf_feature_spec``) of one or more shards."""
  spec = contract.tf_feature_spec()
  return tf.data.TFRecordDataset(path).map(
      lambda x: tf.io.parse_single_example(x, spec),
      num_parallel_calls=tf.data.AUTOTUNE)


class TokenRecordSource(seqio.FileDataSource):
  """The tokenization job's TFRecords of one corpus, found at read time."""

  def __init__(self, *, corpus: str):
    self._corpus = corpus
    super().__init__(read_file_fn=read_token_records,
                     split_to_filepattern=_LazySplitPatterns(corpus))

  def num_input_examples(self, split: str) -> Optional[int]:
    return resolve_corpus(self._corpus).num_records(split)


# --- per-stage pipelines -----------------------------------------------------
def _check_vocabulary(resolved: ResolvedCorpus,
                      output_features: Optional[Mapping[str, seqio.Feature]]):
  if not output_features:
    return
  for name, feature in output_features.items():
    if feature.vocabulary.vocab_size < resolved.layout.size:
      raise ValueError(
          f"{os.path.join(resolved.data_dir, contract.DATASET_INFO_FILENAME)}:"
          f" K={resolved.layout.semantic_codebook_size}, "
          f"Q={resolved.layout.acoustic_levels}, "
          f"N={resolved.layout.acoustic_codebook_size} need "
          f"{resolved.layout.size} LM ids, but the task's '{name}' vocabulary "
          f"has {feature.vocabulary.vocab_size}")


# --- the steps that need the resolved corpus ------------------------------------
# Each is a seqio preprocessor bound to a corpus in the registration
# (tasks/audiolm.py lists every step of every task, around
# seqio.CacheDatasetPlaceholder); the corpus's options (data directory,
# layout, crop lengths, Q') are resolved when a dataset is built, from gin and
# the environment. The other steps are the pure functions of
# tasks/preprocessors.py.


def parse_records(dataset: tf.data.Dataset,
                  output_features: Optional[Mapping[str, seqio.Feature]] = None,
                  *, corpus: str, data_dir: Optional[str] = None
                  ) -> tf.data.Dataset:
  """Parses contract records and maps raw tokens to LM ids (deterministic).

  Checks the dataset's layout against the task's vocabulary first. Example
  (paper layout)::

    in:  contract record {"id", "num_samples", "semantic_tokens" [T_s],
         "acoustic_tokens" [T_a * 12], ...}
    out: {"id", "num_samples", "semantic_tokens" [T_s] (LM ids),
         "acoustic_tokens" [T_a, 12] (LM ids)}
  """
  r = resolve_corpus(corpus, data_dir=data_dir)
  _check_vocabulary(r, output_features)
  layout = r.layout
  ds = prep.parse_token_record(
      dataset, acoustic_levels=layout.acoustic_levels,
      semantic_codebook_size=layout.semantic_codebook_size,
      acoustic_codebook_size=layout.acoustic_codebook_size)
  return prep.to_lm_ids(ds, layout=layout)


def keep_coarse_levels(dataset: tf.data.Dataset, *, corpus: str,
                       data_dir: Optional[str] = None) -> tf.data.Dataset:
  """Keeps acoustic levels 0..Q'-1 (Q' = the corpus's ``coarse_levels``)."""
  r = resolve_corpus(corpus, data_dir=data_dir)
  return prep.select_acoustic_levels(dataset, start=0, stop=r.coarse_levels)


def crop(dataset: tf.data.Dataset, *, corpus: str, stage: str,
         data_dir: Optional[str] = None) -> tf.data.Dataset:
  """The stage's time-aligned random crop (seeded by seqio)."""
  r = resolve_corpus(corpus, data_dir=data_dir)
  return prep.random_aligned_crop(
      dataset, crop_steps=r.crop_steps(stage),
      acoustic_frames_per_step=r.acoustic_frames_per_step)


def dedup_and_split_prompt(dataset: tf.data.Dataset, *, corpus: str,
                           data_dir: Optional[str] = None) -> tf.data.Dataset:
  """Deduplicates the crop, then splits it at the prompt's last frame."""
  r = resolve_corpus(corpus, data_dir=data_dir)
  return prep.dedup_and_split_prompt(dataset, prompt_steps=r.prompt_steps)


def split_coarse_fine(dataset: tf.data.Dataset, *, corpus: str,
                      data_dir: Optional[str] = None) -> tf.data.Dataset:
  """Splits acoustic levels into coarse (0..Q'-1) and fine (Q'..Q-1)."""
  r = resolve_corpus(corpus, data_dir=data_dir)
  return prep.split_acoustic_levels(dataset, coarse_levels=r.coarse_levels)


def predicted_levels(corpus: str, stage: str, *, acoustic_levels: int) -> int:
  """Acoustic levels a corpus's second stage predicts for a codec of Q levels.

  The piano's ``acoustic`` stage predicts all Q (there is no third stage);
  the speech ``coarse`` stage predicts the corpus's Q' (``coarse_levels`` of
  :func:`speech_corpus`, the paper's 4), leaving Q - Q' to the ``fine`` stage.
  Example: ``predicted_levels("piano", "acoustic", acoustic_levels=3)`` -> 3;
  ``predicted_levels("speech", "coarse", acoustic_levels=12)`` -> 4.
  """
  if stage == ACOUSTIC:
    return acoustic_levels
  if stage != COARSE:
    raise ValueError(f"stage: expected {COARSE!r} or {ACOUSTIC!r} (a second "
                     f"stage), found {stage!r}")
  coarse_levels = _OPTION_FNS[corpus]().coarse_levels
  return acoustic_levels if coarse_levels is None else coarse_levels


# Features that tasks.inspect_task keeps through the last step.
METADATA = (contract.ID, contract.NUM_SAMPLES, prep.CROP_START,
            prep.CROP_STEPS, prep.CROP_REACHES_END)


def feature_lengths(stage: str, *, crop_seconds: float,
                    acoustic_levels: int, coarse_levels: int,
                    prompt_seconds: Optional[float] = None,
                    semantic_rate_hz: int = constants.SEMANTIC_RATE_HZ,
                    acoustic_rate_hz: int = constants.ACOUSTIC_RATE_HZ
                    ) -> Dict[str, int]:
  """Longest ``inputs`` / ``targets`` a stage's crops produce (+1 EOS).

  Example: ``feature_lengths("coarse", crop_seconds=10, acoustic_levels=12,
  coarse_levels=4)`` -> ``{"inputs": 250, "targets": 2001}``;
  ``feature_lengths("semantic_prompt", crop_seconds=10, prompt_seconds=3,
  ...)`` -> ``{"inputs": 75, "targets": 176}``.
  """
  steps = int(round(crop_seconds * semantic_rate_hz))
  frames = steps * (acoustic_rate_hz // semantic_rate_hz)
  if stage == SEMANTIC:
    return {"targets": steps + 1}
  if stage == SEMANTIC_PROMPT:
    if prompt_seconds is None:
      raise ValueError("feature_lengths: the semantic_prompt stage needs "
                       "prompt_seconds")
    prompt = int(round(prompt_seconds * semantic_rate_hz))
    return {"inputs": prompt, "targets": steps - prompt + 1}
  if stage == COARSE:
    return {"inputs": steps, "targets": frames * coarse_levels + 1}
  if stage == ACOUSTIC:
    return {"inputs": steps, "targets": frames * acoustic_levels + 1}
  if stage == FINE:
    return {"inputs": frames * coarse_levels,
            "targets": frames * (acoustic_levels - coarse_levels) + 1}
  raise ValueError(f"stage: expected one of {STAGES}, found {stage!r}")
