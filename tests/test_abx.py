"""ABX: hand-computed DTW and error rates, known answers, an espeak-ng set."""

import collections

import numpy as np
import pytest

from audiolm_t5x.pipelines.evaluation import abx


def test_dtw_hand_computed():
  # cost grid: row 0 = 0, 2, 5; (1,0) = 1; (1,1) = 0 + diag 0 (2 cells);
  # (1,2) = 2 + left 0 -> 2 over 3 cells.
  d = np.array([[[0., 2., 3.], [1., 0., 2.]]])
  assert abx.dtw(d, [2], [3]).tolist() == pytest.approx([2 / 3])
  # Padding beyond a pair's lengths is ignored; pairs are independent.
  d2 = np.array([[[0., 9.], [9., 9.]], [[1., 1.], [1., 1.]]])
  assert abx.dtw(d2, [1, 2], [1, 2]).tolist() == pytest.approx([0.0, 1.0])


def test_frame_distances_and_span():
  x = np.array([[1., 0.], [0., 0.]])
  y = np.array([[0., 2.], [3., 0.], [0., 0.]])
  np.testing.assert_allclose(
      abx.frame_distance_matrix(x, y, "angular"),
      [[0.5, 0.0, 1.0], [1.0, 1.0, 0.0]])
  np.testing.assert_allclose(
      abx.frame_distance_matrix(np.array([3, 4]), np.array([4, 4, 3]),
                                "onehot"), [[1, 1, 0], [0, 0, 1]])
  # libri-light's rule: frames whose centre (i + 0.5) / rate is in the span.
  assert abx.frame_span(0.1, 0.5, rate=25, num_frames=100) == (2, 12)
  assert abx.frame_span(0.1, 0.5, rate=25, num_frames=5) == (2, 5)


def _toy_items():
  """Context x+y; speaker s1: a = [1,1], [1,2]; b = [2,2], [1,1].

  Speaker s2: a = [2,2]; b = [1,1]. One file per item, 2 frames each at
  rate 1 Hz (segment 0 .. 2.5 s).
  """
  feats = {"A1": [1, 1], "A2": [1, 2], "B1": [2, 2], "B2": [1, 1],
           "C1": [2, 2], "D1": [1, 1]}
  labels = {"A1": ("a", "s1"), "A2": ("a", "s1"), "B1": ("b", "s1"),
            "B2": ("b", "s1"), "C1": ("a", "s2"), "D1": ("b", "s2")}
  items = [abx.Item(f, 0.0, 2.5, ph, "x", "y", spk)
           for f, (ph, spk) in labels.items()]
  return {k: np.array(v) for k, v in feats.items()}, items


def test_abx_hand_computed_error_rates():
  feats, items = _toy_items()
  r = abx.abx_error_rates(feats, items, rate=1.0, distance="onehot")
  # With 2 frames each, DTW takes the diagonal: d = fraction of frames that
  # differ. d(A1,A2)=.5 d(A1,B1)=1 d(A1,B2)=0 d(A2,B1)=.5 d(A2,B2)=.5
  # d(B1,B2)=1; C1 = B1 and D1 = A1 = B2 as codes.
  # Within s1, (a, b): X=A1: A2 (.5) < B1 (1) right, > B2 (0) wrong; X=A2:
  # A1 (.5) ties B1 (.5) and B2 (.5) -> error 1 - 2/4 = .5.
  # (b, a): X=B1: B2 (1) ties A1 (1), > A2 (.5); X=B2: B1 (1) > A1 (0) and
  # A2 (.5) -> error 1 - .5/4 = .875. s2 has one item per phone: no cell.
  assert r.within == pytest.approx((0.5 + 0.875) / 2)
  # Across, (a, b): A, B of s1 and X = C1 of s2: error .625; A = C1, B = D1
  # of s2 and X in {A1, A2} of s1: .75. (b, a): .625 and .5. Mean over the
  # speaker pairs, then over the two phone pairs.
  assert r.across == pytest.approx(((0.625 + 0.75) / 2 + (0.625 + 0.5) / 2)
                                   / 2)
  assert (r.within_triplets, r.across_triplets) == (8, 12)
  assert (r.within_phone_pairs, r.across_phone_pairs) == (2, 2)
  assert r.num_items == 6 and r.num_skipped == 0


def _synthetic_items(rng, *, contexts=3, phones=4, speakers=3, reps=3):
  items, files = [], {}
  for c in range(contexts):
    for p in range(phones):
      for s in range(speakers):
        for k in range(reps):
          name = f"c{c}p{p}s{s}r{k}"
          n = int(rng.integers(3, 7))
          files[name] = (p, n)
          items.append(abx.Item(name, 0.0, n + 0.4, f"p{p}", f"l{c}",
                                f"r{c}", f"s{s}"))
  return items, files


