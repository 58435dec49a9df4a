"""Reconstruction scores through Lyra on the team's clips; the command."""

import json

import numpy as np
import pytest

from audiolm_t5x import constants
from audiolm_t5x.pipelines.evaluation import reconstruction

CLIPS = ("2412-153948-0001", "198-209-0000")
SECONDS = 3.0  # ViSQOL costs about 0.2 s of CPU per second of audio


def _clip(clips_dir, name):
  import soundfile as sf  # pylint: disable=g-import-not-at-top

  wave, rate = sf.read(str(clips_dir / f"{name}.flac"), dtype="float32")
  assert rate == constants.SAMPLE_RATE
  return wave[rate:int(rate * (1 + SECONDS))]


def test_codec_settings_and_bitrates(lyra_dir):
  s = reconstruction.CodecSetting.parse("lyra:pack=2,levels=24")
  assert s.label == "lyra:levels=24,pack=2"
  tok = s.make(model_dir=str(lyra_dir))
  assert (tok.levels, tok.codebook_size) == (12, 256)
  rates = [reconstruction.bitrate_kbps(reconstruction.CodecSetting.parse(
      f"lyra:levels={n}").make(model_dir=str(lyra_dir))) for n in (16, 30, 46)]
  assert rates == pytest.approx([3.2, 6.0, 9.2])
  assert reconstruction.bitrate_kbps(tok) == pytest.approx(4.8)


def test_align_finds_a_known_lag():
  rng = np.random.default_rng(0)
  ref = rng.normal(size=4000)
  late = np.concatenate([np.zeros(37), ref])[:4000]
  r, d, lag = reconstruction.align(ref, late, max_lag=100)
  assert lag == 37 and np.allclose(r, d)


def test_lyra_more_bits_better_pesq_and_stoi(clips_dir, lyra_dir):
  scorer = reconstruction.Scorer(("pesq", "stoi"))
  means = {}
  for levels in (16, 30, 46):  # 3.2, 6, 9.2 kbps
    tok = reconstruction.CodecSetting.parse(f"lyra:levels={levels}").make(
        model_dir=str(lyra_dir))
    rows = [reconstruction.reconstruct_and_score(_clip(clips_dir, c), tok,
                                                 scorer) for c in CLIPS]
    assert all(r["lag_samples"] == 0 for r in rows)
    means[levels] = {m: np.mean([r[m] for r in rows]) for m in ("pesq", "stoi")}
  for m in ("pesq", "stoi"):
    assert means[16][m] < means[30][m] < means[46][m], (m, means)
  assert 1.0 < means[16]["pesq"] and means[46]["pesq"] < 4.7
  assert 0.8 < means[16]["stoi"] and means[46]["stoi"] < 1.0


def test_visqol_of_a_clip_against_itself_is_near_the_maximum(clips_dir):
  scorer = reconstruction.Scorer(("visqol", "pesq", "stoi"))
  wave = _clip(clips_dir, CLIPS[0]).astype(np.float64)
  s = scorer.score(wave, wave)
  # Speech mode's lattice mapper tops out near 4.7 (the C++ tool's 4.75).
  assert s["visqol"] > 4.5
  assert s["pesq"] > 4.5 and s["stoi"] > 0.999
  with pytest.raises(reconstruction.ReconstructionError, match="too short"):
    scorer.score(wave[:1000], wave[:1000])
  with pytest.raises(reconstruction.ReconstructionError, match="NaN"):
    scorer.score(wave, np.full_like(wave, np.nan))


