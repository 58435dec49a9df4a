"""The transformers backends, on tiny random models of the real classes.

Weights cannot be downloaded here: each fixture builds a tiny randomly
initialised config of the same model class (DAC in the 16 kHz geometry:
ratios 2, 4, 5, 8, hop 320, 12 codebooks of 1024), saves it with
save_pretrained, and the backend loads it through its real loading code.
"""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from audiolm_t5x import constants  # noqa: E402
from audiolm_t5x.pipelines.tokenizers import base  # noqa: E402
from audiolm_t5x.pipelines.tokenizers import torch_backend  # noqa: E402
from audiolm_t5x.pipelines.tokenizers import w2v_bert  # noqa: E402

S = constants.SEMANTIC_FRAME_SAMPLES
A = constants.ACOUSTIC_FRAME_SAMPLES
TINY = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
            intermediate_size=64)
# Mixed lengths: whole frames, partial frames, shorter than one frame.
LENGTHS = (16000, 23456, 9000, 700, 100, 12345)


def _waves(*lengths, seed=0):
  rng = np.random.default_rng(seed)
  return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
  root = tmp_path_factory.mktemp("hf")
  torch.manual_seed(0)
  paths = {}

  def save(name, model, extractor=None):
    paths[name] = str(root / name)
    model.save_pretrained(paths[name])
    if extractor is not None:
      extractor.save_pretrained(paths[name])

  save("w2v_bert", transformers.Wav2Vec2BertModel(
      transformers.Wav2Vec2BertConfig(conv_depthwise_kernel_size=5, **TINY)),
       transformers.SeamlessM4TFeatureExtractor())
  conv = dict(conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
              num_conv_pos_embedding_groups=2)
  # HuBERT base layout: GroupNorm front end, post-norm Transformer.
  save("hubert", transformers.HubertModel(
      transformers.HubertConfig(feat_extract_norm="group", **conv, **TINY)),
       transformers.Wav2Vec2FeatureExtractor(do_normalize=False))
  # wav2vec 2.0 large layout: LayerNorm front end, pre-norm Transformer.
  save("wav2vec2", transformers.Wav2Vec2Model(
      transformers.Wav2Vec2Config(feat_extract_norm="layer",
                                  do_stable_layer_norm=True, **conv, **TINY)),
       transformers.Wav2Vec2FeatureExtractor(do_normalize=True,
                                             return_attention_mask=True))
  save("dac", transformers.DacModel(transformers.DacConfig(
      encoder_hidden_size=4, downsampling_ratios=[2, 4, 5, 8],
      decoder_hidden_size=16, n_codebooks=12, codebook_size=1024,
      codebook_dim=8, sampling_rate=16000)))
  encodec = transformers.EncodecModel(transformers.EncodecConfig(
      hidden_size=16, num_filters=4, num_lstm_layers=1))
  for layer in encodec.quantizer.layers:  # initialised to zeros otherwise
    layer.codebook.embed.normal_()
  save("encodec", encodec)
  return paths


def test_importing_loads_no_framework():
  code = ("import sys; import audiolm_t5x.pipelines.tokenizers; "
          "print(sorted(m for m in ('torch', 'transformers', 'tensorflow', "
          "'huggingface_hub') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, check=True,
                       cwd=os.path.dirname(os.path.dirname(__file__)))
  assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["w2v_bert", "hubert", "wav2vec2"])
