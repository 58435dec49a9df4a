"""The GPU-speed paths of the torch backends, run on the CPU.

Device features (the torch filterbank run here on the CPU) against the host
(numpy) features; length-bucketed, fixed-shape batches against one input at a
time; torch.compile on against off; backend options parsed into dataclasses
with one-line errors. Tiny random models of the real classes (DAC in the
16 kHz geometry), saved and loaded through the backends' loading code.
"""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from audiolm_t5x import constants  # noqa: E402
from audiolm_t5x.pipelines.tokenizers import base  # noqa: E402
from audiolm_t5x.pipelines.tokenizers import windowing  # noqa: E402
from audiolm_t5x.pipelines.tokenizers import w2v_bert  # noqa: E402

S = constants.SEMANTIC_FRAME_SAMPLES
A = constants.ACOUSTIC_FRAME_SAMPLES
# Mixed lengths around the test buckets (0.5 s, 1 s) and past them.
LENGTHS = (16000, 23456, 9000, 700, 100, 12345, 8000, 7999)
BUCKETS = [0.5, 1.0]


def _waves(*lengths, seed=0):
  rng = np.random.default_rng(seed)
  return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
  root = tmp_path_factory.mktemp("fast")
  torch.manual_seed(0)
  w2v = str(root / "w2v_bert")
  transformers.Wav2Vec2BertModel(transformers.Wav2Vec2BertConfig(
      hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
      intermediate_size=64, conv_depthwise_kernel_size=5)).save_pretrained(w2v)
  transformers.SeamlessM4TFeatureExtractor().save_pretrained(w2v)
  dac = str(root / "dac")
  transformers.DacModel(transformers.DacConfig(
      encoder_hidden_size=4, downsampling_ratios=[2, 4, 5, 8],
      decoder_hidden_size=16, n_codebooks=12, codebook_size=1024,
      codebook_dim=8, sampling_rate=16000)).save_pretrained(dac)
  return {"w2v_bert": w2v, "dac": dac}


def test_bucket_lengths_and_batches():
  assert [windowing.bucket_length(n, [100, 50], granule=30)
          for n in (1, 50, 51, 100, 101, 150)] == [50, 50, 100, 100, 120, 150]
  # Longest first; a batch holds one bucket; rows * bucket <= max_units.
  assert windowing.length_batches(
      [10, 60, 40, 55, 20, 45], max_items=3, max_units=200,
      pad_to=lambda n: 50 if n <= 50 else 100) == [[1, 3], [5, 2, 4], [0]]


def test_compiled_batches_pad_rows_to_quarters(models):
  """A compiled bucket has at most four row counts: a part-filled batch is
  padded to the next quarter of the bucket's most rows, not to all of them."""
  tok = base.make_acoustic_tokenizer("dac", model=models["dac"], compile=True,
                                     batch_size=64, batch_seconds=1920.0)
  padded = 30 * 16000  # 30 s: 64 rows fit batch_seconds
  assert [tok._compiled_rows(n, padded, True)  # pylint: disable=protected-access
          for n in (1, 16, 17, 48, 49, 64)] == [16, 16, 32, 48, 64, 64]
  assert tok._compiled_rows(1, padded, False) == 1  # pylint: disable=protected-access
  assert tok._compiled_rows(3, 2 * padded, True) == 8  # 32 rows fit  # pylint: disable=protected-access


