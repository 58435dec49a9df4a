"""Generation through tiny T5X checkpoints of the three stages.

The checkpoints come from ``tests/t5x_fixtures.py`` (T5X's own train binary
on the tokenization job's records from the team's clips). A real clip's first
3 s are tokenized with the same tokenizers and continued; the samples are
decoded with the real Lyra files. Skips without T5X.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf

from audiolm_t5x import constants
from audiolm_t5x.pipelines import tokenize_audio
from audiolm_t5x.pipelines.generation import chain
from audiolm_t5x.pipelines.generation import constraints
from audiolm_t5x.pipelines.generation import prompts
from audiolm_t5x.pipelines.generation import stage_model
from tests import t5x_fixtures

pytestmark = pytest.mark.skipif(not t5x_fixtures.HAVE_T5X,
                                reason=t5x_fixtures.NO_T5X)
CLIP = "2412-153948-0000"
TEST_LYRA = (("levels", 24), ("pack", 2))


@pytest.fixture(scope="module")
def tokenizer(kmeans_codebook, lyra_dir):
  return prompts.PromptTokenizer(tokenize_audio.TokenizerSpec(
      semantic="logmel", codebook=str(kmeans_codebook), acoustic="lyra",
      acoustic_options=TEST_LYRA + (("model_dir", str(lyra_dir)),))).load()


@pytest.fixture(scope="module")
def generator(tiny_checkpoints, tokenizer, monkeypatch_module):
  from audiolm_t5x import t5x_configs  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines.generation import t5x_model  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.tasks import vocabulary  # pylint: disable=g-import-not-at-top
  monkeypatch_module.setenv("AUDIOLM_DATA_DIR", tiny_checkpoints.data_dir)
  models = {
      s: t5x_model.T5XStageModel.from_checkpoint(
          tiny_checkpoints[s], batch_size=2,
          gin_files=[t5x_configs.gin_path(f"infer/{s}.gin"),
                     *map(t5x_configs.gin_path, tiny_checkpoints.gin_files)])
      for s in t5x_fixtures.STAGES}
  layout = vocabulary.VocabularyLayout.from_sizes(
      semantic_codebook_size=tokenizer.codebook.size,
      acoustic_levels=tokenizer.acoustic.levels,
      acoustic_codebook_size=tokenizer.acoustic.codebook_size)
  return chain.Generator(semantic_model=models["semantic"],
                         coarse_model=models["coarse"],
                         fine_model=models["fine"], layout=layout,
                         coarse_levels=constants.COARSE_LEVELS,
                         codec=tokenizer.acoustic)


@pytest.fixture(scope="module")
def monkeypatch_module():
  mp = pytest.MonkeyPatch()
  yield mp
  mp.undo()


def test_stage_models_follow_their_gins(generator):
  m = generator.models
  assert m["semantic"].bidirectional_inputs is False  # infer/semantic.gin
  assert m["coarse"].bidirectional_inputs is True
  assert m["fine"].bidirectional_inputs is True
  assert m["coarse"].gin_defaults["temperature"] == constants.COARSE_TEMPERATURE
  assert m["fine"].vocab_size == 13440


def test_a_row_samples_the_same_in_any_batch(generator):
  """Rows with their own seeds: same ids alone, second in a batch, top-k."""
  model = generator.models["semantic"]
  c = generator.constraints["semantic"]
  lo = c.ranges[0][0]
  a = stage_model.Request(inputs=np.arange(lo, lo + 5), forced=np.zeros(
      [0], np.int64), length=30, seed=11)
  b = stage_model.Request(inputs=np.arange(lo + 3, lo + 12), forced=np.zeros(
      [0], np.int64), length=40, seed=12)
  for sampling in (stage_model.SamplingSettings(0.9),
                   stage_model.SamplingSettings(0.9, top_k=4)):
    (alone,) = model.generate([a], constraint=c, sampling=sampling, seed=0)
    _, second = model.generate([b, a], constraint=c, sampling=sampling,
                               seed=5)
    np.testing.assert_array_equal(alone, second)
    c.check(alone)
  other = model.generate([dataclasses.replace(a, seed=13)], constraint=c,
                         sampling=stage_model.SamplingSettings(0.9), seed=0)
  assert not np.array_equal(alone, other[0])


def test_continuation_of_a_real_clip(generator, tokenizer, clips_dir):
  settings = chain.GenerationSettings(seconds=4.0, prompt_seconds=3.0, seed=7)
  prompt = prompts.prompt_from_audio(str(clips_dir / f"{CLIP}.flac"),
                                     tokenizer, mode="continuation",
                                     settings=settings)
  assert isinstance(prompt, chain.Prompt), prompt
  (a,) = generator.generate([prompt], mode="continuation", settings=settings)
  (b,) = generator.generate([prompt], mode="continuation", settings=settings)
  layout = generator.layout
  # Lengths: 4 s = 100 semantic frames, 200 acoustic frames, 64000 samples.
  assert a.semantic.shape == (100,)
  assert a.coarse.shape == (200, 4) and a.fine.shape == (200, 8)
  assert a.codes.shape == (200, 12) and a.waveform.shape == (64000,)
  # The prompt: its 75 semantic frames, 150 acoustic frames and 48000 samples.
  np.testing.assert_array_equal(a.semantic[:75], prompt.semantic[:75])
  np.testing.assert_array_equal(a.codes[:150], prompt.acoustic[:150])
  np.testing.assert_array_equal(a.waveform[:48000], prompt.waveform[:48000])
  # Every id in its level's range, levels in frame order.
  assert 0 <= a.semantic.min() and a.semantic.max() < 16
  assert 0 <= a.codes.min() and a.codes.max() < 256
  for stage, ids in (("coarse", a.coarse), ("fine", a.fine)):
    c = generator.constraints[stage]
    c.check(constraints.to_lm(c, ids))  # raises on a level out of order
  assert np.all(np.isfinite(a.waveform[48000:]))
  assert np.abs(a.waveform[48000:]).max() > 0
  # The same seed gives the same audio.
  np.testing.assert_array_equal(a.codes, b.codes)
  np.testing.assert_array_equal(a.waveform, b.waveform)
  del layout


def test_forced_target_is_prefilled_causally_as_in_training(generator):
  """Greedy sampling after a forced target start equals the argmax of the
  training-mode forward pass (bidirectional inputs, causal targets).

  Measured on these weights: making the forced frames bidirectional too
  changes the argmax of the first sampled position, so the check can fail.
  """
  import jax  # pylint: disable=g-import-not-at-top
  m = generator.models["coarse"]
  c = generator.constraints["coarse"]
  rng = np.random.default_rng(0)
  inputs = rng.integers(2, 18, size=5)
  forced = constraints.to_lm(c, rng.integers(0, 256, size=(2, 4)))
  length = 11
  (out,) = m.generate([stage_model.Request(inputs, forced, length)],
                      constraint=c,
                      sampling=stage_model.SamplingSettings(0.0), seed=0)
  assert out[:8].tolist() == forced.tolist()
  seq = list(inputs) + list(forced)
  a, width = len(inputs), 16
  forward = jax.jit(lambda params, dec, tgt, causal: m.model.module.apply(
      {"params": params}, dec, tgt, decoder_causal_attention=causal,
      enable_dropout=False, decode=False))
  for step in range(3):
    # decoder_input_tokens = [BOS] + seq: position len(seq) predicts the
    # token after seq (its own target is a placeholder); zeros pad to width.
    n = len(seq)
    targets = np.zeros([1, width], np.int32)
    targets[0, :n + 1] = seq + [seq[-1]]
    decoder_inputs = np.zeros([1, width], np.int32)
    decoder_inputs[0, 1:n + 1] = seq
    causal = np.zeros_like(targets)
    causal[0, :a + 1] = 1  # PrefixLMFeatureConverter: inputs + 1
    logits = forward(m.params, decoder_inputs, targets, causal)
    lo, hi = c.ranges[(n - a) % 4]
    row = np.asarray(logits[0, n], np.float32)[lo:hi]
    # Equal up to bfloat16 activations (the two paths round differently).
    assert row[out[8 + step] - lo] >= row.max() - 0.03, (step, row.max())
    seq.append(int(out[8 + step]))


def test_generate_command_with_t5x(tiny_checkpoints, tmp_path, clips_dir,
                                   kmeans_codebook, lyra_dir,
                                   monkeypatch_module):
  from audiolm_t5x.pipelines.generation import job  # pylint: disable=g-import-not-at-top
  summary = job.run([
      f"--prompts={clips_dir / f'{CLIP}.flac'}",
      f"--output_dir={tmp_path}", f"--kmeans={kmeans_codebook}",
      f"--lyra_dir={lyra_dir}", "--acoustic_option=levels=24",
      "--acoustic_option=pack=2", "--gin_file=models/tiny.gin",
      *[f"--{s}_checkpoint={tiny_checkpoints[s]}"
        for s in t5x_fixtures.STAGES],
      "--seconds=3.2", "--batch_size=2", "--coarse_temperature=0.9"])
  assert summary["counts"]["samples_written"] == 1
  audio, rate = sf.read(tmp_path / CLIP / "sample-0.wav", dtype="int16")
  assert (rate, audio.shape) == (16000, (51200,))
  meta = json.loads((tmp_path / CLIP / "sample-0.json").read_text())
  assert meta["checkpoints"] == {s: tiny_checkpoints[s]
                                 for s in t5x_fixtures.STAGES}
  assert meta["temperatures"] == {"semantic": 0.6, "coarse": 0.9,
                                  "fine": 0.6}
  arrays = np.load(tmp_path / CLIP / "sample-0.npz")
  assert arrays["codes"].shape == (160, 12) and arrays["semantic"].shape == (80,)