def test_semantic_frames_follow_the_contract(models, name):
  emb = base.make_semantic_embedder(name, model=models[name], layer=2,
                                    device="cpu")
  for w, out in zip(_waves(*LENGTHS), emb.embed_batch(_waves(*LENGTHS))):
    assert out.shape == (len(w) // S, 32) and out.dtype == np.float32
  info = emb.info()
  assert info["rate_hz"] == 25 and info["dim"] == 32 and info["layer"] == 2


@pytest.mark.parametrize("name", ["w2v_bert", "hubert", "wav2vec2"])
def test_semantic_batched_equals_unbatched(models, name):
  """Padding + attention masks (GroupNorm front end: per input); 1e-4."""
  emb = base.make_semantic_embedder(name, model=models[name], layer=2,
                                    device="cpu", batch_size=4)
  waves = _waves(*LENGTHS)
  for w, b in zip(waves, emb.embed_batch(waves)):
    np.testing.assert_allclose(b, emb.embed(w), atol=1e-4, rtol=1e-4)


def test_group_norm_front_end_would_differ_if_padded(models):
  """Why HuBERT base runs its front end per input: padding changes it."""
  emb = base.make_semantic_embedder("hubert", model=models["hubert"], layer=2,
                                    device="cpu")
  emb.load()
  short, long = _waves(9000, 16000)
  fe = emb._model.feature_extractor  # pylint: disable=protected-access
  with torch.inference_mode():
    alone = fe(torch.from_numpy(short)[None])
    padded = fe(torch.from_numpy(np.pad(short, (0, 7000)))[None])
  assert (alone - padded[..., :alone.shape[-1]]).abs().max() > 1e-3


def test_w2v_bert_layer_and_pairing_match_transformers(models):
  """embed == HF's hidden_states[layer], 50 Hz frames averaged in pairs."""
  w = _waves(16000 + 999)[0]
  fe = transformers.SeamlessM4TFeatureExtractor.from_pretrained(
      models["w2v_bert"])
  model = transformers.Wav2Vec2BertModel.from_pretrained(
      models["w2v_bert"]).eval()
  inputs = fe(w, sampling_rate=16000, return_tensors="pt")
  with torch.inference_mode():
    states = model(**inputs, output_hidden_states=True).hidden_states
  for layer in (1, 2, 3):
    h = states[layer][0].numpy()
    t = len(w) // S
    h = np.concatenate([h, h[-1:]])[:2 * t]  # 49 frames -> 2 * 25
    want = (h[0::2] + h[1::2]) / 2
    got = base.make_semantic_embedder("w2v_bert", model=models["w2v_bert"],
                                      layer=layer, device="cpu").embed(w)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_vectorised_fbank_equals_the_extractor(models):
  fe = transformers.SeamlessM4TFeatureExtractor.from_pretrained(
      models["w2v_bert"])
  emb = base.make_semantic_embedder("w2v_bert", model=models["w2v_bert"],
                                    layer=1, device="cpu")
  emb.load()
  for w in _waves(640, 16000 + 123, 3 * 16000 + 77, seed=6):
    np.testing.assert_array_equal(
        w2v_bert.seamless_fbank(fe, w, block_frames=50),
        fe._extract_fbank_features(w))  # pylint: disable=protected-access
    want = fe(w, sampling_rate=16000, return_tensors="np")
    n = int(want["attention_mask"][0].sum())
    np.testing.assert_allclose(
        emb._prepare(w), want["input_features"][0, :n], atol=1e-5)  # pylint: disable=protected-access


def test_semantic_windows_align_with_the_whole_input(models):
  """With a frame-local output (layer 0: the feature projection), windowing
  changes nothing: windows fall on the 25 Hz grid."""
  whole = base.make_semantic_embedder("w2v_bert", model=models["w2v_bert"],
                                      layer=0, device="cpu")
  windowed = base.make_semantic_embedder(
      "w2v_bert", model=models["w2v_bert"], layer=0, device="cpu",
      window_seconds=1.0, context_seconds=0.2)
  w = _waves(4 * 16000 + 777)[0]
  np.testing.assert_allclose(windowed.embed(w), whole.embed(w), atol=1e-5)


def test_semantic_windowed_residual_is_small_with_context(models):
  """Transformers see the whole window; with context the cores stay close."""
  w = _waves(4 * 16000)[0]
  whole = base.make_semantic_embedder("w2v_bert", model=models["w2v_bert"],
                                      device="cpu", layer=3).embed(w)
  for context, bound in ((0.04, None), (1.0, 0.05)):
    got = base.make_semantic_embedder(
        "w2v_bert", model=models["w2v_bert"], layer=3, device="cpu",
        window_seconds=1.0 + 2 * context, context_seconds=context).embed(w)
    rel = np.linalg.norm(got - whole, axis=1) / np.linalg.norm(whole, axis=1)
    if bound is None:
      no_context = rel.max()
    else:
      assert rel.max() < bound and rel.max() < no_context


def test_dac_codes_and_levels(models):
  tok = base.make_acoustic_tokenizer("dac", model=models["dac"], device="cpu")
  four = base.make_acoustic_tokenizer("dac", model=models["dac"], levels=4,
                                      device="cpu")
  waves = _waves(*LENGTHS)
  codes = tok.encode_batch(waves)
  for w, c, c4 in zip(waves, codes, four.encode_batch(waves)):
    assert c.shape == (len(w) // A, 12) and c.dtype == np.int64
    np.testing.assert_array_equal(c4, c[:, :4])
  assert np.concatenate(codes).max() < 1024
  info = tok.info()
  assert (info["levels"], info["codebook_size"], info["rate_hz"]) == (12, 1024,
                                                                      50)
  audio = tok.decode(codes[0])
  assert audio.shape == (len(codes[0]) * A,)


def test_dac_batched_equals_unbatched_exactly(models):
  """Masked convolution inputs reproduce each input's own zero padding."""
  tok = base.make_acoustic_tokenizer("dac", model=models["dac"], device="cpu")
  waves = _waves(*LENGTHS, seed=3)
  for w, b in zip(waves, tok.encode_batch(waves)):
    np.testing.assert_array_equal(b, tok.encode(w))


def test_dac_plain_padding_would_change_the_last_frames(models):
  """Why the masking exists: a zero-padded batch changes the end's codes."""
  tok = base.make_acoustic_tokenizer("dac", model=models["dac"], device="cpu")
  tok.load()
  short, long = _waves(8000, 16000, seed=3)
  x = torch.from_numpy(np.stack([np.pad(short, (0, 8000)), long]))[:, None]
  with torch.inference_mode():
    padded = tok._model.encode(x).audio_codes[0].T.numpy()  # pylint: disable=protected-access
  alone = tok.encode(short)
  assert (padded[:len(alone)] != alone).any(axis=1)[-10:].any()
  np.testing.assert_array_equal(padded[:10], alone[:10])


def test_dac_windows_equal_the_whole_input(models):
  """1 s of context covers DAC's receptive field: codes are exact."""
  w = _waves(5 * 16000 + 123, seed=4)[0]
  whole = base.make_acoustic_tokenizer("dac", model=models["dac"],
                                       device="cpu", window_seconds=0)
  windowed = base.make_acoustic_tokenizer(
      "dac", model=models["dac"], device="cpu", window_seconds=3.0,
      context_seconds=1.0)
  np.testing.assert_array_equal(windowed.encode(w), whole.encode(w))


def test_encodec_75hz_frames_levels_and_batching(models):
  tok = base.make_acoustic_tokenizer("encodec", model=models["encodec"],
                                     device="cpu", levels=4)
  waves = _waves(*LENGTHS, seed=5)
  for w, b in zip(waves, tok.encode_batch(waves)):
    assert b.shape == (len(w) * 3 // 640, 4)
    np.testing.assert_array_equal(b, tok.encode(w))
  info = tok.info()
  assert (info["rate_hz"], info["levels"], info["bandwidth_kbps"]) == (75, 4,
                                                                       3.0)
  assert info["model_sample_rate"] == 24000


def test_fingerprint_settings_files_and_pickling(models, tmp_path):
  a = base.make_semantic_embedder("w2v_bert", model=models["w2v_bert"],
                                  layer=1, device="cpu")
  b = base.make_semantic_embedder("w2v_bert", model=models["w2v_bert"],
                                  layer=2, device="cpu")
  assert a.fingerprint != b.fingerprint
  assert a.fingerprint == base.make_semantic_embedder(
      "w2v_bert", model=models["w2v_bert"], layer=1, batch_size=2).fingerprint
  digests = torch_backend.file_digests(models["w2v_bert"])
  assert set(digests) == {"config.json", "model.safetensors",
                          "preprocessor_config.json"}
  a.load()
  c = pickle.loads(pickle.dumps(a))
  assert c._model is None  # pylint: disable=protected-access
  w = _waves(8000)[0]
  np.testing.assert_array_equal(c.embed(w), a.embed(w))


def test_options_and_errors(models, tmp_path):
  with pytest.raises(ValueError, match="semantic backend 'w2v_bert' has no "
                     "option 'levels'; it takes "):
    base.make_semantic_embedder("w2v_bert", levels=3)
  with pytest.raises(base.TokenizerError, match="layer 9 asked"):
    base.make_semantic_embedder("hubert", model=models["hubert"],
                                layer=9, device="cpu").load()
  with pytest.raises(base.TokenizerError, match="has 12"):
    base.make_acoustic_tokenizer("dac", model=models["dac"], levels=13).info()
  # A hub id that is not in an (empty) cache, offline: a clear error, and
  # nothing was fetched at construction.
  emb = base.make_semantic_embedder("w2v_bert", cache_dir=str(tmp_path),
                                    local_files_only=True)
  with pytest.raises(base.TokenizerError, match="facebook/w2v-bert-2.0"):
    emb.load()


def test_fit_kmeans_job_runs_unchanged_on_w2v_bert(models, librispeech_tree,
                                                  tmp_path):
  """The k-means Beam job fits on these embeddings; the layer is recorded."""
  from audiolm_t5x.pipelines import fit_kmeans  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines.tokenizers import kmeans  # pylint: disable=g-import-not-at-top

  out = tmp_path / "kmeans.npz"
  prov = fit_kmeans.run([
      f"--input_dir={librispeech_tree}", f"--output={out}", "--k=4",
      "--seed=0", "--frames_per_file=20", "--semantic_backend=w2v_bert",
      f"--semantic_option=model={models['w2v_bert']}",
      "--semantic_option=layer=2", "--semantic_option=device=cpu"])
  assert prov["layer"] == 2 and prov["embedder"]["layer"] == 2
  assert prov["embedder"]["name"] == "w2v_bert" and prov["dim"] == 32
  book = kmeans.KMeansCodebook.load(str(out))
  emb = base.make_semantic_embedder("w2v_bert", model=models["w2v_bert"],
                                    layer=2, device="cpu")
  ids = book.quantize(emb.embed(_waves(32000)[0]))
  assert ids.shape == (50,) and 0 <= ids.min() and ids.max() < 4


def test_tokenize_job_with_public_checkpoint_backends(models, librispeech_tree,
                                                      tmp_path):
  """w2v-BERT + DAC run inside the Beam job as drop-ins, batched."""
  import glob  # pylint: disable=g-import-not-at-top

  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from audiolm_t5x import contract  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines import audio  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines import fit_kmeans  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines import tokenize_corpus  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines.tokenizers import kmeans  # pylint: disable=g-import-not-at-top

  sem = [f"--semantic_option=model={models['w2v_bert']}",
         "--semantic_option=layer=2", "--semantic_option=device=cpu"]
  book_path = tmp_path / "km.npz"
  fit_kmeans.run([f"--input_dir={librispeech_tree}", f"--output={book_path}",
                  "--k=4", "--frames_per_file=20",
                  "--semantic_backend=w2v_bert", *sem])
  out = tmp_path / "tokens"
  tokenize_corpus.run([f"--input_dir={librispeech_tree}", "--splits=dev-clean",
                f"--output_dir={out}", f"--kmeans={book_path}",
                "--num_shards=1", "--batch_size=4",
                "--semantic_backend=w2v_bert", *sem,
                "--acoustic_backend=dac",
                f"--acoustic_option=model={models['dac']}",
                "--acoustic_option=levels=12", "--acoustic_option=device=cpu"])
  info = contract.DatasetInfo.load(str(out))
  assert info.semantic["name"] == "w2v_bert" and info.semantic["layer"] == 2
  assert (info.acoustic["name"], info.acoustic_levels,
          info.acoustic_codebook_size) == ("dac", 12, 1024)
  emb = base.make_semantic_embedder("w2v_bert", model=models["w2v_bert"],
                                    layer=2, device="cpu")
  dac = base.make_acoustic_tokenizer("dac", model=models["dac"], levels=12,
                                     device="cpu")
  book = kmeans.KMeansCodebook.load(str(book_path))
  (shard,) = glob.glob(str(out / "dev-clean" / "*.tfrecord"))
  seen = 0
  for raw in tf.data.TFRecordDataset(shard).as_numpy_iterator():
    rec = contract.TokenRecord.from_example_bytes(raw, acoustic_levels=12)
    wave = audio.decode((librispeech_tree / rec.source).read_bytes())
    np.testing.assert_array_equal(rec.acoustic_tokens, dac.encode(wave))
    agree = np.mean(rec.semantic_tokens == book.quantize(emb.embed(wave)))
    assert agree > 0.99, agree  # batched float32 vs unbatched
    seen += 1
  assert seen == 2


def test_commands_do_not_offer_a_75hz_codec(tmp_path, capsys):
  from audiolm_t5x.pipelines import tokenize_corpus  # pylint: disable=g-import-not-at-top

  assert base.contract_acoustic_backends() == ["dac", "lyra", "saved_model"]
  assert "encodec" in base.acoustic_backends()  # library-only, from Python
  help_text = " ".join(tokenize_corpus.make_parser().format_help().split())
  assert ("acoustic tokenizer at the data contract's 50 Hz: dac, lyra, "
          "saved_model") in help_text
  assert "encodec" not in help_text
  assert tokenize_corpus.main([
      f"--input_dir={tmp_path}", f"--output_dir={tmp_path / 'out'}",
      f"--kmeans={tmp_path / 'k.npz'}", "--acoustic_backend=encodec"]) == 2
  err = capsys.readouterr().err.strip()
  assert err.splitlines() == [err]  # one line, before any compute
  assert err.endswith(
      "error: argument --acoustic_backend: encodec is not offered: it gives "
      "75 Hz frames and the data contract needs 50 Hz "
      "(audiolm_t5x/contract.py); use dac or lyra")
  assert not (tmp_path / "out").exists()
