"""Unit tests of the LM vocabulary and the stage preprocessors (literal data)."""

import numpy as np
import pytest
import seqio
import tensorflow as tf
from seqio import test_utils

from audiolm_t5x import constants
from audiolm_t5x import contract
from audiolm_t5x.tasks import preprocessors as prep
from audiolm_t5x.tasks import vocabulary

SEM = contract.SEMANTIC_TOKENS
AC = contract.ACOUSTIC_TOKENS


def _ds(*examples):
  return tf.data.Dataset.from_generator(
      lambda: iter(examples),
      output_signature={
          k: tf.TensorSpec(shape=np.asarray(v).shape[:0] + (None,) *
                           np.asarray(v).ndim if k in (SEM, AC) else
                           np.asarray(v).shape,
                           dtype=tf.string if isinstance(v, bytes) else
                           tf.int32)
          for k, v in examples[0].items()})


def _crop(example, seed, **kw):
  out = prep.aligned_crop_example(
      {k: tf.constant(v) for k, v in example.items()},
      tf.constant(seed, tf.int32), **kw)
  return {k: v.numpy() for k, v in out.items()}


# --- vocabulary --------------------------------------------------------------
def test_paper_layout_sizes_and_offsets():
  layout = vocabulary.PAPER_LAYOUT
  assert (layout.size, layout.padded_size) == (13314, 13440)
  assert vocabulary.PAPER_PADDED_VOCAB_SIZE % constants.VOCAB_PAD_MULTIPLE == 0
  assert layout.semantic_id(0) == 2 and layout.semantic_id(1023) == 1025
  assert layout.acoustic_id(level=0, code=0) == 1026
  assert layout.acoustic_id(level=11, code=1023) == 13313
  assert vocabulary.PIANO_LAYOUT.size == 2 + 1024 + 3 * 2**14
  assert vocabulary.PIANO_LAYOUT.padded_size == 50304


def test_layout_describe_round_trips_every_range():
  layout = vocabulary.VocabularyLayout.from_sizes(
      semantic_codebook_size=3, acoustic_levels=2, acoustic_codebook_size=4)
  described = [layout.describe(i) for i in range(layout.padded_size)]
  assert described[:5] == [("pad", -1, -1), ("eos", -1, -1),
                           ("semantic", -1, 0), ("semantic", -1, 1),
                           ("semantic", -1, 2)]
  assert described[5:13] == [("acoustic", q, c) for q in range(2)
                             for c in range(4)]
  assert set(described[13:]) == {("unused", -1, -1)}
  assert layout.padded_size == 128
  with pytest.raises(ValueError, match="found 128"):
    layout.describe(128)
  with pytest.raises(ValueError, match=r"acoustic level.*found 2"):
    layout.acoustic_offset(2)


def test_layout_from_dataset_info_and_seqio_vocabulary():
  info = contract.DatasetInfo(
      semantic={"codebook_size": 16}, acoustic={"levels": 12,
                                                "codebook_size": 256})
  layout = vocabulary.VocabularyLayout.from_dataset_info(info)
  assert layout.size == 2 + 16 + 12 * 256
  vocab = layout.seqio_vocabulary()
  assert isinstance(vocab, seqio.PassThroughVocabulary)
  assert vocab.vocab_size == layout.padded_size == 3200
  assert vocab.eos_id == constants.EOS_ID
  with pytest.raises(ValueError, match="acoustic_levels"):
    vocabulary.VocabularyLayout(16, 0, 256)


