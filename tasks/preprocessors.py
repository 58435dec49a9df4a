"""Pure dataset functions that turn token records into AudioLM LM examples.

Each step has a single-example function (``*_example``, testable alone) and a
dataset wrapper made with ``seqio.map_over_dataset``. The stage pipelines in
:mod:`audiolm_t5x.tasks.stages` chain them:

* deterministic, before ``seqio.CacheDatasetPlaceholder``:
  :func:`parse_token_record` -> :func:`to_lm_ids` ->
  :func:`select_acoustic_levels` / :func:`select_features`;
* random or length-dependent, after it:
  :func:`random_aligned_crop` -> :func:`dedup_consecutive` (or, for the
  sampling prompts, :func:`dedup_and_split_prompt`) ->
  :func:`split_acoustic_levels` -> :func:`flatten_frames` ->
  :func:`make_lm_features`.

Time alignment: a semantic frame covers 640 samples, an acoustic frame 320, so
semantic frame ``t`` is acoustic frames ``2t`` and ``2t + 1``
(``acoustic_frames_per_step = 2``). Crops start and end on semantic-frame
boundaries ("steps" of 40 ms) so both token streams of a crop cover exactly the
same audio. A trailing odd acoustic frame (``T_a = 2 T_s + 1``) is never part
of a crop.

EOS: :func:`make_lm_features` appends EOS (id 1) to ``targets`` only when the
crop ends at the recording's last full step, i.e. EOS always means "the
recording ends here". A crop that stops inside its recording has no EOS.
Inputs never get EOS.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import seqio
import tensorflow as tf

from audiolm_t5x import constants
from audiolm_t5x import contract
from . import vocabulary as vocabulary_lib

Features = Mapping[str, tf.Tensor]

# Feature names the pipelines add.
CROP_START = "crop_start"  # int32, first step (semantic frame) of the crop
CROP_STEPS = "crop_steps"  # int32, steps in the crop (before dedup)
CROP_REACHES_END = "crop_reaches_end"  # bool, crop ends where the record does
COARSE_TOKENS = "coarse_tokens"
FINE_TOKENS = "fine_tokens"
PROMPT_TOKENS = "prompt_tokens"  # deduplicated semantic tokens of the prompt


def _dense(value: tf.Tensor) -> tf.Tensor:
  if isinstance(value, tf.sparse.SparseTensor):
    return tf.sparse.to_dense(value)
  return tf.convert_to_tensor(value)


# --- parse (deterministic) ---------------------------------------------------
def parse_token_record_example(
    features: Features, *, acoustic_levels: int, semantic_codebook_size: int,
    acoustic_codebook_size: int) -> dict:
  """Densifies and checks one contract record; keeps what the stages need.

  Lengths and id ranges are checked against the contract
  (``audiolm_t5x.contract``); a record that breaks it fails with the record's
  id, the field, what was expected and what was found.

  Example (Q = 2, 1280 samples -> 2 semantic frames, 4 acoustic frames)::

    in:  {"id": b"a", "num_samples": 1280, "semantic_tokens": [5, 5],
          "acoustic_tokens": [1, 2, 3, 4, 5, 6, 7, 8], "transcript": b"..."}
    out: {"id": b"a", "num_samples": 1280, "semantic_tokens": [5, 5],
          "acoustic_tokens": [[1, 2], [3, 4], [5, 6], [7, 8]]}

  Args:
    features: a record parsed with ``contract.tf_feature_spec()`` (token
      features may be sparse) or the same keys as dense tensors.
    acoustic_levels: Q of the dataset.
    semantic_codebook_size: K of the dataset.
    acoustic_codebook_size: N of the dataset.

  Returns:
    ``id`` (string), ``num_samples`` (int64), ``semantic_tokens`` [T_s] and
    ``acoustic_tokens`` [T_a, Q] (int32, raw tokenizer ids).
  """
  record_id = tf.convert_to_tensor(features[contract.ID])
  num_samples = tf.cast(features[contract.NUM_SAMPLES], tf.int64)
  semantic = tf.cast(_dense(features[contract.SEMANTIC_TOKENS]), tf.int32)
  acoustic_flat = tf.cast(_dense(features[contract.ACOUSTIC_TOKENS]), tf.int32)
  expect_s = tf.cast(num_samples // constants.SEMANTIC_FRAME_SAMPLES, tf.int32)
  expect_a = tf.cast(num_samples // constants.ACOUSTIC_FRAME_SAMPLES, tf.int32)
  checks = [
      tf.debugging.Assert(
          tf.equal(tf.size(semantic), expect_s),
          ["record", record_id, "field semantic_tokens: expected length",
           expect_s, "(num_samples // 640), found", tf.size(semantic)]),
      tf.debugging.Assert(
          tf.equal(tf.size(acoustic_flat), expect_a * acoustic_levels),
          ["record", record_id, "field acoustic_tokens: expected length",
           expect_a * acoustic_levels, f"((num_samples // 320) x Q={acoustic_levels}), found",
           tf.size(acoustic_flat)]),
      tf.debugging.Assert(
          tf.reduce_all((semantic >= 0) & (semantic < semantic_codebook_size)),
          ["record", record_id,
           f"field semantic_tokens: expected ids in [0, {semantic_codebook_size}), found min/max",
           tf.reduce_min(semantic), tf.reduce_max(semantic)]),
      tf.debugging.Assert(
          tf.reduce_all((acoustic_flat >= 0)
                        & (acoustic_flat < acoustic_codebook_size)),
          ["record", record_id,
           f"field acoustic_tokens: expected ids in [0, {acoustic_codebook_size}), found min/max",
           tf.reduce_min(acoustic_flat), tf.reduce_max(acoustic_flat)]),
  ]
  with tf.control_dependencies(checks):
    semantic = tf.identity(semantic)
    acoustic = tf.reshape(acoustic_flat, [-1, acoustic_levels])
  return {
      contract.ID: record_id,
      contract.NUM_SAMPLES: num_samples,
      contract.SEMANTIC_TOKENS: semantic,
      contract.ACOUSTIC_TOKENS: acoustic,
  }


parse_token_record = seqio.map_over_dataset(parse_token_record_example)


# --- LM ids (deterministic) --------------------------------------------------
def to_lm_ids_example(features: Features, *,
                      layout: vocabulary_lib.VocabularyLayout) -> dict:
  """Maps raw tokenizer ids to the global LM ids of ``layout``.

  Semantic id ``k`` becomes ``2 + k``; acoustic code ``c`` of level ``q``
  becomes ``2 + K + q * N + c`` (see :mod:`audiolm_t5x.tasks.vocabulary`).

  Example (K = 4, Q = 2, N = 8)::

    in:  {"semantic_tokens": [0, 3], "acoustic_tokens": [[0, 7], [1, 2]]}
    out: {"semantic_tokens": [2, 5], "acoustic_tokens": [[6, 21], [7, 16]]}

  Args:
    features: with ``semantic_tokens`` [T_s] and/or ``acoustic_tokens``
      [T_a, Q] (Q = ``layout.acoustic_levels``).
    layout: the vocabulary layout of the dataset.

  Returns:
    ``features`` with both token features in LM ids.
  """
  out = dict(features)
  if contract.SEMANTIC_TOKENS in out:
    out[contract.SEMANTIC_TOKENS] = (
        tf.cast(out[contract.SEMANTIC_TOKENS], tf.int32) +
        layout.semantic_offset)
  if contract.ACOUSTIC_TOKENS in out:
    offsets = tf.constant(
        [layout.acoustic_offset(q) for q in range(layout.acoustic_levels)],
        tf.int32)
    out[contract.ACOUSTIC_TOKENS] = (
        tf.cast(out[contract.ACOUSTIC_TOKENS], tf.int32) + offsets[None, :])
  return out


to_lm_ids = seqio.map_over_dataset(to_lm_ids_example)


def select_acoustic_levels_example(features: Features, *, start: int,
                                   stop: int) -> dict:
  """Keeps acoustic levels ``start .. stop - 1`` (0-based) of every frame.

  Example (start=0, stop=2)::

    in:  {"acoustic_tokens": [[1, 2, 3], [4, 5, 6]]}
    out: {"acoustic_tokens": [[1, 2], [4, 5]]}

  Args:
    features: with ``acoustic_tokens`` [T_a, Q].
    start: first level kept.
    stop: one past the last level kept.

  Returns:
    ``features`` with ``acoustic_tokens`` [T_a, stop - start].
  """
  if not 0 <= start < stop:
    raise ValueError(f"acoustic levels: expected 0 <= start < stop, found "
                     f"start={start}, stop={stop}")
  out = dict(features)
  acoustic = out[contract.ACOUSTIC_TOKENS]
  levels = acoustic.shape[-1]
  if levels is not None and stop > levels:
    raise ValueError(f"acoustic levels: the dataset has Q={levels} levels, "
                     f"asked for levels {start}..{stop - 1}")
  out[contract.ACOUSTIC_TOKENS] = acoustic[:, start:stop]
  return out


select_acoustic_levels = seqio.map_over_dataset(select_acoustic_levels_example)


def select_features_example(features: Features, *,
                            keys: Sequence[str]) -> dict:
  """Keeps only ``keys`` (so the cache holds only what a stage reads).

  Example (keys=("id", "semantic_tokens"))::

    in:  {"id": b"a", "semantic_tokens": [3], "acoustic_tokens": [[1, 2]]}
    out: {"id": b"a", "semantic_tokens": [3]}
  """
  missing = [k for k in keys if k not in features]
  if missing:
    raise KeyError(f"select_features: features {missing} not in "
                   f"{sorted(features)}")
  return {k: features[k] for k in keys}


select_features = seqio.map_over_dataset(select_features_example)


# --- crop (random) -----------------------------------------------------------
def aligned_crop_example(features: Features, seed: tf.Tensor, *,
                         crop_steps: int,
                         acoustic_frames_per_step: int = (
                             constants.ACOUSTIC_FRAMES_PER_SEMANTIC)) -> dict:
  """Crops both token streams to the same random window of ``crop_steps``.

  A step is one semantic frame (40 ms at 25 Hz) = ``acoustic_frames_per_step``
  acoustic frames. The start step is uniform in ``[0, T - crop_steps]`` (T =
  steps in the record), drawn with ``tf.random.stateless_uniform`` from the
  seqio seed. A record shorter than the crop is kept whole (start 0). Without
  ``semantic_tokens`` (stage 3), ``T = T_a // acoustic_frames_per_step``.

  Example (crop_steps=2, acoustic_frames_per_step=2, drawn start 1)::

    in:  {"semantic_tokens": [10, 11, 12],
          "acoustic_tokens": [[0], [1], [2], [3], [4], [5], [6]]}
    out: {"semantic_tokens": [11, 12],
          "acoustic_tokens": [[2], [3], [4], [5]],
          "crop_start": 1, "crop_steps": 2, "crop_reaches_end": True}

  Args:
    features: with ``semantic_tokens`` [T_s] and/or ``acoustic_tokens``
      [T_a, q].
    seed: a seqio stateless seed, shape [2].
    crop_steps: crop length in semantic frames (e.g. 30 s x 25 Hz = 750).
    acoustic_frames_per_step: acoustic frames per semantic frame.

  Returns:
    ``features`` cropped, plus ``crop_start``, ``crop_steps`` (int32) and
    ``crop_reaches_end`` (bool: the crop ends at the record's last full step).
  """
  if crop_steps < 1:
    raise ValueError(f"crop_steps: expected >= 1, found {crop_steps}")
  out = dict(features)
  has_semantic = contract.SEMANTIC_TOKENS in out
  has_acoustic = contract.ACOUSTIC_TOKENS in out
  if not (has_semantic or has_acoustic):
    raise KeyError(f"aligned_crop: expected semantic_tokens and/or "
                   f"acoustic_tokens, found {sorted(out)}")
  if has_semantic:
    total = tf.shape(out[contract.SEMANTIC_TOKENS])[0]
  else:
    total = tf.shape(out[contract.ACOUSTIC_TOKENS])[0] // acoustic_frames_per_step
  max_start = tf.maximum(total - crop_steps, 0)
  start = tf.random.stateless_uniform(
      [], seed=seed, minval=0, maxval=max_start + 1, dtype=tf.int32)
  steps = tf.minimum(total, crop_steps)
  if has_semantic:
    out[contract.SEMANTIC_TOKENS] = out[contract.SEMANTIC_TOKENS][
        start:start + steps]
  if has_acoustic:
    a0 = start * acoustic_frames_per_step
    out[contract.ACOUSTIC_TOKENS] = out[contract.ACOUSTIC_TOKENS][
        a0:a0 + steps * acoustic_frames_per_step]
  out[CROP_START] = start
  out[CROP_STEPS] = steps
  out[CROP_REACHES_END] = tf.equal(start + steps, total)
  return out


random_aligned_crop = seqio.map_over_dataset(aligned_crop_example, num_seeds=1)


# --- dedup, split, flatten (deterministic, after the crop) -------------------
def _first_of_runs(tokens: tf.Tensor) -> tf.Tensor:
  """True where a token differs from the one before it (and at position 0)."""
  return tf.concat([tf.ones([tf.minimum(tf.size(tokens), 1)], tf.bool),
                    tf.not_equal(tokens[1:], tokens[:-1])], axis=0)


def dedup_consecutive_example(features: Features, *,
                              key: str = contract.SEMANTIC_TOKENS) -> dict:
  """Removes consecutive repetitions from ``features[key]`` (rank 1).

  Example::

    in:  {"semantic_tokens": [7, 7, 7, 3, 3, 7, 9, 9]}
    out: {"semantic_tokens": [7, 3, 7, 9]}
  """
  out = dict(features)
  tokens = out[key]
  out[key] = tf.boolean_mask(tokens, _first_of_runs(tokens))
  return out


dedup_consecutive = seqio.map_over_dataset(dedup_consecutive_example)


def dedup_and_split_prompt_example(features: Features, *, prompt_steps: int,
                                   key: str = contract.SEMANTIC_TOKENS
                                   ) -> dict:
  """Deduplicates a crop as one sequence, then splits it into prompt and rest.

  The split is at step ``prompt_steps`` of the crop (before deduplication):
  ``prompt_tokens`` are the kept tokens of steps ``0 .. prompt_steps - 1``,
  ``features[key]`` the kept tokens of the later steps. Deduplicating the
  whole crop first means a run that crosses the boundary is kept once, in the
  prompt, so ``prompt_tokens + features[key]`` is exactly the deduplicated
  crop that stage 1 is trained on (no repeat at the seam). A crop of at most
  ``prompt_steps`` steps leaves ``features[key]`` empty.

  Example (prompt_steps=3; the run of 3s crosses the boundary)::

    in:  {"semantic_tokens": [7, 7, 3, 3, 3, 9, 9, 4]}
    out: {"prompt_tokens": [7, 3], "semantic_tokens": [9, 4]}

  Args:
    features: with ``features[key]`` [T] (rank 1, after the crop).
    prompt_steps: prompt length in steps (e.g. 3 s x 25 Hz = 75).
    key: the token feature to split.

  Returns:
    ``features`` with ``prompt_tokens`` added and ``features[key]`` replaced
    by the deduplicated tokens after the prompt.
  """
  if prompt_steps < 1:
    raise ValueError(f"prompt_steps: expected >= 1, found {prompt_steps}")
  out = dict(features)
  tokens = out[key]
  keep = _first_of_runs(tokens)
  in_prompt = tf.range(tf.size(tokens)) < prompt_steps
  out[PROMPT_TOKENS] = tf.boolean_mask(tokens, keep & in_prompt)
  out[key] = tf.boolean_mask(tokens, keep & tf.logical_not(in_prompt))
  return out


dedup_and_split_prompt = seqio.map_over_dataset(dedup_and_split_prompt_example)


def split_acoustic_levels_example(features: Features, *,
                                  coarse_levels: int) -> dict:
  """Splits ``acoustic_tokens`` [T, Q] into coarse [T, Q'] and fine [T, Q-Q'].

  Example (coarse_levels=1)::

    in:  {"acoustic_tokens": [[1, 2, 3], [4, 5, 6]]}
    out: {"coarse_tokens": [[1], [4]], "fine_tokens": [[2, 3], [5, 6]]}
  """
  out = dict(features)
  acoustic = out.pop(contract.ACOUSTIC_TOKENS)
  levels = acoustic.shape[-1]
  if levels is not None and not 0 < coarse_levels < levels:
    raise ValueError(f"coarse_levels: expected 0 < Q' < Q={levels}, found "
                     f"{coarse_levels}")
  out[COARSE_TOKENS] = acoustic[:, :coarse_levels]
  out[FINE_TOKENS] = acoustic[:, coarse_levels:]
  return out


split_acoustic_levels = seqio.map_over_dataset(split_acoustic_levels_example)


def flatten_frames_example(features: Features, *,
                           key: str = contract.ACOUSTIC_TOKENS) -> dict:
  """Flattens [T, q] frame by frame: t0q0, t0q1, ..., t1q0, ...

  Example::

    in:  {"acoustic_tokens": [[1, 2], [3, 4]]}
    out: {"acoustic_tokens": [1, 2, 3, 4]}
  """
  out = dict(features)
  out[key] = tf.reshape(out[key], [-1])
  return out


flatten_frames = seqio.map_over_dataset(flatten_frames_example)


def make_lm_features_example(features: Features, *,
                             targets_key: str,
                             inputs_key: Optional[str] = None,
                             append_eos: bool = True,
                             keep: Sequence[str] = ()) -> dict:
  """Builds ``targets`` (and ``inputs``) in int32, EOS at recording ends.

  EOS (id 1) is appended to ``targets`` iff ``append_eos`` and the crop
  reached the end of its recording (``crop_reaches_end``).

  Example (targets_key="semantic_tokens", crop reached the end)::

    in:  {"semantic_tokens": [9, 4], "crop_reaches_end": True, "id": b"a"}
    out: {"targets": [9, 4, 1]}

  Args:
    features: after the crop and the other steps.
    targets_key: feature that becomes ``targets``.
    inputs_key: feature that becomes ``inputs`` (prefix), or None.
    append_eos: whether EOS may be appended at a recording's end.
    keep: other features to pass through unchanged (inspection).

  Returns:
    ``{"targets": ..., ["inputs": ...], *keep}``.
  """
  targets = tf.cast(features[targets_key], tf.int32)
  if append_eos:
    eos = tf.fill([tf.cast(features[CROP_REACHES_END], tf.int32)],
                  tf.constant(constants.EOS_ID, tf.int32))
    targets = tf.concat([targets, eos], axis=0)
  out = {"targets": targets}
  if inputs_key is not None:
    out["inputs"] = tf.cast(features[inputs_key], tf.int32)
  for k in keep:
    out[k] = features[k]
  return out


make_lm_features = seqio.map_over_dataset(make_lm_features_example)
