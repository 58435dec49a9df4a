"""Audio decoding, the log-mel and Lyra backends, and the k-means codebook."""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from audiolm_t5x import constants
from audiolm_t5x import contract
from audiolm_t5x.pipelines import audio
from audiolm_t5x.pipelines import corpus
from audiolm_t5x.pipelines.tokenizers import base
from audiolm_t5x.pipelines.tokenizers import kmeans
from audiolm_t5x.pipelines.tokenizers import lyra


@pytest.fixture(scope="module")
def clip(clips_dir) -> np.ndarray:
  return audio.decode((clips_dir / "2412-153948-0001.flac").read_bytes())


def _flac(data, rate) -> bytes:
  buf = io.BytesIO()
  sf.write(buf, data, rate, format="FLAC", subtype="PCM_16")
  return buf.getvalue()


# --- audio -------------------------------------------------------------------

def test_decode_resamples_and_downmixes():
  t = np.arange(44100) / 44100
  tone = 0.5 * np.sin(2 * np.pi * 440 * t)
  stats = audio.AudioStats()
  wave = audio.decode(_flac(np.stack([tone, tone], 1), 44100), stats=stats)
  assert stats.resampled and stats.downmixed and stats.source_rate == 44100
  assert wave.shape == (16000,) and wave.dtype == np.float32
  spectrum = np.abs(np.fft.rfft(wave))
  assert abs(np.argmax(spectrum) - 440) <= 1  # 1 Hz bins at 16000 samples


@pytest.mark.parametrize("data, words", [
    (b"", "empty file"),
    (b"RIFF nonsense", "not a readable audio file"),
])
def test_decode_errors_speak(data, words):
  with pytest.raises(audio.AudioError, match=words):
    audio.decode(data)


def test_check_usable():
  with pytest.raises(audio.AudioError, match="too short"):
    audio.check_usable(np.ones(639, np.float32))
  with pytest.raises(audio.AudioError, match="digital silence"):
    audio.check_usable(np.zeros(16000, np.float32))
  audio.check_usable(np.zeros(16000, np.float32), reject_silence=False)


# --- corpus -----------------------------------------------------------------

def test_parse_transcripts_names_file_and_line():
  assert corpus.parse_transcripts("1-2-0000 HELLO WORLD\n\n", path="t") == {
      "1-2-0000": "HELLO WORLD"}
  with pytest.raises(corpus.CorpusError, match=r"x.trans.txt:2"):
    corpus.parse_transcripts("1-2-0000 A\n1-2-0001\n", path="x.trans.txt")


def test_make_items_packs_groups_within_the_limit():
  refs = [corpus.audio_ref(f"/r/s/1/2/1-2-{i:04d}.flac", "/r")
          for i in (2, 0, 1)]
  durations = {r.path: 12.0 for r in refs}
  items = list(corpus.make_items(refs, {r.stem: r.stem for r in refs},
                                 corpus=corpus.LIBRISPEECH, group_seconds=30,
                                 durations=durations))
  assert [i.id for i in items] == ["1-2-0000_0001", "1-2-0002_0002"]
  assert items[0].transcript == "1-2-0000 1-2-0001"


# --- log-mel -------------------------------------------------------------------

def test_logmel_rate_and_streaming_equals_whole_file(clip):
  emb = base.make_semantic_embedder("logmel")
  whole = emb.embed(clip)
  assert whole.shape == (contract.num_semantic_frames(clip.shape[0]), 80)
  stream = emb.new_stream()
  parts = [stream.push(clip[i:i + 5003]) for i in range(0, clip.shape[0], 5003)]
  np.testing.assert_array_equal(np.concatenate(parts + [stream.finish()]),
                                whole)
  # Frame-local: a frame depends only on samples near it.
  head = emb.embed(clip[:32000])
  np.testing.assert_allclose(head[:-2], whole[: head.shape[0] - 2], rtol=1e-5)


# --- Lyra ---------------------------------------------------------------------

