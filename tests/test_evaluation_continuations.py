"""Continuation metrics (ASR, speaker similarity, acoustic consistency) and the
``evaluate_continuations`` Beam job on a folder of the generation layout built
from the team's real clips."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from audiolm_t5x import constants
from audiolm_t5x.pipelines.evaluation import acoustic
from audiolm_t5x.pipelines.evaluation import asr
from audiolm_t5x.pipelines.evaluation import continuations
from audiolm_t5x.pipelines.evaluation import speaker
from tests import evaluation_fixtures as fx

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SR = constants.SAMPLE_RATE


# --- ASR -----------------------------------------------------------------------
def test_error_rates_of_known_strings():
  r = asr.error_rates(["the cat sat on the mat"], ["the cat sit on mat"])
  assert r["wer"] == pytest.approx(2 / 6)  # 1 substitution + 1 deletion
  assert r["cer"] == pytest.approx(5 / 22)  # a->i, "the " deleted
  assert r["pairs"] == 1
  # Corpus level: errors over all reference words, after normalisation.
  r = asr.error_rates(["HELLO WORLD", "ONE TWO THREE FOUR"],
                      ["hello, world!", "one two three"])
  assert r["wer"] == pytest.approx(1 / 6)
  assert asr.error_rates([""], ["x"]) == {"wer": None, "cer": None,
                                          "pairs": 0}
  assert asr.normalize_text("It's  a DOG, isn't it?") == "it's a dog isn't it"


def test_pocketsphinx_transcribes_speech(clips_dir):
  rec = asr.make_recognizer("pocketsphinx")
  wave = fx.read_clip(clips_dir, "2412-153948-0000", 3.0)
  text = rec.transcribe(wave)
  assert text and text == text.lower() and len(text.split()) >= 3, text


def test_transformers_recognizer_runs_a_saved_tiny_checkpoint(tmp_path):
  """Only that the interface runs a checkpoint saved and loaded (random)."""
  import torch
  import transformers

  torch.manual_seed(0)
  vocab = {"<pad>": 0, "|": 1, "a": 2, "b": 3, "c": 4}
  (tmp_path / "vocab.json").write_text(json.dumps(vocab))
  tok = transformers.Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"),
                                          word_delimiter_token="|")
  fe = transformers.Wav2Vec2FeatureExtractor(sampling_rate=SR)
  cfg = transformers.Wav2Vec2Config(
      vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
      num_attention_heads=2, intermediate_size=32, conv_dim=(16, 16),
      conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8,
      num_conv_pos_embedding_groups=2, pad_token_id=0)
  model_dir = tmp_path / "asr"
  transformers.Wav2Vec2ForCTC(cfg).save_pretrained(model_dir)
  transformers.Wav2Vec2Processor(feature_extractor=fe,
                                 tokenizer=tok).save_pretrained(model_dir)
  rec = asr.make_recognizer("transformers", model=str(model_dir))
  text = rec.transcribe(np.random.default_rng(0).normal(
      0, 0.1, SR).astype(np.float32))
  assert isinstance(text, str) and set(text) <= set("abc ")
  with pytest.raises(ValueError, match="--asr_model"):
    asr.make_recognizer("transformers")


# --- Speaker similarity -----------------------------------------------------------
def test_cosine_literals():
  assert speaker.cosine([1, 0], [0, 1]) == 0.0
  assert speaker.cosine([1, 2], [2, 4]) == pytest.approx(1.0)
  assert speaker.cosine([1, 0], [-1, 0]) == pytest.approx(-1.0)


@pytest.fixture(scope="module")
def embedder():
  emb = speaker.make_embedder("resemblyzer")
  emb.load()
  return emb


def test_identical_audio_has_similarity_one(embedder, clips_dir):
  wave = fx.read_clip(clips_dir, "198-209-0000", 3.0)
  a, b = embedder.embed(wave), embedder.embed(wave.copy())
  assert a.shape == (256,)
  assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
  assert speaker.cosine(a, b) == pytest.approx(1.0, abs=1e-6)


def test_transformers_xvector_embedder_runs_a_saved_tiny_checkpoint(tmp_path):
  """Only that another embedder plugs in (random weights, saved and loaded)."""
  import torch
  import transformers

  torch.manual_seed(0)
  cfg = transformers.WavLMConfig(
      hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
      intermediate_size=32, conv_dim=(16, 16), conv_stride=(5, 4),
      conv_kernel=(10, 8), num_conv_pos_embeddings=8,
      num_conv_pos_embedding_groups=2, tdnn_dim=(16, 16), tdnn_kernel=(3, 1),
      tdnn_dilation=(1, 1), xvector_output_dim=8)
  transformers.WavLMForXVector(cfg).save_pretrained(tmp_path)
  transformers.Wav2Vec2FeatureExtractor(sampling_rate=SR).save_pretrained(
      tmp_path)
  emb = speaker.make_embedder("transformers", model=str(tmp_path))
  wave = np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32)
  vec = emb.embed(wave)
  assert vec.shape == (8,)
  assert speaker.cosine(vec, emb.embed(wave)) == pytest.approx(1.0, abs=1e-6)


# --- Acoustic consistency -----------------------------------------------------------
def test_levels_and_silence_literals():
  square = np.where(np.arange(SR) % 80 < 40, 0.5, -0.5).astype(np.float32)
  levels = acoustic.frame_levels_db(square)
  assert len(levels) == 40  # 1 s of 25 ms frames
  np.testing.assert_allclose(levels, 20 * np.log10(0.5), atol=1e-6)
  half_silent = np.concatenate([square, np.zeros(SR, np.float32)])
  threshold = acoustic.silence_threshold_db(square)
  assert threshold == pytest.approx(20 * np.log10(0.5) - 35.0)
  assert acoustic.silence_ratio(half_silent, threshold_db=threshold) == 0.5
  assert acoustic.level_dbfs(half_silent, threshold_db=threshold) == (
      pytest.approx(20 * np.log10(0.5)))
  stats = acoustic.consistency(square, half_silent)
  assert stats["level_difference_db"] == pytest.approx(0.0, abs=1e-9)
  assert stats["prompt_silence_ratio"] == 0.0
  assert stats["continuation_silence_ratio"] == 0.5
  silent = acoustic.consistency(square, np.zeros(SR, np.float32))
  assert silent["continuation_level_dbfs"] is None
  assert silent["continuation_silence_ratio"] == 1.0


def test_repetition_of_the_prompt_is_detected(clips_dir):
  wave = fx.read_clip(clips_dir, "5703-47212-0000", 6.0)
  prompt, rest = wave[:3 * SR], wave[3 * SR:]
  copied = acoustic.repetition(prompt, prompt.copy())
  assert copied["repeated_fraction"] == 1.0 and copied["repeats_prompt"]
  assert copied["max_prompt_similarity"] == pytest.approx(1.0)
  real = acoustic.repetition(prompt, rest)
  assert not real["repeats_prompt"] and real["repeated_fraction"] < 0.2
  assert acoustic.longest_token_copy_seconds(
      [1, 2, 3, 4], [9, 2, 3, 4, 8]) == pytest.approx(3 / 25)
  assert acoustic.longest_token_copy_seconds([1, 2], [3, 4]) == 0.0


# --- The Beam job ---------------------------------------------------------------------
PROMPT_SECONDS = 2.0


@pytest.fixture(scope="module")
def generated_dir(tmp_path_factory, clips_dir, lyra_dir):
  """Five samples from real clips, one broken sample."""
  from audiolm_t5x.pipelines.tokenizers import base

  root = tmp_path_factory.mktemp("generated")
  fx.write_generation_json(root)
  # 1. A real continuation: the clip's own next seconds.
  a = fx.read_clip(clips_dir, "2412-153948-0000", 4.0)
  fx.write_sample(root, prompt_id="2412-153948-0000", index=0, waveform=a,
                  speaker_id="2412", mode="continuation",
                  prompt_seconds=PROMPT_SECONDS)
  # 2. The repetition failure: the prompt played again; its semantic tokens
  # repeat the prompt's 50 tokens (2 s at 25 Hz).
  sem = np.random.default_rng(5).integers(0, 1024, 50)
  fx.write_sample(root, prompt_id="2412-153948-0000", index=1,
                  waveform=np.concatenate([a[:2 * SR], a[:2 * SR]]),
                  speaker_id="2412", mode="continuation",
                  prompt_seconds=PROMPT_SECONDS,
                  semantic=np.concatenate([sem, sem]))
  # 3. Resynthesis that reproduces the original exactly; the transcript is
  # the recogniser's text of the original (the clips have no transcripts), so
  # WER is 0 for both by construction: this checks the plumbing.
  b = fx.read_clip(clips_dir, "1088-134315-0000", 4.0)
  original = root / "originals" / "1088-134315-0000.wav"
  original.parent.mkdir()
  sf.write(original, b, SR, subtype="PCM_16")
  transcript = asr.make_recognizer("pocketsphinx").transcribe(
      sf.read(original, dtype="float32")[0]).upper()
  fx.write_sample(root, prompt_id="1088-134315-0000", index=0, waveform=b,
                  speaker_id="1088", mode="resynthesis",
                  prompt_seconds=PROMPT_SECONDS, prompt_path=str(original),
                  transcript=transcript)
  # 4. Its Lyra resynthesis (Google's released SoundStream).
  lyra = base.make_acoustic_tokenizer("lyra", model_dir=str(lyra_dir))
  resynth = lyra.decode(lyra.encode(b))[:len(b)]
  fx.write_sample(root, prompt_id="1088-134315-0000", index=1,
                  waveform=resynth, speaker_id="1088", mode="resynthesis",
                  prompt_seconds=PROMPT_SECONDS, transcript=transcript)
  # 5. Another speaker (the control of speaker similarity).
  c = fx.read_clip(clips_dir, "198-209-0000", 4.0)
  fx.write_sample(root, prompt_id="198-209-0000", index=0, waveform=c,
                  speaker_id="198", mode="continuation",
                  prompt_seconds=PROMPT_SECONDS)
  # 6. Broken: an unknown mode -> dead letter, the job goes on.
  bad = fx.write_sample(root, prompt_id="broken", index=0, waveform=c,
                        speaker_id="198", mode="continuation",
                        prompt_seconds=PROMPT_SECONDS)
  meta = json.loads(bad.read_text())
  bad.write_text(json.dumps(dict(meta, mode="bogus")))
  return root


@pytest.fixture(scope="module")
def report(generated_dir, tmp_path_factory):
  out = tmp_path_factory.mktemp("evaluation")
  rep = continuations.run([f"--generated={generated_dir}",
                           f"--output_dir={out}"])
  return out, rep


def test_job_writes_json_markdown_and_plots(report):
  out, rep = report
  on_disk = json.loads((out / "evaluation.json").read_text())
  assert on_disk["summary"] == rep["summary"]
  assert rep["summary"]["samples"] == 5 and rep["summary"]["failed"] == 1
  assert rep["counters"]["evaluated"] == 5 and rep["counters"]["failed"] == 1
  assert rep["counters"]["audio_ms"] == 5 * 4000
  assert "bogus" in rep["dead_letters"][0]["reason"]
  assert (out / "dead_letter.jsonl").read_text().count("\n") == 1
  for png in ("speaker_similarity.png", "acoustic_consistency.png"):
    assert (out / png).read_bytes()[:4] == b"\x89PNG"
  md = (out / "evaluation.md").read_text()
  assert f"| {constants.PAPER_ASR_WER} | {constants.PAPER_ASR_CER} |" in md
  assert "| resynthesis | 2 |" in md and "| continuation | 3 |" in md


def test_job_metrics_per_sample(report):
  _, rep = report
  s = {r["key"]: r for r in rep["samples"]}
  assert sorted(s) == ["1088-134315-0000/sample-0", "1088-134315-0000/sample-1",
                       "198-209-0000/sample-0", "2412-153948-0000/sample-0",
                       "2412-153948-0000/sample-1"]
  # Identical resynthesis: WER 0 against the transcript and for the original.
  exact = s["1088-134315-0000/sample-0"]
  assert exact["wer"] == 0.0 and exact["cer"] == 0.0
  assert exact["wer_original"] == 0.0
  assert exact["seconds"] == 4.0
  lyra = s["1088-134315-0000/sample-1"]
  assert lyra["wer"] is not None and lyra["wer"] >= 0.0
  assert "wer_original" not in lyra  # no prompt_path given
  by_mode = rep["summary"]["by_mode"]
  assert by_mode["resynthesis"]["asr_pairs"] == 2
  assert by_mode["resynthesis"]["asr_original_wer"] == 0.0
  assert "asr_wer" not in by_mode["continuation"]  # no reference there
  # The repetition failure is caught, acoustically and in the tokens.
  rep_sample = s["2412-153948-0000/sample-1"]
  assert rep_sample["repeats_prompt"] and rep_sample["repeated_fraction"] == 1.0
  assert rep_sample["token_copy_seconds"] == pytest.approx(2.0)
  assert not s["2412-153948-0000/sample-0"]["repeats_prompt"]
  assert by_mode["continuation"]["repeats_prompt"] == 1
  # Speaker: the repeated prompt is the same audio -> similarity near 1; the
  # control (other speakers) is lower for every sample.
  assert rep_sample["speaker_similarity"] > 0.99
  for r in rep["samples"]:
    assert r["speaker_similarity"] > r["speaker_similarity_other"], r["key"]
    assert "prompt_embedding" not in r
    assert r["continuation_silence_ratio"] >= 0.0


def test_command_user_errors(tmp_path, capsys):
  # Through `python -m` once (the thin command module), then in-process.
  proc = subprocess.run(
      [sys.executable, "-m", "pipelines.evaluate_continuations",
       f"--generated={tmp_path}"],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2
  assert "has no generation.json" in proc.stderr
  assert "Traceback" not in proc.stderr
  fx.write_generation_json(tmp_path)
  for args, message in (
      (["--no_such_flag=1"], "unknown flag --no_such_flag=1"),
      (["--asr=transformers"], "--asr=transformers needs --asr_model"),
      ([], "has no <prompt_id>/sample-<k>.json")):
    assert continuations.main([f"--generated={tmp_path}", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
