"""sWUGGY / sBLIMP-style scoring: the literal core, the ZeroSpeech 2021 layout,
the espeak-ng smoke set, and T5X's scoring API on a tiny trained stage-1
model."""

from __future__ import annotations

import csv
import json
import math
import pathlib

import numpy as np
import pytest

from audiolm_t5x import constants
from audiolm_t5x.pipelines.evaluation import lm_scores
from tests import test_t5x_configs as t5x_tests

EOS = constants.EOS_ID


def _items(rows):
  return [lm_scores.Item(filename=f, path="", text=t, correct=c, pair_id=i,
                         voice=v, frequency=q)
          for f, t, c, i, v, q in rows]


def test_the_model_must_prefer_the_real_item_when_its_likelihood_is_higher():
  items = _items([("w1", "water", True, "1", "a", 5),
                  ("n1", "wuter", False, "1", "a", 5),
                  ("w2", "garden", True, "2", "a", 0),
                  ("n2", "gorden", False, "2", "a", 0),
                  ("w3", "window", True, "3", "a", 2),
                  ("n3", "wendow", False, "3", "a", 2)])
  seqs = {"w1": np.array([10, 11, EOS]), "n1": np.array([10, 12, EOS]),
          "w2": np.array([20, 21, 22, 23, EOS]), "n2": np.array([20, 24, EOS]),
          "w3": np.array([30, EOS]), "n3": np.array([31, EOS])}
  scorer = lm_scores.TableScorer({
      (10, 11, EOS): -3.0, (10, 12, EOS): -6.0,  # real more likely
      # real: sum -10 over 5 tokens (-2 each); fake: sum -9 over 3 (-3 each)
      (20, 21, 22, 23, EOS): -10.0, (20, 24, EOS): -9.0,
      (30, EOS): -4.0, (31, EOS): -4.0})  # a tie
  rows = lm_scores.score_pairs(lm_scores.make_pairs(items), seqs, scorer)
  by_id = {r["id"]: r for r in rows}
  assert by_id["1"]["score_summed"] == 1.0
  assert by_id["1"]["score_normalised"] == 1.0
  assert by_id["2"]["score_summed"] == 0.0  # fewer tokens, higher sum
  assert by_id["2"]["score_normalised"] == 1.0  # -2 per token beats -3
  assert by_id["3"]["score_summed"] == 0.5
  assert by_id["2"]["real_tokens"] == 5 and by_id["2"]["fake_tokens"] == 3
  s = lm_scores.summarize(lm_scores.LEXICAL, rows, smoke=False)
  assert s["accuracy_summed"] == pytest.approx(100 * 1.5 / 3)
  assert s["accuracy_normalised"] == pytest.approx(100 * 2.5 / 3)
  # In-vocabulary: words seen in LibriSpeech (frequency > 0): ids 1 and 3.
  assert s["accuracy_summed_in_vocab"] == pytest.approx(75.0)
  # Flip the likelihoods: the model must now prefer the fake word.
  flipped = lm_scores.TableScorer({(10, 11, EOS): -6.0, (10, 12, EOS): -3.0,
                                   (20, 21, 22, 23, EOS): -10.0,
                                   (20, 24, EOS): -9.0, (30, EOS): -4.0,
                                   (31, EOS): -4.0})
  rows = lm_scores.score_pairs(lm_scores.make_pairs(items), seqs, flipped)
  assert {r["id"]: r["score_summed"] for r in rows}["1"] == 0.0


def test_lm_sequence_dedups_and_ends_with_eos():
  np.testing.assert_array_equal(lm_scores.dedup([3, 3, 5, 3, 3]), [3, 5, 3])
  np.testing.assert_array_equal(lm_scores.lm_sequence(np.array([0, 0, 7])),
                                [2, 9, EOS])  # semantic id k -> 2 + k


def test_voices_are_averaged_within_a_pair_then_over_pairs():
  rows = [{"id": "1", "s": 1.0}, {"id": "1", "s": 0.0}, {"id": "2", "s": 1.0}]
  assert lm_scores.accuracy(rows, "s") == pytest.approx(75.0)


