"""The synthetic-speech detector: the team's real clips against their Lyra
resyntheses, trained a few steps (this checks the pipeline, not accuracy)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from audiolm_t5x import constants
from audiolm_t5x.pipelines.evaluation import detector
from tests import evaluation_fixtures as fx


def test_crops_and_log_mel_shapes():
  wave = np.zeros(int(2.5 * constants.SAMPLE_RATE), np.float32)
  c = detector.crops(wave)
  assert c.shape == (2, constants.SAMPLE_RATE)  # the 0.5 s tail is dropped
  assert detector.log_mel(c).shape == (2, 98, detector.NUM_MELS, 1)


def test_speaker_disjoint_split_and_balance():
  clips = [detector.Clip(f"/x/{s}-1-{i}.flac", label, "real" if not label
                         else "codec", s)
           for s in ("1", "2", "3", "4", "5") for i in range(2)
           for label in (0, 1)]
  train, test = detector.split_speakers(clips, test_fraction=0.4)
  assert len({c.speaker for c in test}) == 2
  assert not {c.speaker for c in train} & {c.speaker for c in test}
  assert len(train) + len(test) == len(clips)
  assert detector.split_speakers(clips, test_fraction=0.4) == (train, test)
  real, fake = detector.balanced(clips[:6], clips[6:9])
  assert len(real) == len(fake) == 3
  with pytest.raises(ValueError, match="at least 2 speakers"):
    detector.split_speakers(clips[:2], test_fraction=0.5)
  assert detector.speaker_of("/d/2412-153948-0000.flac") == "2412"
  assert detector.speaker_of("/d/spk7/utt.wav") == "spk7"


def test_generated_negatives_start_after_the_prompt(tmp_path, clips_dir):
  wave = fx.read_clip(clips_dir, "198-209-0000", 3.5)
  fx.write_generation_json(tmp_path)
  fx.write_sample(tmp_path, prompt_id="p", index=0, waveform=wave,
                  speaker_id="198", mode="continuation", prompt_seconds=1.5)
  clip, = detector.list_generated(str(tmp_path))
  assert (clip.label, clip.kind, clip.speaker) == (1, "generated", "198")
  assert len(detector.load_waveform(clip)) == 2 * constants.SAMPLE_RATE


def test_detector_trains_on_clips_vs_lyra_and_evaluates(clips_dir, lyra_dir,
                                                        tmp_path):
  # Generated negatives in the generation layout: a 2 s real prompt, then 5 s
  # that are not the real audio (the Lyra resynthesis of the clip's rest).
  from audiolm_t5x.pipelines.tokenizers import base
  lyra = base.make_acoustic_tokenizer("lyra", model_dir=str(lyra_dir))
  generated = tmp_path / "generated"
  fx.write_generation_json(generated)
  for path in sorted(clips_dir.glob("*.flac")):
    wave = fx.read_clip(clips_dir, path.stem, 7.0)
    rest = lyra.decode(lyra.encode(wave[2 * constants.SAMPLE_RATE:]))
    fx.write_sample(generated, prompt_id=path.stem, index=0,
                    waveform=np.concatenate([wave[:2 * constants.SAMPLE_RATE],
                                             rest]),
                    speaker_id=path.stem.split("-")[0], mode="continuation",
                    prompt_seconds=2.0)
  out = tmp_path / "detector"
  rep = detector.run([
      f"--real={clips_dir}", f"--generated={generated}", "--codec_backend=lyra",
      f"--acoustic_option=model_dir={lyra_dir}", f"--output_dir={out}",
      "--test_fraction=0.4", "--max_steps=4", "--batch_size=16", "--width=4",
      "--label=tiny"])
  assert len(list((out / "codec_negatives").glob("*.wav"))) == 6
  assert rep["test"]["speakers"] == 2 and rep["train"]["speakers"] == 3
  assert not set(rep["test"]["speaker_ids"]) & set(rep["train"]["speaker_ids"])
  assert sorted(rep["results"]) == ["codec", "generated"]  # reported apart
  gen = rep["results"]["generated"]
  assert np.array(gen["confusion_matrix"]).sum() == 2 * gen["clips_per_class"]
  # Real test clips (10-17 s) give >= 10 crops each, generated ones 5 (the
  # 5 s after the prompt).
  assert gen["crops"] >= gen["clips_per_class"] * (10 + 5)
  r = rep["results"]["codec"]
  n = r["clips_per_class"]
  assert n >= 1
  cm = np.array(r["confusion_matrix"])
  assert cm.shape == (2, 2) and cm.sum() == 2 * n
  assert cm[0].sum() == n and cm[1].sum() == n  # balanced
  assert r["accuracy"] == pytest.approx((cm[0, 0] + cm[1, 1]) / (2 * n))
  assert 0.0 <= r["roc_auc"] <= 1.0
  assert r["crops"] >= 2 * n * 10  # clips are 10-17 s: >= 10 crops each
  assert (out / "roc.png").read_bytes()[:4] == b"\x89PNG"
  assert (out / "detector.keras").is_file()
  md = (out / "detector_report.md").read_text()
  assert "(tiny)" in md and str(constants.PAPER_DETECTOR_ACCURACY) in md
  assert json.loads((out / "detector_report.json").read_text())[
      "label"] == "tiny"
  # The saved model loads and gives the same crop scores.
  import keras
  model = keras.models.load_model(out / "detector.keras")
  clip = detector.Clip(str(clips_dir / "2412-153948-0000.flac"), 0, "real",
                       "2412")
  x, _, _ = detector.features([clip])
  assert model.predict(x[:2], verbose=0).shape == (2, 1)
