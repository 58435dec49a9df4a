"""Tests of the project's decoder network (``audiolm_t5x.network``).

Against T5X's stock decoder-only network (loaded from the installed T5X's
source, see ``benchmarks/stock_network.py``; skipped where T5X is absent):
the same parameter tree, logits and gradients (float32: equal to rounding;
bfloat16: within the stock network's own bfloat16 error). Without T5X: the
bucket matrices (literal), cached decoding equal to full-sequence logits,
remat policies, and the cuDNN path's padding and prefix split run on CPU
through the XLA kernel.
"""

import functools
import importlib.util
import os
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

from audiolm_t5x import attention  # pylint: disable=g-import-not-at-top
from audiolm_t5x import network  # pylint: disable=g-import-not-at-top

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAVE_T5X_SOURCE = importlib.util.find_spec("t5x") is not None or bool(
    os.environ.get("STOCK_T5X_DIR"))
needs_stock = pytest.mark.skipif(
    not HAVE_T5X_SOURCE, reason="T5X is not installed (stock network absent)")

TINY = dict(vocab_size=128, emb_dim=32, num_heads=4, num_layers=2,
            head_dim=8, mlp_dim=64, mlp_activations=("gelu", "linear"),
            dropout_rate=0.1)
B, S = 3, 20


def _stock():
  sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))
  try:
    import stock_network  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.pop(0)
  return stock_network.load()


def _ours(**overrides):
  return network.DecoderWrapper(network.TransformerConfig(
      **{**TINY, "dtype": jnp.float32, **overrides}))


def _batch(seed=0):
  """Targets with padding in row 1, inputs shifted right (BOS = 0)."""
  rng = np.random.default_rng(seed)
  targets = rng.integers(2, TINY["vocab_size"], (B, S)).astype(np.int32)
  targets[1, 15:] = 0
  inputs = np.concatenate([np.zeros((B, 1), np.int32), targets[:, :-1]], 1)
  prefix = np.zeros((B, S), np.int32)  # inputs + 1, as seqio's converter
  for row, n in enumerate((5, 3, 9)):
    prefix[row, :n + 1] = 1
  segments = np.ones((B, S), np.int32)
  segments[0, 11:] = 2
  segments[1, 15:] = 0
  return inputs, targets, prefix, segments


def _init(model):
  x = jnp.ones((1, S), jnp.int32)
  return model.init(jax.random.PRNGKey(0), x, x, enable_dropout=False)


def _grad(loss):
  return jax.jit(jax.grad(loss))


# --- Relative position buckets ------------------------------------------------
def test_bucket_matrix_bidirectional_prefix():
  """T5 encoder buckets: later keys get buckets 17.. (future), not 0."""
  got = attention.relative_position_buckets(6, 6, bidirectional=True)
  np.testing.assert_array_equal(got, [
      [0, 17, 18, 19, 20, 21],
      [1, 0, 17, 18, 19, 20],
      [2, 1, 0, 17, 18, 19],
      [3, 2, 1, 0, 17, 18],
      [4, 3, 2, 1, 0, 17],
      [5, 4, 3, 2, 1, 0]])


def test_bucket_matrix_causal_is_t5x_decoder_only():
  """Causal buckets: every later key shares the bucket of distance 0."""
  got = attention.relative_position_buckets(6, 6, bidirectional=False)
  np.testing.assert_array_equal(got, [
      [0, 0, 0, 0, 0, 0],
      [1, 0, 0, 0, 0, 0],
      [2, 1, 0, 0, 0, 0],
      [3, 2, 1, 0, 0, 0],
      [4, 3, 2, 1, 0, 0],
      [5, 4, 3, 2, 1, 0]])


def test_bucket_log_range():
  """Past distance -> bucket (32 causal / 16 bidirectional, max 128)."""
  distances = [0, 1, 7, 8, 15, 16, 20, 32, 64, 127, 128, 200]
  causal = attention.relative_position_buckets(
      1, 201, bidirectional=False, q_offset=200)[0][::-1]
  assert causal[distances].tolist() == [0, 1, 7, 8, 15, 16, 17, 21, 26, 31,
                                        31, 31]
  both = attention.relative_position_buckets(
      1, 201, bidirectional=True, q_offset=200)[0][::-1]
  assert both[distances].tolist() == [0, 1, 7, 8, 9, 10, 10, 12, 14, 15, 15,
                                      15]