def _write_gold(folder: pathlib.Path, header, rows):
  folder.mkdir(parents=True)
  with open(folder / "gold.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(header)
    w.writerows(rows)


def test_reads_the_zerospeech_2021_layout(tmp_path):
  _write_gold(tmp_path / "lexical" / "dev",
              ["filename", "word", "phones", "length", "frequency", "correct",
               "id", "voice"],
              [["aAb", "water", "w o t", 3, 12, 1, 7, "Bob"],
               ["xYz", "wuter", "w u t", 3, "", 0, 7, "Bob"]])
  _write_gold(tmp_path / "syntactic" / "dev",
              ["filename", "type", "subtype", "transcription", "correct", "id",
               "voice"],
              [["s1", "agreement", "a", "dogs run", 1, 3, "Amy"],
               ["s2", "agreement", "a", "dogs runs", 0, 3, "Amy"]])
  lex = lm_scores.read_gold(str(tmp_path), lm_scores.LEXICAL)
  assert lex[0] == lm_scores.Item(
      filename="aAb", path=str(tmp_path / "lexical/dev/aAb.wav"),
      text="water", correct=True, pair_id="7", voice="Bob", frequency=12)
  assert lex[1].frequency is None and not lex[1].correct
  (real, fake), = lm_scores.make_pairs(lex)
  assert (real.text, fake.text) == ("water", "wuter")
  syn = lm_scores.read_gold(str(tmp_path), lm_scores.SYNTACTIC)
  assert [(i.text, i.kind) for i in syn] == [("dogs run", "agreement"),
                                             ("dogs runs", "agreement")]
  with pytest.raises(FileNotFoundError, match="ZeroSpeech 2021 layout"):
    lm_scores.read_gold(str(tmp_path), lm_scores.LEXICAL, "test")
  with pytest.raises(ValueError, match="one correct and one incorrect"):
    lm_scores.make_pairs(lex[:1])


@pytest.fixture(scope="module")
def smoke_set(tmp_path_factory):
  import shutil
  if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
  root = tmp_path_factory.mktemp("smoke")
  counts = lm_scores.write_smoke_set(str(root))
  return root, counts


def test_smoke_set_is_synthesized_in_the_zerospeech_layout(smoke_set):
  import soundfile as sf
  root, counts = smoke_set
  n_voices = len(lm_scores.SMOKE_VOICES)
  assert counts == {"lexical": 2 * n_voices * len(lm_scores.SMOKE_WORDS),
                    "syntactic": 2 * n_voices * len(lm_scores.SMOKE_SENTENCES)}
  assert lm_scores.is_smoke_set(str(root))
  assert "NOT sWUGGY" in (root / lm_scores.SMOKE_MARKER).read_text()
  for task in (lm_scores.LEXICAL, lm_scores.SYNTACTIC):
    items = lm_scores.read_gold(str(root), task)
    pairs = lm_scores.make_pairs(items)
    assert len(pairs) == counts[task] // 2
    info = sf.info(items[0].path)
    assert info.samplerate == constants.SAMPLE_RATE and info.channels == 1
    assert 0.2 < info.duration < 5.0


# --- T5X: the tiny stage-1 model, scored with score_batch -----------------------
@pytest.fixture(scope="module")
def tiny_semantic_checkpoint(tiny_checkpoints):
  """The stage-1 checkpoint of the session's tiny models (tests/t5x_fixtures.py:
  the speech recipe's stage 5, T5X's train binary, 2 steps)."""
  return tiny_checkpoints.semantic


TINY_GIN = ("models/audiolm_decoder.gin", "stages/semantic.gin",
            "models/tiny.gin")


def test_t5x_scorer_scores_with_score_batch(tiny_semantic_checkpoint):
  scorer = lm_scores.T5XScorer(str(tiny_semantic_checkpoint),
                               gin_files=TINY_GIN, batch_size=4)
  seqs = [np.array([5, 9, 9, 30, EOS]), np.array([7, EOS]),
          np.arange(2, 60), np.array([40, 41, 42, EOS]),
          np.array([5, 9, 9, 30, EOS])]
  scores = scorer.score(seqs)
  assert scores.shape == (5,) and np.all(np.isfinite(scores))
  assert np.all(scores < 0)
  # Padding and batch neighbours do not change a sequence's score: sequence 0
  # is scored in a batch of 4 padded to 64, sequence 4 alone padded to 32.
  assert scores[0] == pytest.approx(scores[4], rel=1e-5)
  # A barely trained model is near uniform over the 13440 ids: a longer
  # sequence gets a lower summed log-likelihood, about -log(13440) per token.
  per_token = scores[2] / len(seqs[2])
  assert -2 * math.log(13440) < per_token < 0


def test_score_command_on_the_smoke_set(tiny_semantic_checkpoint, smoke_set,
                                        kmeans_codebook, tmp_path):
  root, _ = smoke_set
  rep = lm_scores.run([
      f"--data_dir={root}", f"--checkpoint={tiny_semantic_checkpoint}",
      f"--kmeans={kmeans_codebook}", f"--output_dir={tmp_path}",
      *[f"--gin_file={g}" for g in TINY_GIN]])
  assert rep["smoke_set"] is True
  lex = rep["tasks"]["lexical"]["summary"]
  assert lex["pairs"] == len(lm_scores.SMOKE_WORDS) * len(
      lm_scores.SMOKE_VOICES)
  for task in ("lexical", "syntactic"):
    s = rep["tasks"][task]["summary"]
    assert 0.0 <= s["accuracy_summed"] <= 100.0
    assert 0.0 <= s["accuracy_normalised"] <= 100.0
  md = (tmp_path / "lm_scores.md").read_text()
  assert "SMOKE SET" in md and str(constants.PAPER_SWUGGY_ALL) in md
  on_disk = json.loads((tmp_path / "lm_scores.json").read_text())
  assert on_disk["tasks"]["syntactic"]["pairs"][0]["real_tokens"] > 1


# --- The GSLM baseline gin ------------------------------------------------------
def test_gslm_baseline_gin_binds_under_t5x(tmp_path):
  if not t5x_tests.HAVE_T5X:
    pytest.skip(t5x_tests.NO_T5X)
  import gin
  import importlib
  import sys
  from t5x import gin_utils

  saved = sys.modules["__main__"]
  sys.modules["__main__"] = importlib.import_module("t5x.train")
  try:
    gin.clear_config()
    gin_utils.parse_gin_flags(
        [str(t5x_tests.CONFIG_DIR)], ["baselines/gslm_semantic.gin"],
        ["MODEL_DIR='/tmp/unused'", f"DATA_DIR='{tmp_path}'"],
        finalize_config=False)
    assert gin.query_parameter("%MIXTURE_OR_TASK_NAME") == (
        "audiolm_semantic_v001")
    from audiolm_t5x.tasks import stages
    assert stages.speech_corpus().data_dir == str(tmp_path)
    model = gin.query_parameter("%MODEL").scoped_configurable_fn()
    cfg = model.module.config
    assert (cfg.num_layers, cfg.emb_dim, cfg.num_heads, cfg.mlp_dim) == (
        constants.NUM_LAYERS, constants.D_MODEL, constants.NUM_HEADS,
        constants.D_FF)
    assert "inputs_bidirectional_attention" not in gin.config_str()  # causal
  finally:
    sys.modules["__main__"] = saved
    gin.clear_config()
