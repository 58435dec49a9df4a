"""The data contract between the tokenization job and the SeqIO tasks.

One ``tf.train.Example`` per utterance (LibriSpeech), per recording
(Libri-Light) or per group of a chapter's utterances:

=================== ========== ==============================================
feature             type       meaning
=================== ========== ==============================================
``id``              bytes      stable unique key, e.g. ``2412-153948-0000``
``split``           bytes      corpus split, e.g. ``dev-clean``
``speaker_id``      int64      from the corpus layout
``chapter_id``      int64      LibriSpeech chapter; -1 where not numeric
``source``          bytes      input path(s) relative to the corpus root,
                               ``;``-joined for grouped records
``transcript``      bytes      UTF-8; empty for Libri-Light
``num_samples``     int64      length of the 16 kHz audio
``semantic_tokens`` int64 list raw k-means ids in [0, K), length
                               ``num_semantic_frames(num_samples)``
``acoustic_tokens`` int64 list raw codes in [0, N), frame-major [T_a, Q]
                               flattened, T_a = ``num_acoustic_frames(...)``
=================== ========== ==============================================

Token-length rule: a recording of ``n`` samples at 16 kHz has exactly
``n // 640`` semantic tokens and ``n // 320`` acoustic frames (a partial frame
at the end is dropped). So acoustic frame ``2 t`` and ``2 t + 1`` cover the
same 40 ms as semantic frame ``t``, and ``T_a - 2 T_s`` is 0 or 1.

Raw ids stay tokenizer-native; the LM vocabulary (special ids, offsets per
level) belongs to ``audiolm_t5x.tasks.vocabulary``.

Beside the shards, ``dataset_info.json`` describes the tokenizers (K, Q, N,
rates, fingerprints), counts per split, the command and versions; see
:class:`DatasetInfo`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Optional

import numpy as np

from audiolm_t5x import constants

CONTRACT_VERSION = 1
DATASET_INFO_FILENAME = "dataset_info.json"
DEAD_LETTER_FILENAME = "dead_letter.jsonl"
SHARD_SUFFIX = ".tfrecord"

# Feature names.
ID = "id"
SPLIT = "split"
SPEAKER_ID = "speaker_id"
CHAPTER_ID = "chapter_id"
SOURCE = "source"
TRANSCRIPT = "transcript"
NUM_SAMPLES = "num_samples"
SEMANTIC_TOKENS = "semantic_tokens"
ACOUSTIC_TOKENS = "acoustic_tokens"

BYTES_FEATURES = (ID, SPLIT, SOURCE, TRANSCRIPT)
INT_FEATURES = (SPEAKER_ID, CHAPTER_ID, NUM_SAMPLES)
TOKEN_FEATURES = (SEMANTIC_TOKENS, ACOUSTIC_TOKENS)


class MalformedRecordError(ValueError):
  """A record that breaks the contract (wrong length, id out of range...)."""


def num_semantic_frames(num_samples: int) -> int:
  """Semantic tokens for ``num_samples`` samples at 16 kHz (25 Hz, floor)."""
  return int(num_samples) // constants.SEMANTIC_FRAME_SAMPLES


def num_acoustic_frames(num_samples: int) -> int:
  """Acoustic frames for ``num_samples`` samples at 16 kHz (50 Hz, floor)."""
  return int(num_samples) // constants.ACOUSTIC_FRAME_SAMPLES


def fit_length(frames: np.ndarray, length: int) -> np.ndarray:
  """Trims or edge-pads ``frames`` along axis 0 to exactly ``length`` rows.

  Models whose frame count differs from the contract's rule by a frame or two
  (padding conventions) are brought to the rule with this. Padding repeats
  the last frame.
  """
  frames = np.asarray(frames)
  if frames.shape[0] >= length:
    return frames[:length]
  if frames.shape[0] == 0:
    raise ValueError(f"cannot pad an empty frame array to {length} frames")
  pad = [(0, length - frames.shape[0])] + [(0, 0)] * (frames.ndim - 1)
  return np.pad(frames, pad, mode="edge")


@dataclasses.dataclass
class TokenRecord:
  """One tokenized utterance or recording, as stored in the TFRecords."""

  id: str
  split: str
  speaker_id: int
  chapter_id: int
  source: str
  transcript: str
  num_samples: int
  semantic_tokens: np.ndarray  # [T_s] int
  acoustic_tokens: np.ndarray  # [T_a, Q] int
  # Level flags of the audio ("clipped", "quiet", "loud"); counted in the
  # shard manifests and dataset_info.json, not stored in the Example.
  flags: tuple = ()

  def validate(self, *, semantic_codebook_size: int, acoustic_levels: int,
               acoustic_codebook_size: int) -> None:
    """Raises MalformedRecordError unless the record obeys the contract."""
    where = f"record {self.id!r} ({self.source})"
    sem = np.asarray(self.semantic_tokens)
    ac = np.asarray(self.acoustic_tokens)
    expect_s = num_semantic_frames(self.num_samples)
    expect_a = num_acoustic_frames(self.num_samples)
    if sem.shape != (expect_s,):
      raise MalformedRecordError(
          f"{where}: semantic_tokens has shape {sem.shape}, expected "
          f"({expect_s},) for num_samples={self.num_samples}")
    if ac.shape != (expect_a, acoustic_levels):
      raise MalformedRecordError(
          f"{where}: acoustic_tokens has shape {ac.shape}, expected "
          f"({expect_a}, {acoustic_levels}) for num_samples={self.num_samples}")
    for name, arr, size in ((SEMANTIC_TOKENS, sem, semantic_codebook_size),
                            (ACOUSTIC_TOKENS, ac, acoustic_codebook_size)):
      if arr.size and (arr.min() < 0 or arr.max() >= size):
        raise MalformedRecordError(
            f"{where}: {name} has ids in [{arr.min()}, {arr.max()}], "
            f"expected [0, {size})")

  def to_example_bytes(self) -> bytes:
    """Serializes deterministically (the same bytes in every process)."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    def _bytes(v: str) -> tf.train.Feature:
      return tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[v.encode("utf-8")]))

    def _ints(v) -> tf.train.Feature:
      return tf.train.Feature(int64_list=tf.train.Int64List(
          value=np.asarray(v, dtype=np.int64).reshape(-1).tolist()))

    feature = {
        ID: _bytes(self.id),
        SPLIT: _bytes(self.split),
        SOURCE: _bytes(self.source),
        TRANSCRIPT: _bytes(self.transcript),
        SPEAKER_ID: _ints([self.speaker_id]),
        CHAPTER_ID: _ints([self.chapter_id]),
        NUM_SAMPLES: _ints([self.num_samples]),
        SEMANTIC_TOKENS: _ints(self.semantic_tokens),
        ACOUSTIC_TOKENS: _ints(self.acoustic_tokens),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)

  @classmethod
  def from_example_bytes(cls, data: bytes, *,
                         acoustic_levels: int) -> "TokenRecord":
    """Parses a serialized example (numpy side; tests and inspection)."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    example = tf.train.Example.FromString(data)
    f = example.features.feature
    missing = [k for k in BYTES_FEATURES + INT_FEATURES + TOKEN_FEATURES
               if k not in f]
    if missing:
      raise MalformedRecordError(f"example lacks features {missing}")
    get_b = lambda k: f[k].bytes_list.value[0].decode("utf-8")
    get_i = lambda k: int(f[k].int64_list.value[0])
    ac = np.asarray(f[ACOUSTIC_TOKENS].int64_list.value, dtype=np.int64)
    if ac.size % acoustic_levels:
      raise MalformedRecordError(
          f"record {get_b(ID)!r}: {ac.size} acoustic ids is not a multiple of "
          f"Q={acoustic_levels}")
    return cls(
        id=get_b(ID), split=get_b(SPLIT), speaker_id=get_i(SPEAKER_ID),
        chapter_id=get_i(CHAPTER_ID), source=get_b(SOURCE),
        transcript=get_b(TRANSCRIPT), num_samples=get_i(NUM_SAMPLES),
        semantic_tokens=np.asarray(f[SEMANTIC_TOKENS].int64_list.value,
                                   dtype=np.int64),
        acoustic_tokens=ac.reshape(-1, acoustic_levels))


def tf_feature_spec() -> dict:
  """Feature spec for ``tf.io.parse_single_example`` (SeqIO's reader)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  spec = {k: tf.io.FixedLenFeature([], tf.string) for k in BYTES_FEATURES}
  spec.update({k: tf.io.FixedLenFeature([], tf.int64) for k in INT_FEATURES})
  spec.update({k: tf.io.VarLenFeature(tf.int64) for k in TOKEN_FEATURES})
  return spec


@dataclasses.dataclass
class DeadLetter:
  """An input that did not become a record, and why."""

  path: str
  id: str
  split: str
  step: str  # "read", "decode", "tokenize", "group", "transcript", ...
  reason: str

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), sort_keys=True)

  @classmethod
  def from_json(cls, line: str) -> "DeadLetter":
    return cls(**json.loads(line))