@needs_stock
def test_causal_buckets_equal_stock():
  layers = _stock().layers
  rel = np.arange(400)[None, :] - np.arange(400)[:, None]
  for bidirectional in (False, True):
    want = layers.RelativePositionBiases._relative_position_bucket(  # pylint: disable=protected-access
        rel, bidirectional=bidirectional, num_buckets=32, max_distance=128)
    got = attention.relative_position_buckets(400, 400,
                                              bidirectional=bidirectional)
    np.testing.assert_array_equal(got, want)


def test_network_uses_the_bidirectional_buckets():
  """The bias the layers get is the table looked up at the literal buckets."""
  model = network.RelativePositionBias(network.TransformerConfig(
      **dict(TINY, bidirectional_prefix_buckets=True)))
  params = model.init(jax.random.PRNGKey(0), 6)
  table = np.asarray(params["params"]["rel_embedding"])
  bias = np.asarray(model.apply(params, 6))
  buckets = attention.relative_position_buckets(6, 6, bidirectional=True)
  np.testing.assert_array_equal(bias[0], table[:, buckets])


# --- Equivalence with T5X's network -------------------------------------------
@needs_stock
def test_same_parameter_tree_and_initialisation_as_stock():
  stock = _stock()
  config = stock.TransformerConfig(**dict(TINY, dtype=jnp.float32))
  ref = _init(stock.DecoderWrapper(config))
  got = _init(_ours())
  assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(ref)
  assert got["params_axes"] == ref["params_axes"]
  for a, b in zip(jax.tree_util.tree_leaves(got["params"]),
                  jax.tree_util.tree_leaves(ref["params"])):
    np.testing.assert_array_equal(a, b)


def _logits(model, params, batch, mode):
  inputs, targets, prefix, segments = batch
  kwargs = {}
  if mode == "prefix":
    kwargs["decoder_causal_attention"] = prefix
  if mode == "packed":
    kwargs["decoder_segment_ids"] = segments
  return jax.jit(lambda p: model.apply(p, inputs, targets,
                                       enable_dropout=False, **kwargs))(params)


def _loss_fn(model, batch, mode):
  targets = batch[1]
  def loss(params):
    logits = _logits(model, params, batch, mode).astype(jnp.float32)
    ce = -jnp.take_along_axis(jax.nn.log_softmax(logits),
                              targets[..., None], -1)[..., 0]
    return jnp.sum(ce * (targets > 0)) / jnp.sum(targets > 0)
  return loss


@needs_stock
@pytest.mark.parametrize("mode", ["causal", "prefix", "packed"])
def test_logits_and_gradients_equal_stock(mode):
  """float32: equal to rounding; bfloat16 (causal): within stock's bf16 error."""
  stock = _stock()
  params = _init(_ours())
  batch = _batch()
  real = (batch[1] > 0)[..., None]
  results = {}
  # bfloat16 once (causal); the masks are the same code in both dtypes.
  dtypes = (jnp.float32, jnp.bfloat16) if mode == "causal" else (jnp.float32,)
  for dtype in dtypes:
    ref_model = stock.DecoderWrapper(stock.TransformerConfig(
        **dict(TINY, dtype=dtype)))
    our_model = _ours(dtype=dtype)
    for name, model in (("stock", ref_model), ("ours", our_model)):
      logits = _logits(model, params, batch, mode)
      grads = _grad(_loss_fn(model, batch, mode))(params)
      results[name, dtype] = (np.where(real, logits, 0.0), grads)

  def err(a, b):
    logit_err = np.max(np.abs(a[0] - b[0]))
    grad_err = max(float(np.max(np.abs(x - y)) / (np.max(np.abs(y)) + 1e-12))
                   for x, y in zip(jax.tree_util.tree_leaves(a[1]),
                                   jax.tree_util.tree_leaves(b[1])))
    return logit_err, grad_err

  logit_err, grad_err = err(results["ours", jnp.float32],
                            results["stock", jnp.float32])
  assert logit_err < 1e-4 and grad_err < 1e-4, (logit_err, grad_err)
  if mode != "causal":
    return
  # bfloat16: ours is no farther from the float32 reference than stock is.
  reference = results["stock", jnp.float32]
  stock_err = err(results["stock", jnp.bfloat16], reference)
  ours_err = err(results["ours", jnp.bfloat16], reference)
  assert stock_err[0] > 0  # bfloat16 rounding is visible at this size
  assert ours_err[0] <= 2 * stock_err[0] + 1e-3, (ours_err, stock_err)
  assert ours_err[1] <= 2 * stock_err[1] + 1e-2, (ours_err, stock_err)


