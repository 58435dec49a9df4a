"""The TF SavedModel backends, on tiny tf.Module models saved to tmp_path.

The models are frame-local (a fixed random projection of each frame's
samples), so their exact output is known in numpy, windowing must not change
it, and their batched signature must agree with the single one.
"""

import pickle

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from audiolm_t5x import constants  # noqa: E402
from audiolm_t5x.pipelines.tokenizers import base  # noqa: E402

S = constants.SEMANTIC_FRAME_SAMPLES  # 640
A = constants.ACOUSTIC_FRAME_SAMPLES  # 320
DIM, LEVELS, CODES = 6, 3, 16
RNG = np.random.default_rng(0)
W_SEM = RNG.standard_normal((S, DIM)).astype(np.float32)
W_AC = RNG.standard_normal((A, LEVELS * CODES)).astype(np.float32)


def _frames(waveform, size):
  n = tf.shape(waveform)[0] // size
  return tf.reshape(waveform[:n * size], [n, size])


class _Semantic(tf.Module):

  def __init__(self):
    super().__init__()
    self.w = tf.Variable(W_SEM)
    self.layer = tf.Variable(7)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
  def embed(self, audio):
    return {"embeddings": tf.tanh(_frames(audio, S) @ self.w)}

  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32),
                                tf.TensorSpec([None], tf.int32)])
  def batched(self, waveforms, lengths):
    b = tf.shape(waveforms)[0]
    n = tf.shape(waveforms)[1] // S
    frames = tf.reshape(waveforms[:, :n * S], [b, n, S])
    return {"embeddings": tf.tanh(frames @ self.w), "num_frames": lengths // S}


class _Acoustic(tf.Module):

  def __init__(self, with_size=True):
    super().__init__()
    self.w = tf.Variable(W_AC)
    if with_size:
      self.codebook_size = tf.Variable(CODES)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
  def encode(self, waveform):
    logits = tf.reshape(_frames(waveform, A) @ self.w, [-1, LEVELS, CODES])
    return {"codes": tf.argmax(logits, axis=-1, output_type=tf.int32)}


def _sem_reference(w):
  n = len(w) // S
  return np.tanh(w[:n * S].reshape(n, S) @ W_SEM)


def _ac_reference(w):
  n = len(w) // A
  logits = (w[:n * A].reshape(n, A) @ W_AC).reshape(n, LEVELS, CODES)
  return logits.argmax(-1)


@pytest.fixture(scope="module")
def semantic_path(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("sm") / "semantic")
  m = _Semantic()
  tf.saved_model.save(m, path, signatures={"serving_default": m.embed,
                                           "batched": m.batched})
  return path


@pytest.fixture(scope="module")
def acoustic_path(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("sm") / "acoustic")
  m = _Acoustic()
  tf.saved_model.save(m, path, signatures={"serving_default": m.encode})
  return path


def _waves(*lengths):
  rng = np.random.default_rng(1)
  return [rng.uniform(-1, 1, n).astype(np.float32) for n in lengths]


def test_semantic_matches_model_and_contract(semantic_path):
  emb = base.make_semantic_embedder("saved_model", path=semantic_path)
  for w in _waves(16000, 16000 + 639, 700, 100):
    out = emb.embed(w)
    assert out.shape == (len(w) // S, DIM) and out.dtype == np.float32
    np.testing.assert_allclose(out, _sem_reference(w), atol=1e-5)
  info = emb.info()
  assert (info["dim"], info["layer"], info["rate_hz"]) == (DIM, 7, 25)


def test_semantic_batched_equals_unbatched(semantic_path):
  emb = base.make_semantic_embedder("saved_model", path=semantic_path,
                                    batch_size=3)
  waves = _waves(16000, 9000, 23456, 640, 100, 12000)
  batched = emb.embed_batch(waves)
  for w, b in zip(waves, batched):
    # float32 matmuls of different shapes: equal to 1e-5.
    np.testing.assert_allclose(b, emb.embed(w), atol=1e-5)


def test_semantic_windows_do_not_change_a_frame_local_model(semantic_path):
  whole = base.make_semantic_embedder("saved_model", path=semantic_path)
  windowed = base.make_semantic_embedder(
      "saved_model", path=semantic_path, window_seconds=1.0,
      context_seconds=0.2)
  w = _waves(5 * 16000 + 123)[0]
  np.testing.assert_allclose(windowed.embed(w), whole.embed(w), atol=1e-6)
  np.testing.assert_allclose(windowed.embed_batch([w, w[:20000]])[0],
                             whole.embed(w), atol=1e-5)


def test_acoustic_codes_levels_and_range(acoustic_path):
  tok = base.make_acoustic_tokenizer("saved_model", path=acoustic_path)
  waves = _waves(16000, 16000 + 319, 330, 50)
  for w, codes in zip(waves, tok.encode_batch(waves)):
    assert codes.shape == (len(w) // A, LEVELS) and codes.dtype == np.int64
    np.testing.assert_array_equal(codes, _ac_reference(w))
  info = tok.info()
  assert (info["levels"], info["codebook_size"], info["rate_hz"]) == (
      LEVELS, CODES, 50)


def test_acoustic_codebook_size_option_when_model_has_none(tmp_path):
  m = _Acoustic(with_size=False)
  tf.saved_model.save(m, str(tmp_path), signatures={"serving_default": m.encode})
  with pytest.raises(base.TokenizerError, match="codebook_size option"):
    base.make_acoustic_tokenizer("saved_model", path=str(tmp_path)).info()
  tok = base.make_acoustic_tokenizer("saved_model", path=str(tmp_path),
                                     codebook_size=8)
  with pytest.raises(base.TokenizerError, match=r"expected \[0, 8\)"):
    # argmax over 16 codes: some are >= 8.
    tok.encode(_waves(32000)[0])


def test_wrong_signature_and_frame_rate_are_errors(semantic_path, tmp_path):
  with pytest.raises(base.TokenizerError, match="no signature 'nope'"):
    base.make_semantic_embedder("saved_model", path=semantic_path,
                                signature="nope").load()

  class TooFast(tf.Module):

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def embed(self, waveform):
      return {"embeddings": tf.reshape(_frames(waveform, 160), [-1, 160])}

  m = TooFast()
  tf.saved_model.save(m, str(tmp_path), signatures={"serving_default": m.embed})
  emb = base.make_semantic_embedder("saved_model", path=str(tmp_path))
  with pytest.raises(base.TokenizerError, match="100 frames for 16000 samples"):
    emb.embed(np.zeros(16000, np.float32))


def test_fingerprint_and_pickling(semantic_path):
  a = base.make_semantic_embedder("saved_model", path=semantic_path)
  b = base.make_semantic_embedder("saved_model", path=semantic_path,
                                  window_seconds=10.0)
  assert a.fingerprint != b.fingerprint
  a.load()
  c = pickle.loads(pickle.dumps(a))
  assert c._loaded is None  # pylint: disable=protected-access
  assert c.fingerprint == a.fingerprint
  w = _waves(8000)[0]
  np.testing.assert_array_equal(c.embed(w), a.embed(w))