def test_evaluate_tokens_command(tmp_path, clips_dir, lyra_dir, capsys):
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines.evaluation import token_quality  # pylint: disable=g-import-not-at-top

  audio_dir = tmp_path / "audio"
  audio_dir.mkdir()
  sf.write(str(audio_dir / "good.wav"), _clip(clips_dir, CLIPS[0])[:32000],
           16000)
  sf.write(str(audio_dir / "short.wav"), np.full(300, 0.1, np.float32), 16000)
  (audio_dir / "broken.flac").write_bytes(b"not audio at all")
  # A tiny item set over the good file: two phones, one speaker.
  items = tmp_path / "tiny.item"
  items.write_text("#file onset offset #phone prev-phone next-phone speaker\n"
                   "good 0.0 0.3 a x y s1\ngood 0.3 0.6 a x y s1\n"
                   "good 0.6 0.9 b x y s1\ngood 0.9 1.2 b x y s1\n"
                   "good 2.5 9.0 b x y s1\n")
  out = tmp_path / "out"
  fig = token_quality.run([
      f"--output_dir={out}", f"--item_file={items}",
      f"--item_audio_dir={audio_dir}", "--kmeans_k=8,100000",
      f"--audio_dir={audio_dir}", "--codec=lyra:levels=16",
      f"--lyra_dir={lyra_dir}", "--metrics=pesq,stoi"])
  saved = json.loads((out / "token_quality.json").read_text())
  assert saved["paper"]["abx_percent"]["semantic (w2v-BERT XL layer 7, "
                                       "k-means K=1024)"]["within"] == 6.7
  abx_rows = {(r["features"], r["k"], r["distance"]): r for r in saved["abx"]}
  cont = abx_rows[("continuous", None, "angular")]
  assert cont["num_items"] == 4 and cont["num_skipped"] == 1  # past the end
  assert cont["within_triplets"] == 8
  capped = [r for r in saved["abx"] if r["k_requested"] == 100000]
  assert capped and all(r["k_capped"] and r["k"] == 50 for r in capped)
  (rec,) = saved["reconstruction"]
  assert rec["files"] == 1 and rec["bitrate_kbps"] == pytest.approx(3.2)
  failed = {f["path"].rsplit("/", 1)[-1] for f in saved["failures"]}
  assert failed == {"short.wav", "broken.flac"}
  for name in ("token_quality.md", "abx.png", "reconstruction.png"):
    assert (out / name).stat().st_size > 0
  assert "SoundStream, 6 kbps" in (out / "token_quality.md").read_text()
  assert fig["num_failures"] == 2
  assert "done in" in capsys.readouterr().out


@pytest.mark.parametrize("flags, message", [
    (["--output_dir=/tmp/x", "--audio_dir=/tmp", "--no_such_flag=1"],
     "unknown flag --no_such_flag"),
    (["--output_dir=/tmp/x", "--espeak_set", "--kmeans_k=a,b"],
     "--kmeans_k must be comma-separated integers"),
    (["--output_dir=/tmp/x"], "nothing to measure"),
    (["--output_dir=gs://bucket/x", "--espeak_set"], "needs a local"),
])
def test_user_errors_exit_2(flags, message, capsys):
  from audiolm_t5x.pipelines.evaluation import token_quality  # pylint: disable=g-import-not-at-top

  assert token_quality.main(flags) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1, err  # one line
  assert message in err and "Traceback" not in err


def test_report_plots_abx_against_layer(tmp_path):
  from audiolm_t5x.pipelines.evaluation import report  # pylint: disable=g-import-not-at-top

  def row(sem, k, within):
    return {"kind": "abx", "set": "s", "semantic": sem,
            "features": "continuous" if k is None else "kmeans", "k": k,
            "k_requested": k, "distance": "angular", "within": within,
            "across": within + 0.1, "num_items": 10, "num_skipped": 0,
            "skipped_reasons": {}, "within_triplets": 4,
            "across_triplets": 8, "within_phone_pairs": 2,
            "across_phone_pairs": 2, "cpu_seconds": 0.1}

  rows = [row("hubert:layer=3,model=/m", None, 0.2),
          row("hubert:layer=6,model=/m", None, 0.1),
          row("hubert:layer=6,model=/m", 64, 0.15), row("logmel", None, 0.3)]
  fig = report.aggregate(rows, [])
  groups = report.abx_by_layer(fig)
  assert list(groups) == [("s", "hubert:model=/m", "continuous", None,
                           "angular")]
  assert [(l, r["within_percent"]) for l, r in groups[list(groups)[0]]] == [
      (3, pytest.approx(20.0)), (6, pytest.approx(10.0))]
  assert report.plot_abx_layers(fig, str(tmp_path / "layers.png"))
  assert (tmp_path / "layers.png").stat().st_size > 0