# --- Remat, cuDNN path on CPU, cached decoding -----------------------------------
def test_remat_policies_give_the_same_gradients():
  batch = _batch()
  params = _init(_ours())
  ref = _grad(_loss_fn(_ours(), batch, "prefix"))(params)
  for policy in ("dots_saveable", "full", "names:query,key,value,attention"):
    got = _grad(_loss_fn(_ours(remat_policy=policy), batch,
                            "prefix"))(params)
    for a, b in zip(jax.tree_util.tree_leaves(got),
                    jax.tree_util.tree_leaves(ref)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="remat_policy 'fastest'"):
    network.remat_policy("fastest")


@pytest.fixture
def cudnn_on_cpu(monkeypatch):
  """Runs the cuDNN path's own code (padding, prefix split) with XLA's kernel."""
  calls = []
  original = jax.nn.dot_product_attention

  def fake(query, key, value, *, implementation, **kwargs):
    assert implementation == "cudnn"
    calls.append((query.shape[1], "query_seq_lengths" in kwargs))
    return original(query, key, value, implementation="xla", **kwargs)

  monkeypatch.setattr(jax.nn, "dot_product_attention", fake)
  return calls


@pytest.mark.parametrize("mode,bound", [("causal", None), ("prefix", 10),
                                        ("prefix", None)])