def test_lyra_codes_are_reproducible_and_at_50hz(clip, lyra_dir):
  tok = base.make_acoustic_tokenizer("lyra", model_dir=str(lyra_dir))
  codes = tok.encode(clip)
  assert codes.shape == (contract.num_acoustic_frames(clip.shape[0]),
                         constants.LYRA_DEFAULT_LEVELS)
  assert codes.min() >= 0 and codes.max() < 16
  np.testing.assert_array_equal(tok.encode(clip), codes)  # fresh state
  stream = tok.new_stream()
  parts = [stream.push(clip[i:i + 1000]) for i in range(0, clip.shape[0], 1000)]
  np.testing.assert_array_equal(np.concatenate(parts + [stream.finish()]),
                                codes)
  info = tok.info()
  assert info["resolver"] == "xnnpack" and info["levels"] == 30
  assert info["files"]["quantizer.tflite"] == constants.LYRA_FILES[
      "quantizer.tflite"]


def test_lyra_packing_round_trips_and_decodes(clip, lyra_dir):
  raw = base.make_acoustic_tokenizer("lyra", model_dir=str(lyra_dir),
                                     levels=24)
  packed = base.make_acoustic_tokenizer("lyra", model_dir=str(lyra_dir),
                                        levels=24, pack=2)
  assert (packed.levels, packed.codebook_size) == (12, 256)
  a, b = raw.encode(clip[:16000]), packed.encode(clip[:16000])
  np.testing.assert_array_equal(b, a[:, 0::2] + 16 * a[:, 1::2])
  np.testing.assert_array_equal(packed._unpack(b), a)  # pylint: disable=protected-access
  wave = packed.decode(b)
  assert wave.shape == (b.shape[0] * 320,) and np.abs(wave).max() > 0.01
  assert packed.fingerprint != raw.fingerprint


def test_lyra_resolvers_are_recorded_and_differ(clip, lyra_dir):
  x = base.make_acoustic_tokenizer("lyra", model_dir=str(lyra_dir))
  y = base.make_acoustic_tokenizer("lyra", model_dir=str(lyra_dir),
                                   resolver="builtin")
  assert x.fingerprint != y.fingerprint
  assert not np.array_equal(x.encode(clip), y.encode(clip))