@dataclasses.dataclass
class DatasetInfo:
  """Contents of ``dataset_info.json`` beside the shards.

  ``semantic`` and ``acoustic`` describe the tokenizers: at least ``name``,
  ``fingerprint`` and, for the semantic one, ``codebook_size`` (K) and
  ``rate_hz``; for the acoustic one ``levels`` (Q), ``codebook_size`` (N)
  and ``rate_hz``. ``splits`` maps a split name to its counts.
  """

  semantic: dict
  acoustic: dict
  splits: dict = dataclasses.field(default_factory=dict)
  sample_rate: int = constants.SAMPLE_RATE
  contract_version: int = CONTRACT_VERSION
  command: str = ""
  versions: dict = dataclasses.field(default_factory=dict)
  options: dict = dataclasses.field(default_factory=dict)

  @property
  def semantic_codebook_size(self) -> int:
    return int(self.semantic["codebook_size"])

  @property
  def acoustic_levels(self) -> int:
    return int(self.acoustic["levels"])

  @property
  def acoustic_codebook_size(self) -> int:
    return int(self.acoustic["codebook_size"])

  def shard_pattern(self, output_dir: str, split: str) -> str:
    return os.path.join(output_dir, split, f"{split}-*-of-*{SHARD_SUFFIX}")

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

  @classmethod
  def from_json(cls, text: str) -> "DatasetInfo":
    data = json.loads(text)
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})

  @classmethod
  def load(cls, dataset_dir: str) -> "DatasetInfo":
    """Reads ``<dataset_dir>/dataset_info.json`` (any tf.io.gfile path)."""
    path = os.path.join(dataset_dir, DATASET_INFO_FILENAME)
    try:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      with tf.io.gfile.GFile(path, "r") as f:
        text = f.read()
    except ImportError:
      with open(path) as f:
        text = f.read()
    return cls.from_json(text)


def shard_name(split: str, index: int, num_shards: int) -> str:
  """``dev-clean-00003-of-00016.tfrecord``."""
  return f"{split}-{index:05d}-of-{num_shards:05d}{SHARD_SUFFIX}"


def summarize_tokens(info: DatasetInfo) -> Mapping[str, Any]:
  """A short dict of the token layout (for logs and inspection)."""
  return {
      "K": info.semantic_codebook_size,
      "Q": info.acoustic_levels,
      "N": info.acoustic_codebook_size,
      "semantic_rate_hz": info.semantic.get("rate_hz"),
      "acoustic_rate_hz": info.acoustic.get("rate_hz"),
  }


def optional_int(value: Optional[str]) -> int:
  """Parses a corpus directory name as an int id, or -1 where not numeric."""
  try:
    return int(value) if value is not None else -1
  except ValueError:
    return -1
