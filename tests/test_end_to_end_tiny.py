"""End to end with T5X: the tiny trained stages of the shared fixture, through
generation and every evaluation (issue 10's acceptance).

The three tiny stages (``tests/t5x_fixtures.py``, trained once per session by
T5X's own binary) continue the team's real clips and resynthesise one of them
through the generation job, decoded with the real Lyra files; then the
continuation evaluation job, the LM pair scores on the espeak-ng smoke set
(stage-1 checkpoint) and the synthetic-speech detector run on those outputs.
Every figure here comes from random-ish weights trained 2 steps: it checks the
plumbing, never quality (labelled "tiny" where the command takes a label).
Skips without T5X.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import soundfile as sf

from audiolm_t5x import constants
from audiolm_t5x.pipelines.evaluation import asr
from audiolm_t5x.pipelines.evaluation import continuations
from audiolm_t5x.pipelines.evaluation import detector
from audiolm_t5x.pipelines.evaluation import lm_scores
from audiolm_t5x.pipelines.generation import job
from tests import t5x_fixtures
from tests import test_evaluation_lm_scores as lm_tests
from tests import test_generation_t5x as gen_tests

pytestmark = pytest.mark.skipif(not t5x_fixtures.HAVE_T5X,
                                reason=t5x_fixtures.NO_T5X)
SR = constants.SAMPLE_RATE
CLIP = gen_tests.CLIP
PROMPT_SECONDS = 2.0
SECONDS = 3.2  # 1.2 s generated after the prompt: one 1 s detector crop


def _generate(ckpts, prompts, out, mode, kmeans, lyra_dir):
  return job.run([
      f"--prompts={prompts}", f"--output_dir={out}", f"--mode={mode}",
      f"--kmeans={kmeans}", f"--lyra_dir={lyra_dir}",
      *[f"--acoustic_option={k}={v}" for k, v in gen_tests.TEST_LYRA],
      "--gin_file=models/tiny.gin",
      *[f"--{s}_checkpoint={ckpts[s]}" for s in t5x_fixtures.STAGES],
      f"--seconds={SECONDS}", f"--prompt_seconds={PROMPT_SECONDS}",
      "--batch_size=8", "--seed=0"])


def test_tiny_models_through_generation_and_every_evaluation(
    tiny_checkpoints, kmeans_codebook, lyra_dir, clips_dir, tmp_path,
    monkeypatch):
  monkeypatch.setenv("AUDIOLM_DATA_DIR", tiny_checkpoints.data_dir)
  clips = sorted(clips_dir.glob("*.flac"))
  n_clips = len(clips)
  assert n_clips >= 2

  # 1. Continuations of every clip's first 2 s (1 sample each).
  cont = tmp_path / "continuations"
  summary = _generate(tiny_checkpoints, clips_dir, cont, "continuation",
                      kmeans_codebook, lyra_dir)
  assert summary["counts"]["samples_written"] == n_clips
  for clip in clips:
    audio, rate = sf.read(cont / clip.stem / "sample-0.wav", dtype="float32")
    assert (rate, audio.shape) == (SR, (int(SECONDS * SR),))

  # 2. One resynthesis (the clip's real semantic tokens -> stages 2 and 3),
  # from a LibriSpeech-shaped folder whose transcript is pocketsphinx's
  # reading of the clip's first SECONDS (the clips came without text).
  speaker, chapter, _ = CLIP.split("-")
  src = tmp_path / "prompts" / speaker / chapter
  src.mkdir(parents=True)
  os.symlink(clips_dir / f"{CLIP}.flac", src / f"{CLIP}.flac")
  wave, _ = sf.read(clips_dir / f"{CLIP}.flac", dtype="float32")
  text = asr.make_recognizer("pocketsphinx").transcribe(
      wave[:int(SECONDS * SR)]).upper()
  assert text.strip()
  (src / f"{speaker}-{chapter}.trans.txt").write_text(f"{CLIP} {text}\n")
  resyn = tmp_path / "resynthesis"
  summary = _generate(tiny_checkpoints, src / f"{CLIP}.flac", resyn,
                      "resynthesis", kmeans_codebook, lyra_dir)
  assert summary["counts"]["samples_written"] == 1
  meta = json.loads((resyn / CLIP / "sample-0.json").read_text())
  assert meta["mode"] == "resynthesis" and meta["transcript"] == text

  # 3. The continuation evaluation job on both outputs.
  rep = continuations.run([f"--generated={cont}",
                           f"--output_dir={tmp_path / 'eval_cont'}"])
  on_disk = json.loads((tmp_path / "eval_cont" / "evaluation.json").read_text())
  assert on_disk["summary"] == rep["summary"]
  assert rep["summary"]["samples"] == n_clips and rep["summary"]["failed"] == 0
  assert rep["counters"]["audio_ms"] == round(n_clips * SECONDS * 1000)
  for r in rep["samples"]:
    assert -1.0 <= r["speaker_similarity"] <= 1.0
    assert -1.0 <= r["speaker_similarity_other"] <= 1.0
    assert 0.0 <= r["continuation_silence_ratio"] <= 1.0
  assert "asr_wer" not in rep["summary"]["by_mode"]["continuation"]
  rep = continuations.run([f"--generated={resyn}",
                           f"--output_dir={tmp_path / 'eval_resyn'}"])
  assert rep["summary"]["samples"] == 1 and rep["summary"]["failed"] == 0
  (s,) = rep["samples"]
  assert math.isfinite(s["wer"]) and s["wer"] >= 0.0
  assert math.isfinite(s["cer"]) and s["cer"] >= 0.0
  # The original (prompt_path) is the whole clip, read against the reference
  # of its first SECONDS: a finite figure, above 0.
  assert math.isfinite(s["wer_original"]) and s["wer_original"] > 0.0
  assert s["asr_original"].upper().startswith(text.split()[0])
  by_mode = rep["summary"]["by_mode"]["resynthesis"]
  assert by_mode["asr_pairs"] == 1 and math.isfinite(by_mode["asr_wer"])
  assert (tmp_path / "eval_resyn" / "evaluation.md").is_file()

  # 4. LM pair scores with the tiny stage-1 checkpoint (lexical smoke set).
  if __import__("shutil").which("espeak-ng") is None:
    pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
  lm_out = tmp_path / "lm_scores"
  rep = lm_scores.run([
      f"--data_dir={tmp_path / 'smoke'}", "--make_smoke_set",
      "--tasks=lexical", f"--checkpoint={tiny_checkpoints.semantic}",
      f"--kmeans={kmeans_codebook}", f"--output_dir={lm_out}",
      *[f"--gin_file={g}" for g in lm_tests.TINY_GIN]])
  on_disk = json.loads((lm_out / "lm_scores.json").read_text())
  assert on_disk["smoke_set"] is True and sorted(on_disk["tasks"]) == [
      "lexical"]
  lex = rep["tasks"]["lexical"]["summary"]
  assert lex["pairs"] == len(lm_scores.SMOKE_WORDS) * len(
      lm_scores.SMOKE_VOICES)
  assert 0.0 <= lex["accuracy_summed"] <= 100.0
  assert 0.0 <= lex["accuracy_normalised"] <= 100.0
  assert "SMOKE SET" in (lm_out / "lm_scores.md").read_text()

  # 5. The detector: the real clips against the generated continuations.
  det = tmp_path / "detector"
  rep = detector.run([
      f"--real={clips_dir}", f"--generated={cont}", f"--output_dir={det}",
      "--test_fraction=0.4", "--max_steps=2", "--batch_size=16", "--width=4",
      "--label=tiny"])
  assert sorted(rep["results"]) == ["generated"]
  r = rep["results"]["generated"]
  n = r["clips_per_class"]
  cm = np.array(r["confusion_matrix"])
  assert n >= 1 and cm.shape == (2, 2) and cm.sum() == 2 * n
  assert cm[0].sum() == n and cm[1].sum() == n  # balanced
  assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["roc_auc"] <= 1.0
  assert not set(rep["test"]["speaker_ids"]) & set(rep["train"]["speaker_ids"])
  on_disk = json.loads((det / "detector_report.json").read_text())
  assert on_disk["label"] == "tiny"
  assert (det / "roc.png").read_bytes()[:4] == b"\x89PNG"