# --- deterministic steps -----------------------------------------------------
def _record_bytes(num_samples, q, seed=0, k=16, n=8, id_="r0"):
  rng = np.random.default_rng(seed)
  return contract.TokenRecord(
      id=id_, split="dev-clean", speaker_id=1, chapter_id=2, source="s.flac",
      transcript="", num_samples=num_samples,
      semantic_tokens=rng.integers(0, k, num_samples // 640),
      acoustic_tokens=rng.integers(0, n, (num_samples // 320, q)))


def _parsed(records):
  spec = contract.tf_feature_spec()
  return tf.data.Dataset.from_tensor_slices(
      [r.to_example_bytes() for r in records]).map(
          lambda x: tf.io.parse_single_example(x, spec))


def test_parse_token_record_densifies_and_reshapes_frame_major():
  rec = _record_bytes(1280 + 320, q=3)  # 2 semantic, 5 acoustic frames
  ds = prep.parse_token_record(_parsed([rec]), acoustic_levels=3,
                               semantic_codebook_size=16,
                               acoustic_codebook_size=8)
  test_utils.assert_dataset(ds, [{
      "id": b"r0", "num_samples": 1600,
      SEM: rec.semantic_tokens.astype(np.int32),
      AC: rec.acoustic_tokens.astype(np.int32)}])


@pytest.mark.parametrize("field,bad,match", [
    ("semantic_tokens", "short", "semantic_tokens: expected length"),
    ("acoustic_tokens", "range", "acoustic_tokens: expected ids in"),
])
def test_parse_token_record_names_record_field_expected_found(field, bad,
                                                               match):
  rec = _record_bytes(3200, q=2, id_="bad-1")
  if bad == "short":
    rec.semantic_tokens = rec.semantic_tokens[:-1]
  else:
    rec.acoustic_tokens = rec.acoustic_tokens.copy()
    rec.acoustic_tokens[0, 0] = 8
  ds = prep.parse_token_record(_parsed([rec]), acoustic_levels=2,
                               semantic_codebook_size=16,
                               acoustic_codebook_size=8)
  with pytest.raises(tf.errors.InvalidArgumentError) as err:
    list(ds.as_numpy_iterator())
  assert "bad-1" in str(err.value) and match in str(err.value)


def test_to_lm_ids_offsets_every_level():
  ds = _ds({SEM: np.array([0, 3], np.int32),
            AC: np.array([[0, 7], [1, 2]], np.int32)})
  layout = vocabulary.VocabularyLayout(4, 2, 8)
  test_utils.assert_dataset(
      prep.to_lm_ids(ds, layout=layout),
      [{SEM: [2, 5], AC: [[6, 6 + 8 + 7], [7, 6 + 8 + 2]]}])


def test_select_levels_and_features():
  ex = {"id": b"a", SEM: np.array([3], np.int32),
        AC: np.array([[1, 2, 3], [4, 5, 6]], np.int32)}
  test_utils.assert_dataset(
      prep.select_acoustic_levels(_ds(ex), start=1, stop=3),
      [{"id": b"a", SEM: [3], AC: [[2, 3], [5, 6]]}])
  test_utils.assert_dataset(prep.select_features(_ds(ex), keys=("id", SEM)),
                            [{"id": b"a", SEM: [3]}])
  with pytest.raises(ValueError, match="Q=3"):
    prep.select_acoustic_levels_example(
        {AC: tf.zeros([2, 3], tf.int32)}, start=0, stop=4)


# --- crop ---------------------------------------------------------------------
def _aligned_example(steps, q=2, extra_acoustic=0):
  sem = np.arange(100, 100 + steps, dtype=np.int32)
  frames = 2 * steps + extra_acoustic
  ac = (np.arange(frames, dtype=np.int32)[:, None] * 10 +
        np.arange(q, dtype=np.int32)[None, :])
  return {SEM: sem, AC: ac}


def test_crop_is_time_aligned_for_every_seed():
  ex = _aligned_example(10, extra_acoustic=1)
  starts = set()
  for s in range(60):
    out = _crop(ex, [s, 7], crop_steps=4, acoustic_frames_per_step=2)
    start = int(out[prep.CROP_START])
    starts.add(start)
    np.testing.assert_array_equal(out[SEM], ex[SEM][start:start + 4])
    np.testing.assert_array_equal(out[AC], ex[AC][2 * start:2 * start + 8])
    assert out[prep.CROP_STEPS] == 4
    assert bool(out[prep.CROP_REACHES_END]) == (start == 6)
  # Both edges are reachable and nothing outside [0, T - crop] is drawn.
  assert starts == set(range(7))


def test_crop_of_a_short_recording_keeps_it_whole_and_reaches_end():
  ex = _aligned_example(3, extra_acoustic=1)  # odd trailing acoustic frame
  for s in range(5):
    out = _crop(ex, [s, 1], crop_steps=750, acoustic_frames_per_step=2)
    np.testing.assert_array_equal(out[SEM], ex[SEM])
    np.testing.assert_array_equal(out[AC], ex[AC][:6])  # last frame dropped
    assert out[prep.CROP_START] == 0 and out[prep.CROP_STEPS] == 3
    assert out[prep.CROP_REACHES_END]


def test_crop_of_exact_length_and_of_empty_record():
  out = _crop(_aligned_example(4), [0, 0], crop_steps=4)
  assert out[prep.CROP_START] == 0 and out[prep.CROP_REACHES_END]
  empty = {SEM: np.zeros([0], np.int32), AC: np.zeros([0, 2], np.int32)}
  out = _crop(empty, [0, 0], crop_steps=4)
  assert out[SEM].shape == (0,) and out[AC].shape == (0, 2)
  assert out[prep.CROP_REACHES_END]


def test_crop_without_semantic_tokens_uses_acoustic_steps():
  ex = _aligned_example(10, extra_acoustic=1)
  del ex[SEM]
  for s in range(20):
    out = _crop(ex, [s, 3], crop_steps=3, acoustic_frames_per_step=2)
    start = int(out[prep.CROP_START])
    assert 0 <= start <= 7
    np.testing.assert_array_equal(out[AC], ex[AC][2 * start:2 * start + 6])


def test_crop_seeds_are_stateless_and_come_from_seqio():
  ex = _aligned_example(200)
  def crops(seed):
    with seqio.utils.map_seed_manager(seed):
      ds = prep.random_aligned_crop(_ds(ex, ex, ex, ex), crop_steps=5)
    return [int(e[prep.CROP_START]) for e in ds.as_numpy_iterator()]
  first = crops(42)
  assert first == crops(42)
  assert first != crops(43)
  assert len(set(first)) > 1  # every example draws its own crop


# --- dedup, split, flatten, EOS ------------------------------------------------
@pytest.mark.parametrize("tokens,expected", [
    ([7, 7, 7, 3, 3, 7, 9, 9], [7, 3, 7, 9]),
    ([1, 2, 3], [1, 2, 3]),
    ([5, 5, 5], [5]),
    ([4], [4]),
    ([], []),
])
def test_dedup_consecutive(tokens, expected):
  ds = _ds({SEM: np.array(tokens, np.int32), "x": np.int32(1)})
  test_utils.assert_dataset(prep.dedup_consecutive(ds, key=SEM),
                            [{SEM: expected, "x": 1}])


def test_split_and_flatten_frame_by_frame():
  ex = {AC: np.array([[1, 2, 3], [4, 5, 6]], np.int32)}
  ds = prep.split_acoustic_levels(_ds(ex), coarse_levels=1)
  ds = prep.flatten_frames(prep.flatten_frames(ds, key=prep.COARSE_TOKENS),
                           key=prep.FINE_TOKENS)
  test_utils.assert_dataset(ds, [{prep.COARSE_TOKENS: [1, 4],
                                  prep.FINE_TOKENS: [2, 3, 5, 6]}])
  test_utils.assert_dataset(prep.flatten_frames(_ds(ex), key=AC),
                            [{AC: [1, 2, 3, 4, 5, 6]}])


def test_make_lm_features_appends_eos_only_at_recording_end():
  def run(reaches_end, **kw):
    ex = {SEM: np.array([9, 4], np.int32), AC: np.array([5, 6], np.int32),
          prep.CROP_REACHES_END: np.bool_(reaches_end)}
    ds = tf.data.Dataset.from_tensors(ex)
    return list(prep.make_lm_features(ds, **kw).as_numpy_iterator())[0]
  out = run(True, targets_key=SEM)
  assert list(out) == ["targets"] and out["targets"].tolist() == [9, 4, 1]
  assert run(False, targets_key=SEM)["targets"].tolist() == [9, 4]
  out = run(True, inputs_key=SEM, targets_key=AC)
  assert out["inputs"].tolist() == [9, 4]  # inputs never get EOS
  assert out["targets"].tolist() == [5, 6, 1]
  assert out["targets"].dtype == np.int32
  assert run(True, targets_key=SEM, append_eos=False)["targets"].tolist() == [
      9, 4]


# --- sampling prompts ------------------------------------------------------------
@pytest.mark.parametrize("tokens,prompt_steps,prompt,rest", [
    # A run crossing the boundary (the 3s) is kept once, in the prompt.
    ([7, 7, 3, 3, 3, 9, 9, 4], 3, [7, 3], [9, 4]),
    # A run starting exactly at the boundary belongs to the rest.
    ([7, 7, 3, 3, 9], 2, [7], [3, 9]),
    # A token equal to the prompt's last one, but not adjacent, is kept.
    ([5, 6, 5, 5], 2, [5, 6], [5]),
    # A crop no longer than the prompt leaves the rest empty.
    ([1, 1, 2], 3, [1, 2], []),
    ([], 3, [], []),
])
def test_dedup_and_split_prompt(tokens, prompt_steps, prompt, rest):
  ds = _ds({SEM: np.array(tokens, np.int32), "x": np.int32(1)})
  test_utils.assert_dataset(
      prep.dedup_and_split_prompt(ds, prompt_steps=prompt_steps),
      [{prep.PROMPT_TOKENS: prompt, SEM: rest, "x": 1}])
  # The two parts together are the deduplicated crop: no repeat at the seam.
  dedup = prep.dedup_consecutive_example({SEM: tf.constant(tokens, tf.int32)})
  assert prompt + rest == dedup[SEM].numpy().tolist()
  with pytest.raises(ValueError, match="prompt_steps"):
    prep.dedup_and_split_prompt_example({SEM: tf.constant(tokens, tf.int32)},
                                        prompt_steps=0)


def test_prompt_pipeline_crop_split_and_eos():
  """Crop -> split -> LM features, as the prompt tasks chain them."""
  def run(sem, crop_steps, seed=0):
    ds = _ds({SEM: np.array(sem, np.int32)})
    with seqio.utils.map_seed_manager(seed):
      ds = prep.random_aligned_crop(ds, crop_steps=crop_steps)
    ds = prep.dedup_and_split_prompt(ds, prompt_steps=2)
    ds = prep.make_lm_features(ds, inputs_key=prep.PROMPT_TOKENS,
                               targets_key=SEM, keep=(prep.CROP_START,))
    return list(ds.as_numpy_iterator())[0]
  # A recording shorter than the crop: kept whole, EOS ends the targets.
  out = run([4, 4, 4, 5, 6, 6], crop_steps=10)
  assert out["inputs"].tolist() == [4] and out["targets"].tolist() == [5, 6, 1]
  # A longer one: the crop of 4 steps; EOS only if it reaches the end.
  sem = [10, 11, 11, 12, 13, 14, 14, 15]
  for seed in range(8):
    out = run(sem, crop_steps=4, seed=seed)
    s = int(out[prep.CROP_START])
    crop = sem[s:s + 4]
    want = prep.dedup_consecutive_example({SEM: tf.constant(crop)})[SEM]
    body = out["targets"][:-1] if s == 4 else out["targets"]
    assert out["inputs"].tolist() + body.tolist() == want.numpy().tolist()
    assert (out["targets"][-1] == constants.EOS_ID) == (s == 4)
    assert out["inputs"].tolist() == [crop[0]] + (
        [crop[1]] if crop[1] != crop[0] else [])