def test_cudnn_path_equals_xla(cudnn_on_cpu, mode, bound):
  """Length padded to 32 inside attention; prefix via the first `bound`."""
  batch = _batch()
  params = _init(_ours())
  ref = _logits(_ours(bidirectional_prefix_buckets=True), params, batch, mode)
  fused = _ours(bidirectional_prefix_buckets=True,
                attention_implementation="cudnn", attention_pad_multiple=32,
                max_prefix_length=bound)
  got = _logits(fused, params, batch, mode)
  assert cudnn_on_cpu and {n for n, _ in cudnn_on_cpu} == {32}
  # prefix rows: the causal call and the prefix call with sequence lengths
  assert {lengths for _, lengths in cudnn_on_cpu} == (
      {False, True} if mode == "prefix" else {False})
  real = (batch[1] > 0)[..., None]
  np.testing.assert_allclose(np.where(real, got, 0), np.where(real, ref, 0),
                             atol=1e-5)
  grads = _grad(_loss_fn(fused, batch, mode))(params)
  ref_grads = _grad(_loss_fn(_ours(bidirectional_prefix_buckets=True),
                                batch, mode))(params)
  for a, b in zip(jax.tree_util.tree_leaves(grads),
                  jax.tree_util.tree_leaves(ref_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_cudnn_path_poisons_a_prefix_longer_than_its_bound(cudnn_on_cpu):
  batch = _batch()
  params = _init(_ours())
  fused = _ours(attention_implementation="cudnn", attention_pad_multiple=32,
                max_prefix_length=8)  # row 2's prefix is 10 long
  logits = np.asarray(_logits(fused, params, batch, "prefix"))
  assert np.isnan(logits[2]).all() and not np.isnan(logits[:2]).any()


def _prefix_rows():
  """q, k, v, bias, prefix and padding of 4 unpacked prefix-LM rows.

  Row 0: prefix 7 of 20 real; row 1: prefix 3, padding from 12; row 2: the
  padding starts inside the prefix (prefix 9, 6 real tokens: a row with no
  targets); row 3: prefix 1 (BOS only).
  """
  rng = np.random.default_rng(3)
  b, s, h, d = 4, 20, 2, 8
  q, k, v = (jnp.asarray(rng.normal(size=(b, s, h, d)), jnp.float32)
             for _ in range(3))
  bias = jnp.asarray(rng.normal(size=(1, h, 32, 32)), jnp.float32)
  prefix = np.zeros((b, s), np.int32)
  padding = np.ones((b, s), np.int32)
  for row, (n, real) in enumerate(((7, s), (3, 12), (9, 6), (1, s))):
    prefix[row, :n] = 1
    padding[row, real:] = 0
  return q, k, v, bias, jnp.asarray(prefix), jnp.asarray(padding)


@pytest.mark.parametrize("bound", [10, None])
def test_fused_prefix_attention_equals_the_masked_path(cudnn_on_cpu, bound):
  """The prefix through cuDNN's sequence lengths = the exact prefix-LM mask.

  Outputs at real queries and the gradients of q, k, v and the bias agree
  with XLA attention under T5X's mask (causal or both inside the prefix,
  real keys only), for rows whose padding starts after or inside the prefix.
  """
  q, k, v, bias, prefix, padding = _prefix_rows()
  real = np.asarray(padding, bool)[:, :, None, None]
  weights = jnp.asarray(np.random.default_rng(4).normal(size=q.shape)) * real

  def loss(implementation, q, k, v, bias):
    if implementation == "reference":
      out = attention.attend(q, k, v, bias=bias, implementation="xla",
                             padding=padding, prefix=prefix)
    else:
      out = attention.cudnn_attention(
          q, k, v, bias=bias, prefix=prefix, padding=padding,
          max_prefix_length=bound, pad_multiple=16,
          prefix_implementation=implementation)
    return jnp.sum(out * weights), out

  results = {}
  for implementation in ("reference", "cudnn", "xla"):
    grad = jax.grad(functools.partial(loss, implementation),
                    argnums=(0, 1, 2, 3), has_aux=True)
    results[implementation] = grad(q, k, v, bias)
  # the prefix call took sequence lengths, on the bound padded to 16
  assert (16 if bound else 32, True) in cudnn_on_cpu
  ref_grads, ref_out = results["reference"]
  for implementation in ("cudnn", "xla"):
    grads, out = results[implementation]
    np.testing.assert_allclose(np.where(real, out, 0),
                               np.where(real, ref_out, 0), atol=1e-5)
    for got, want in zip(grads, ref_grads):
      assert np.isfinite(got).all()
      np.testing.assert_allclose(got, want, atol=1e-5)


def test_fused_prefix_attention_poisons_rows_it_cannot_express(cudnn_on_cpu):
  """A prefix with a hole or padding before a real token: NaN, not wrong."""
  q, k, v, bias, prefix, padding = _prefix_rows()
  prefix = prefix.at[0, 2].set(0)  # row 0: prefix 0,1,3..6
  padding = padding.at[1, 5].set(0)  # row 1: a pad between real tokens
  out = np.asarray(attention.cudnn_attention(
      q, k, v, bias=bias, prefix=prefix, padding=padding,
      max_prefix_length=10, pad_multiple=16))
  assert np.isnan(out[:2, :10]).all() and not np.isnan(out[2:]).any()


@pytest.mark.parametrize("bidirectional,filled_only",
                         [(True, False), (False, False), (True, True)])
def test_cached_decoding_equals_full_sequence(bidirectional, filled_only,
                                              monkeypatch):
  """T5X's call sequence: create cache, prefill the prompt, decode steps.

  ``filled_only``: each step attends over the filled blocks of the cache only
  (the large-batch path, forced here on a small cache).
  """
  monkeypatch.setattr(attention, "FILLED_ONLY_MIN_BYTES",
                      0 if filled_only else 2**62)
  model = _ours(bidirectional_prefix_buckets=bidirectional)
  params = {"params": _init(model)["params"]}
  inputs, targets, prefix, _ = _batch(seed=1)
  targets[1, 15:] = 1  # no padding inside the decoded range
  inputs = np.concatenate([np.zeros((B, 1), np.int32), targets[:, :-1]], 1)
  full = model.apply(params, inputs, targets, decoder_causal_attention=prefix,
                     enable_dropout=False)
  _, variables = model.apply(params, np.ones_like(inputs),
                             np.ones_like(inputs), enable_dropout=False,
                             decode=True, mutable=["cache"])
  lengths = prefix.sum(1) - 1  # inputs per row (without BOS)
  _, variables = model.apply(
      {**params, "cache": variables["cache"]},
      decoder_input_tokens=inputs * prefix, decoder_target_tokens=prefix,
      decoder_causal_attention=prefix, enable_dropout=False, prefill=True,
      prefill_lengths=jnp.asarray(lengths), mutable=["cache"])
  cache = variables["cache"]
  np.testing.assert_array_equal(cache["decoder"]["cache_index"], lengths)
  index = lengths.copy()
  rows = np.arange(B)
  step = jax.jit(lambda cache, token: model.apply(
      {**params, "cache": cache}, token, token, enable_dropout=False,
      decode=True, max_decode_length=S, mutable=["cache"]))
  for _ in range(S - int(lengths.max())):
    token = inputs[rows, index][:, None]
    logits, variables = step(cache, token)
    cache = variables["cache"]
    np.testing.assert_allclose(logits[:, 0], full[rows, index], atol=2e-5)
    index = index + 1