def test_known_answers_exact_phone_features_and_random_features():
  rng = np.random.default_rng(0)
  items, files = _synthetic_items(rng)
  exact = {f: np.tile(np.eye(8)[p] + 0.1 * np.eye(8)[7], (n, 1))
           for f, (p, n) in files.items()}
  r = abx.abx_error_rates(exact, items, rate=1.0)
  assert (r.within, r.across) == (0.0, 0.0)
  random = {f: rng.normal(size=(n, 16)) for f, (p, n) in files.items()}
  r = abx.abx_error_rates(random, items, rate=1.0)
  assert 0.44 < r.within < 0.56 and 0.44 < r.across < 0.56
  ids = {f: rng.integers(0, 50, size=n) for f, (p, n) in files.items()}
  r = abx.abx_error_rates(ids, items, rate=1.0, distance="onehot")
  assert 0.44 < r.within < 0.56 and 0.44 < r.across < 0.56


def test_bad_features_are_skipped_and_counted():
  feats, items = _toy_items()
  feats = {k: v.astype(np.float64)[:, None] * np.ones((1, 2))
           for k, v in feats.items()}
  feats["A1"] = np.full((2, 2), np.nan)
  del feats["D1"]
  items = items + [abx.Item("B1", 5.0, 6.0, "b", "x", "y", "s1")]
  r = abx.abx_error_rates(feats, items, rate=1.0)
  assert r.num_items == 4
  assert r.skipped_reasons == {"NaN or infinite feature": 1,
                               "no features for file": 1,
                               "no frame inside the segment": 1}


def test_item_file_round_trip_and_errors():
  text = abx.ITEM_HEADER + "\nf1 0.1 0.4 a x y s1\nf2 0.2 0.5 b x y s2\n"
  items = abx.parse_items(text)
  assert items[1] == abx.Item("f2", 0.2, 0.5, "b", "x", "y", "s2")
  assert abx.parse_items(abx.format_items(items)) == items
  with pytest.raises(abx.ItemFileError, match="line 2: expected 7 columns"):
    abx.parse_items(abx.ITEM_HEADER + "\nf1 0.1 0.4 a x y\n")
  with pytest.raises(abx.ItemFileError, match="onset < offset"):
    abx.parse_items(abx.ITEM_HEADER + "\nf1 0.4 0.1 a x y s\n")


@pytest.fixture(scope="module")
def espeak_set(tmp_path_factory):
  from audiolm_t5x.pipelines.evaluation import espeak_items  # pylint: disable=g-import-not-at-top

  speakers = espeak_items.DEFAULT_SPEAKERS[:3]
  try:
    return espeak_items.build_item_set(
        str(tmp_path_factory.mktemp("espeak")), speakers=speakers,
        words=espeak_items.DEFAULT_WORDS[:10], repetitions=2)
  except espeak_items.EspeakUnavailable as e:
    pytest.skip(f"espeak-ng unavailable: {e}")


def test_espeak_set_is_labelled_16khz_speech(espeak_set):
  import soundfile as sf  # pylint: disable=g-import-not-at-top

  items = abx.read_items(espeak_set.item_file)
  assert espeak_set.num_files == 6 and len(items) == espeak_set.num_items
  assert {i.speaker for i in items} == {"m1", "m3", "m5"}
  for name in {i.file for i in items}:
    info = sf.info(f"{espeak_set.audio_dir}/{name}.wav")
    assert info.samplerate == 16000
    last = max(i.offset for i in items if i.file == name)
    assert last <= info.duration + 1e-3
  phones = collections.Counter(i.phone for i in items)
  assert "SIL" not in phones
  # "beat bit bait bet ...": the vowels between b and t are items.
  assert {i.phone for i in items if i.context == "b+t"} >= {"i:", "I", "E"}


def test_espeak_set_logmel_abx_well_below_chance(espeak_set):
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines.tokenizers import base  # pylint: disable=g-import-not-at-top

  items = abx.read_items(espeak_set.item_file)
  emb = base.make_semantic_embedder("logmel")
  feats = {}
  for name in {i.file for i in items}:
    wave, _ = sf.read(f"{espeak_set.audio_dir}/{name}.wav", dtype="float32")
    feats[name] = emb.embed(wave)
  r = abx.abx_error_rates(feats, items, rate=25.0)
  assert r.num_items > 100 and r.within_triplets > 0 and r.across_triplets > 0
  assert r.within < 0.15 and r.across < 0.25
  rng = np.random.default_rng(1)
  noise = {k: rng.normal(size=v.shape) for k, v in feats.items()}
  rn = abx.abx_error_rates(noise, items, rate=25.0)
  assert 0.35 < rn.within < 0.65 and 0.35 < rn.across < 0.65