def test_lyra_refuses_wrong_files_and_says_where_it_looked(tmp_path, lyra_dir,
                                                           monkeypatch):
  monkeypatch.delenv(lyra.ENV_VAR, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  with pytest.raises(base.TokenizerError, match="not found"):
    base.make_acoustic_tokenizer("lyra", model_dir=str(tmp_path)).load()
  for name in constants.LYRA_FILES:
    shutil.copy(lyra_dir / name, tmp_path / name)
  with open(tmp_path / "quantizer.tflite", "ab") as f:
    f.write(b"\0")
  with pytest.raises(base.TokenizerError, match="sha256"):
    base.make_acoustic_tokenizer("lyra", model_dir=str(tmp_path)).load()
  monkeypatch.setenv(lyra.ENV_VAR, str(lyra_dir))
  assert lyra.resolve_model_dir(None) == str(lyra_dir)


def test_registry_rejects_unknown_backends_and_options():
  with pytest.raises(ValueError, match="unknown acoustic backend"):
    base.make_acoustic_tokenizer("nope")
  with pytest.raises(ValueError, match=(
      r"^acoustic backend 'lyra' has no option 'levls' \(did you mean "
      r"'levels'\?\); it takes download, levels, model_dir, pack, resolver$")):
    base.make_acoustic_tokenizer("lyra", levls=3)
  with pytest.raises(ValueError, match=r"^acoustic backend 'lyra': option "
                     r"levels=\"30\" must be an integer$"):
    base.make_acoustic_tokenizer("lyra", levels="30")
  with pytest.raises(ValueError, match="pack=7 must divide"):
    base.make_acoustic_tokenizer("lyra", levels=30, pack=7)


# --- k-means ---------------------------------------------------------------------

def test_codebook_fit_is_seeded_and_round_trips(tmp_path):
  rng = np.random.default_rng(1)
  centers = rng.normal(scale=10, size=(4, 3))
  frames = (centers[rng.integers(0, 4, 2000)] +
            rng.normal(size=(2000, 3))) * [1, 100, 0.01] + [0, 50, 3]
  a = kmeans.fit_codebook(frames, k=4, seed=0)
  b = kmeans.fit_codebook(frames, k=4, seed=0)
  np.testing.assert_array_equal(a.centroids, b.centroids)
  np.testing.assert_allclose(a.standardize(frames).std(axis=0), 1, rtol=1e-3)
  assert a.provenance["cluster_usage"]["used_clusters"] == 4
  assert a.provenance["inertia_per_frame"] < 3.5  # 3 dims of unit noise
  path = str(tmp_path / "book.npz")
  a.save(path)
  c = kmeans.KMeansCodebook.load(path)
  assert c.fingerprint == a.fingerprint and c.provenance == a.provenance
  np.testing.assert_array_equal(c.quantize(frames), a.quantize(frames))
  assert os.path.exists(path + ".json")
  with np.load(path, allow_pickle=False) as data:  # no pickle inside
    assert set(data.files) == {"centroids", "mean", "std", "provenance"}


def test_fit_kmeans_job_is_deterministic(tmp_path, librispeech_tree):
  from audiolm_t5x.pipelines import fit_kmeans  # pylint: disable=g-import-not-at-top

  books = []
  for name in ("a.npz", "b.npz"):
    fit_kmeans.run([f"--input_dir={librispeech_tree}",
                    f"--output={tmp_path / name}", "--k=8", "--seed=3",
                    "--frames_per_file=50", "--max_frames=250"])
    books.append(kmeans.KMeansCodebook.load(str(tmp_path / name)))
  assert books[0].fingerprint == books[1].fingerprint
  prov = books[0].provenance
  assert prov["num_frames"] == 250 and prov["backend"] == "logmel"
  assert prov["seed"] == 3 and prov["k"] == 8


def test_lyra_download_verifies_and_caches(tmp_path, lyra_dir, monkeypatch):
  import urllib.error  # pylint: disable=g-import-not-at-top
  import urllib.request  # pylint: disable=g-import-not-at-top

  monkeypatch.delenv(lyra.ENV_VAR, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  fetched = []

  def fake_fetch(url, dest):  # serves the team's copy as if from GitHub
    assert url.startswith("https://raw.githubusercontent.com/google/lyra/")
    fetched.append(url.rsplit("/", 1)[1])
    shutil.copy(lyra_dir / fetched[-1], dest)

  monkeypatch.setattr(urllib.request, "urlretrieve", fake_fetch)
  tok = base.make_acoustic_tokenizer("lyra", download=True)
  tok.load()
  assert sorted(fetched) == sorted(constants.LYRA_FILES)
  assert tok.model_dir == lyra.default_cache_dir()
  assert tok.model_dir.startswith(str(tmp_path))
  lyra.download_model()  # cached and verified: nothing fetched again
  assert len(fetched) == len(constants.LYRA_FILES)

  def offline(url, dest):
    raise urllib.error.URLError("no network")

  monkeypatch.setattr(urllib.request, "urlretrieve", offline)
  with pytest.raises(base.TokenizerError, match="--lyra_dir"):
    lyra.download_model(str(tmp_path / "elsewhere"))


def test_backends_pickle_settings_not_models(clip, lyra_dir):
  import pickle  # pylint: disable=g-import-not-at-top

  tok = base.make_acoustic_tokenizer("lyra", model_dir=str(lyra_dir))
  codes = tok.encode(clip[:16000])  # loaded
  copy = pickle.loads(pickle.dumps(tok))
  assert copy._quantizer is None and copy._files is None  # pylint: disable=protected-access
  np.testing.assert_array_equal(copy.encode(clip[:16000]), codes)
  assert tok.streaming and base.make_semantic_embedder("logmel").streaming