def test_device_features_equal_host_features(models):
  """The torch filterbank (float64) against numpy's and the extractor's:
  within 5e-4 absolute (the stated tolerance), 2e-5 on average."""
  dev = base.make_semantic_embedder("w2v_bert", model=models["w2v_bert"],
                                    layer=1, device="cpu", features="device")
  host = base.make_semantic_embedder("w2v_bert", model=models["w2v_bert"],
                                     layer=1, device="cpu", features="host")
  dev.load()
  host.load()
  fe = transformers.SeamlessM4TFeatureExtractor.from_pretrained(
      models["w2v_bert"])
  waves = _waves(640, 16000 + 123, 3 * 16000 + 77, seed=6)
  frames = [len(w) // S for w in waves]
  for w, d, h in zip(waves, dev._prepare_all(waves, frames),  # pylint: disable=protected-access
                     host._prepare_all(waves, frames)):  # pylint: disable=protected-access
    assert isinstance(d, torch.Tensor) and d.dtype == torch.float32
    assert d.shape == h.shape and d.shape[1] == 160
    want = fe(w, sampling_rate=16000, return_tensors="np")
    n = int(want["attention_mask"][0].sum())
    for ref in (h, want["input_features"][0, :n]):
      # Normalised features: float64 here, float32 sums in numpy; bins of
      # near-zero variance (the 40 ms input) amplify the rounding.
      np.testing.assert_allclose(d.numpy(), ref, atol=5e-4, rtol=0)
      assert np.mean(np.abs(d.numpy() - ref)) < 2e-5
  for w, a, b in zip(waves, dev.embed_batch(waves), host.embed_batch(waves)):
    assert a.shape == b.shape == (len(w) // S, 32)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_bucketed_batches_equal_one_at_a_time(models):
  """Fixed padded shapes (windows of 0.5 s and 1 s buckets, longer ones in
  whole seconds) with masks give each input its unbatched output."""
  emb = base.make_semantic_embedder(
      "w2v_bert", model=models["w2v_bert"], layer=2, device="cpu",
      buckets=BUCKETS, batch_size=3)
  tok = base.make_acoustic_tokenizer("dac", model=models["dac"], device="cpu",
                                     buckets=BUCKETS, batch_size=3)
  waves = _waves(*LENGTHS, seed=1)
  for w, b in zip(waves, emb.embed_batch(waves)):
    assert b.shape == (len(w) // S, 32)
    np.testing.assert_allclose(b, emb.embed(w), atol=1e-4, rtol=1e-4)
  for w, b in zip(waves, tok.encode_batch(waves)):
    assert b.shape == (len(w) // A, 12)
    np.testing.assert_array_equal(b, tok.encode(w))


def test_dac_masked_encoder_equals_transformers(models):
  """The module-by-module encoder + quantizer reproduce DacModel.encode on an
  unpadded input."""
  tok = base.make_acoustic_tokenizer("dac", model=models["dac"], device="cpu")
  tok.load()
  (w,) = _waves(16000 + 321, seed=2)
  with torch.inference_mode():
    want = tok._model.encode(torch.from_numpy(w)[None, None]).audio_codes  # pylint: disable=protected-access
  want = want[0].T.numpy()[:len(w) // A]
  np.testing.assert_array_equal(tok.encode(w), want)


def _compiled_pair(models, compile_backend):
  waves = _waves(16000, 9000, 12345, seed=4)
  kw = dict(device="cpu", buckets=[1.0], batch_size=2)
  plain = base.make_acoustic_tokenizer("dac", model=models["dac"], **kw)
  compiled = base.make_acoustic_tokenizer(
      "dac", model=models["dac"], compile=True,
      compile_backend=compile_backend, **kw)
  for a, b in zip(compiled.encode_batch(waves), plain.encode_batch(waves)):
    np.testing.assert_array_equal(a, b)
  if compile_backend == "inductor":
    return  # w2v-BERT's inductor build takes minutes on two cores
  plain = base.make_semantic_embedder("w2v_bert", model=models["w2v_bert"],
                                      layer=2, **kw)
  compiled = base.make_semantic_embedder(
      "w2v_bert", model=models["w2v_bert"], layer=2, compile=True,
      compile_backend=compile_backend, **kw)
  for a, b in zip(compiled.embed_batch(waves), plain.embed_batch(waves)):
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_compile_on_and_off_give_the_same_tokens(models):
  """torch.compile's graph capture per bucket (aot_eager: the captured
  graph run by torch's own kernels): the same codes and embeddings."""
  _compiled_pair(models, "aot_eager")


@pytest.mark.skipif(not os.environ.get("AUDIOLM_SLOW_TESTS"),
                    reason="inductor's C++ build of DAC takes minutes on a "
                    "2-core CI machine; set AUDIOLM_SLOW_TESTS=1")
def test_inductor_compiled_dac_gives_the_same_codes(models):
  _compiled_pair(models, "inductor")


def test_options_are_dataclasses_with_one_line_errors(models):
  emb = base.make_semantic_embedder("w2v_bert", model=models["w2v_bert"],
                                    layer=3, buckets=[2, 4])
  assert emb.options == w2v_bert.W2vBertOptions(model=models["w2v_bert"],
                                                layer=3, buckets=(2.0, 4.0))
  cases = [
      (dict(layr=3), "semantic backend 'w2v_bert' has no option 'layr' "
       "(did you mean 'layer'?); it takes batch_seconds, batch_size, "),
      (dict(layer="x"), "semantic backend 'w2v_bert': option layer=\"x\" "
       "must be an integer or null"),
      (dict(layer=2.5), "option layer=2.5 must be an integer or null"),
      (dict(features="gpu"), "semantic backend 'w2v_bert': features must be "
       "one of device, host, got 'gpu'"),
      (dict(compile="yes"), "option compile=\"yes\" must be true/false"),
  ]
  for opts, message in cases:
    with pytest.raises(ValueError) as e:
      base.make_semantic_embedder("w2v_bert", **opts)
    assert message in str(e.value) and "\n" not in str(e.value)
  with pytest.raises(ValueError, match="hubert: compile=true is supported "
                     "by w2v_bert and dac only"):
    base.make_semantic_embedder("hubert", compile=True)
  with pytest.raises(ValueError, match=r"unknown acoustic backend 'dca' "
                     r"\(did you mean 'dac'\?\)"):
    base.make_acoustic_tokenizer("dca")
  # JSON strings from the command line: "true" is a bool, 12 an int.
  tok = base.make_acoustic_tokenizer("dac", compile="true", levels=12.0)
  assert tok.options.compile is True and tok.options.levels == 12
