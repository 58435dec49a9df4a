"""Attention kernels and T5 relative position buckets of the AudioLM decoder.

Pure functions (no Flax), used by ``audiolm_t5x.network`` for training,
prefill and cached decoding alike:

* ``relative_position_buckets``: T5's bucketing of key - query distances,
  causal (32 buckets over past distances, as T5X's decoder-only network) or
  bidirectional (16 past + 16 future, as T5's encoder) for prefix LMs whose
  prefix attends both ways.
* ``attend``: multi-head attention over ``[batch, length, heads, head_dim]``
  with an additive ``[1, heads, q, k]`` position bias, the decoder's masks
  (causal, bidirectional prefix, padding, packing) and no logit scaling (T5
  folds 1/sqrt(head_dim) into the query initialiser). Two implementations:

  - ``"xla"``: einsums with float32 logits and softmax; any mask, attention
    dropout. Runs everywhere (CPU, TPU, GPU) and is the reference.
  - ``"cudnn"``: ``jax.nn.dot_product_attention(implementation="cudnn")``
    (fused flash attention on NVIDIA GPUs) with the causal mask done by the
    kernel and the bias passed as ``[1, H, S, S]`` (broadcast over the batch,
    so its gradient stays small). The length is padded to a multiple of
    ``pad_multiple`` inside (cuDNN refuses odd lengths; the causal mask keeps
    padded keys out of every real query). A bidirectional prefix is done by
    a second fused call over the first ``max_prefix_length`` positions (only
    they can see later keys) with cuDNN's padding mask: per-row query and
    key lengths ``P_b`` (``P_b`` = the row's prefix length), which is exactly
    the prefix-LM mask there; queries past ``P_b`` keep the causal kernel's
    output. (``prefix_implementation="xla"``: einsums with the exact mask
    there instead.) Packed rows
    (segment ids) and attention dropout are not expressible through the
    public cuDNN call: packed rows fall back to ``"xla"``; attention dropout
    is not applied on this path (see BUILD.md, "Attention dropout").
"""

from __future__ import annotations

import logging
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

IMPLEMENTATIONS = ("auto", "xla", "cudnn")


def relative_position_buckets(q_len: int, k_len: int, *, bidirectional: bool,
                              num_buckets: int = 32,
                              max_distance: int = 128,
                              q_offset: int = 0) -> np.ndarray:
  """T5's relative position bucket of every (query, key) pair, as numpy.

  The distance ``k - q`` is bucketed exactly (one bucket per distance) up to
  half the buckets of a direction, then logarithmically up to
  ``max_distance``; farther pairs share the last bucket. Causal: all
  ``num_buckets`` cover past (and equal) positions and every future key gets
  bucket 0 (the bucket of distance 0). Bidirectional: buckets
  ``[0, num_buckets / 2)`` cover the past and the other half the future.

  Example (``bidirectional=True``, 4 positions, 32 buckets)::

    [[ 0, 17, 18, 19],
     [ 1,  0, 17, 18],
     [ 2,  1,  0, 17],
     [ 3,  2,  1,  0]]

  Args:
    q_len: number of query positions.
    k_len: number of key positions.
    bidirectional: whether future keys get buckets of their own.
    num_buckets: buckets in all.
    max_distance: distance from which all pairs share one bucket.
    q_offset: position of the first query (decoding one position at a time).

  Returns:
    int32 array ``[q_len, k_len]``.
  """
  q = np.arange(q_len, dtype=np.int64)[:, None] + q_offset
  k = np.arange(k_len, dtype=np.int64)[None, :]
  return _bucket(k - q, bidirectional=bidirectional, num_buckets=num_buckets,
                 max_distance=max_distance, xp=np)


def _bucket(relative, *, bidirectional: bool, num_buckets: int,
            max_distance: int, xp):
  """Buckets of ``relative = key - query`` (numpy or jax.numpy via ``xp``)."""
  distance = -relative  # > 0 for keys in the past
  bucket = 0
  if bidirectional:
    num_buckets //= 2
    bucket = (distance < 0).astype(np.int32) * num_buckets
    distance = xp.abs(distance)
  else:
    distance = xp.maximum(distance, 0)
  exact = num_buckets // 2
  # log-spaced buckets between `exact` and `max_distance` (float32 as T5).
  log_ratio = (xp.log(distance.astype(np.float32) / exact
                      + np.finfo(np.float32).eps)
               / np.log(max_distance / exact) * (num_buckets - exact))
  large = xp.minimum(exact + log_ratio.astype(np.int32), num_buckets - 1)
  return (bucket + xp.where(distance < exact, distance, large)).astype(np.int32)


def relative_position_buckets_at(query_positions: Array, k_len: int, *,
                                 bidirectional: bool, num_buckets: int,
                                 max_distance: int) -> Array:
  """Buckets ``[batch, k_len]`` for one query per row at traced positions."""
  k = jnp.arange(k_len, dtype=jnp.int32)[None, :]
  return _bucket(k - query_positions[:, None].astype(jnp.int32),
                 bidirectional=bidirectional, num_buckets=num_buckets,
                 max_distance=max_distance, xp=jnp)


def resolve_implementation(implementation: str) -> str:
  """``"auto"`` becomes ``"cudnn"`` on GPUs and ``"xla"`` elsewhere."""
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"attention implementation {implementation!r}: expected "
                     f"one of {IMPLEMENTATIONS}")
  if implementation == "auto":
    return "cudnn" if jax.default_backend() == "gpu" else "xla"
  return implementation


def decoder_mask(*, length: int, padding: Optional[Array] = None,
                 prefix: Optional[Array] = None,
                 segment_ids: Optional[Array] = None) -> Array:
  """Boolean ``[batch or 1, 1, length, length]`` mask of a decoder.

  Query ``i`` sees key ``j`` when ``j <= i`` or both lie in the prefix
  (``prefix[b, i] == prefix[b, j] == 1``), both are real tokens
  (``padding`` is 1 at real tokens) and both are in the same packed segment.
  The same mask as T5X's ``layers.make_decoder_mask``.
  """
  idx = jnp.arange(length)
  mask = (idx[None, :] <= idx[:, None])[None, None]
  if prefix is not None:
    p = prefix.astype(bool)
    mask = jnp.logical_or(mask, (p[:, None, :, None] & p[:, None, None, :]))
  if padding is not None:
    r = padding.astype(bool)
    mask = mask & r[:, None, :, None] & r[:, None, None, :]
  if segment_ids is not None:
    mask = mask & (segment_ids[:, None, :, None]
                   == segment_ids[:, None, None, :])
  return mask


def xla_attention(query: Array, key: Array, value: Array, *,
                  bias: Optional[Array], mask: Optional[Array],
                  dropout_rate: float = 0.0,
                  dropout_rng: Optional[Array] = None) -> Array:
  """Reference attention: float32 logits and softmax, optional dropout.

  Dropout drops attention probabilities with one mask per (batch, head, key)
  broadcast over queries, as T5X's decoder-only network does.
  """
  logits = jnp.einsum("bqhd,bkhd->bhqk", query, key,
                      preferred_element_type=jnp.float32)
  if bias is not None:
    logits = logits + bias.astype(jnp.float32)
  if mask is not None:
    logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(logits, axis=-1)
  if dropout_rate > 0.0 and dropout_rng is not None:
    keep = 1.0 - dropout_rate
    shape = probs.shape[:-2] + (1,) + probs.shape[-1:]
    kept = jax.random.bernoulli(dropout_rng, keep, shape)
    probs = jnp.where(kept, probs / keep, 0.0)
  probs = probs.astype(value.dtype)
  return jnp.einsum("bhqk,bkhd->bqhd", probs, value)


def _pad_length(x: Array, length: int, axis: int) -> Array:
  pad = [(0, 0)] * x.ndim
  pad[axis] = (0, length - x.shape[axis])
  return jnp.pad(x, pad)


_warned = set()


def _warn_once(message: str) -> None:
  if message not in _warned:
    _warned.add(message)
    logging.warning(message)


def cudnn_attention(query: Array, key: Array, value: Array, *,
                    bias: Array, prefix: Optional[Array] = None,
                    padding: Optional[Array] = None,
                    max_prefix_length: Optional[int] = None,
                    pad_multiple: int = 64,
                    prefix_implementation: str = "cudnn") -> Array:
  """Causal fused attention (plus a bidirectional prefix), see module doc.

  Args:
    query: ``[batch, length, heads, head_dim]``; key and value alike.
    bias: ``[1, heads, padded, padded]`` position bias for the padded length
      ``padded = ceil(length / pad_multiple) * pad_multiple`` (or for
      ``length``; it is padded then).
    prefix: ``[batch, length]`` 1 inside the bidirectional prefix, or None.
    padding: ``[batch, length]`` 1 at real tokens; only used by the prefix
      part (causal attention never reaches trailing padding from a real
      query).
    max_prefix_length: bound on every row's prefix (``inputs`` length + 1);
      None means the whole length. A row whose prefix is longer gets NaN.
    pad_multiple: the kernel runs on lengths padded to a multiple of this.
    prefix_implementation: how the first ``max_prefix_length`` positions of
      a prefix row are attended: ``"cudnn"``, a second fused call with
      per-row sequence lengths (prefix rows must be ``[0, P_b)`` and padding
      trailing, as unpacked prefix-LM rows are); ``"xla"``, einsums with the
      exact mask (any prefix and padding within the bound).

  Returns:
    ``[batch, length, heads, head_dim]``.
  """
  length = query.shape[1]
  padded = -(-length // pad_multiple) * pad_multiple
  if bias.shape[-1] != padded:
    bias = _pad_length(_pad_length(bias, padded, 2), padded, 3)
  q, k, v = (_pad_length(t, padded, 1) for t in (query, key, value))
  out = jax.nn.dot_product_attention(
      q, k, v, bias=bias.astype(q.dtype), is_causal=True, scale=1.0,
      implementation="cudnn")[:, :length]
  if prefix is None:
    return out
  # Only queries inside the prefix see later keys, and only keys inside the
  # prefix: the first `p` positions alone hold every non-causal pair.
  p = length if max_prefix_length is None else min(max_prefix_length, length)
  if prefix_implementation == "cudnn":
    head, inside, well_formed = _prefix_head_cudnn(
        query, key, value, bias=bias, prefix=prefix, padding=padding, p=p,
        pad_multiple=pad_multiple)
    head = jnp.where(inside[:, :, None, None], head, out[:, :p])
    head = jnp.where(well_formed[:, None, None, None], head, jnp.nan)
  else:
    head = xla_attention(
        query[:, :p], key[:, :p], value[:, :p], bias=bias[:, :, :p, :p],
        mask=decoder_mask(length=p, prefix=prefix[:, :p],
                          padding=None if padding is None else padding[:, :p]))
  if p < length:
    too_long = jnp.any(prefix[:, p:] > 0, axis=1)
    head = jnp.where(too_long[:, None, None, None], jnp.nan, head)
  return jnp.concatenate([head.astype(out.dtype), out[:, p:]], axis=1)


def _prefix_head_cudnn(query: Array, key: Array, value: Array, *,
                       bias: Array, prefix: Array, padding: Optional[Array],
                       p: int, pad_multiple: int):
  """The first ``p`` positions of a prefix LM through the fused kernel.

  Row ``b``'s prefix is ``[0, P_b)`` (seqio's PrefixLMFeatureConverter on
  unpacked rows) and its real tokens ``[0, R_b)``: a query ``q < P_b``
  attends to exactly the keys ``k < min(P_b, R_b)``, bidirectionally. That
  mask is cuDNN's padding mask with ``query_seq_lengths = P_b`` and
  ``key_value_seq_lengths = min(P_b, R_b)``, so the bias stays the
  batch-independent ``[1, H, p, p]`` slice of the shared one. A row whose
  prefix or padding is not of that shape (never produced by the converter
  without packing) is made NaN rather than silently wrong.

  Returns:
    The kernel's output over the first ``p`` positions, the ``[batch, p]``
    boolean of the queries inside each prefix (the others take the causal
    output) and the ``[batch]`` boolean of the rows it can express.
  """
  length = query.shape[1]
  pos = jnp.arange(length, dtype=jnp.int32)[None, :]
  in_prefix = prefix.astype(jnp.int32)
  q_len = jnp.sum(in_prefix[:, :p], axis=1).astype(jnp.int32)
  well_formed = jnp.all(in_prefix[:, :p] == (pos[:, :p] < q_len[:, None]),
                        axis=1)
  kv_len = q_len
  if padding is not None:
    real = padding.astype(jnp.int32)
    r_len = jnp.sum(real, axis=1).astype(jnp.int32)
    well_formed &= jnp.all(real == (pos < r_len[:, None]), axis=1)
    kv_len = jnp.minimum(q_len, r_len)
  padded = -(-p // pad_multiple) * pad_multiple
  q, k, v = (_pad_length(t[:, :p], padded, 1) for t in (query, key, value))
  # `bias` covers the padded whole length (>= padded): keys past kv_len are
  # masked by the kernel, queries past q_len are replaced by the caller.
  head = jax.nn.dot_product_attention(
      q, k, v, bias=bias[:, :, :padded, :padded].astype(q.dtype), scale=1.0,
      query_seq_lengths=q_len, key_value_seq_lengths=kv_len,
      implementation="cudnn")[:, :p]
  inside = pos[:, :p] < q_len[:, None]
  return head, inside, well_formed


def attend(query: Array, key: Array, value: Array, *, bias: Array,
           implementation: str, padding: Optional[Array] = None,
           prefix: Optional[Array] = None,
           segment_ids: Optional[Array] = None,
           max_prefix_length: Optional[int] = None,
           pad_multiple: int = 64, dropout_rate: float = 0.0,
           dropout_rng: Optional[Array] = None,
           prefix_implementation: str = "cudnn") -> Array:
  """Self-attention of a decoder over a whole sequence (training, prefill).

  ``implementation`` is ``"xla"`` or ``"cudnn"`` (resolve ``"auto"`` first
  with ``resolve_implementation``); packed rows always take ``"xla"``.
  ``bias`` is ``[1, heads, L, L]`` with ``L`` the length or, for cuDNN, the
  padded length. Attention dropout applies on the XLA path only.
  """
  length = query.shape[1]
  if implementation == "cudnn" and segment_ids is not None:
    _warn_once("packed rows (segment ids): the cuDNN path cannot mask "
               "segments through jax.nn.dot_product_attention; using XLA "
               "attention (set train/utils.DatasetConfig.pack = False for "
               "the fused kernel)")
    implementation = "xla"
  if implementation == "cudnn":
    return cudnn_attention(query, key, value, bias=bias, prefix=prefix,
                           padding=padding,
                           max_prefix_length=max_prefix_length,
                           pad_multiple=pad_multiple,
                           prefix_implementation=prefix_implementation)
  mask = decoder_mask(length=length, padding=padding, prefix=prefix,
                      segment_ids=segment_ids)
  return xla_attention(query, key, value, bias=bias[:, :, :length, :length],
                       mask=mask, dropout_rate=dropout_rate,
                       dropout_rng=dropout_rng)


#: Cached decoding attends over the filled part of the cache only (in
#: blocks) when one key cache is at least this large; below it, the whole
#: cache is read (a branch costs more than it saves at small batches).
FILLED_ONLY_MIN_BYTES = 32 * 2**20
#: Blocks the cache length is cut into for that choice.
FILLED_ONLY_BLOCKS = 8


def attend_cached(query: Array, cached_key: Array, cached_value: Array, *,
                  bias_row: Array, index: Array,
                  filled_only: Optional[bool] = None) -> Array:
  """One decoding step: query ``[batch, 1, heads, dim]`` over the cache.

  Keys after a row's ``index`` are masked, so only the first
  ``max(index) + 1`` positions matter. With ``filled_only`` (by default when
  the key cache is at least ``FILLED_ONLY_MIN_BYTES``) the step reads only
  the smallest of ``FILLED_ONLY_BLOCKS`` prefix lengths that holds them (a
  ``lax.switch`` over static slices): at large batches the cache read is the
  step's main cost and a row's filled part averages about two thirds of it.
  The result equals attention over the whole cache (the skipped keys have
  zero weight).

  Args:
    query: the new position's query.
    cached_key: ``[batch, max_length, heads, dim]`` keys, the new one written.
    cached_value: values alike.
    bias_row: ``[batch, heads, 1, max_length]`` position bias of the query.
    index: ``[batch]`` position of the query; keys after it are masked.
    filled_only: force the choice (None: by the cache's size).
  """
  length = cached_key.shape[1]
  if filled_only is None:
    filled_only = (cached_key.size * cached_key.dtype.itemsize
                   >= FILLED_ONLY_MIN_BYTES)

  def attend_first(n):
    def fn(q, k, v, b, i):
      keys = jnp.arange(n)
      mask = (keys[None, :] <= i[:, None])[:, None, None, :]
      return xla_attention(q, k[:, :n], v[:, :n], bias=b[..., :n], mask=mask)
    return fn

  operands = (query, cached_key, cached_value, bias_row, index)
  if not filled_only or length < 2 * FILLED_ONLY_BLOCKS:
    return attend_first(length)(*operands)
  block = -(-length // FILLED_ONLY_BLOCKS)
  sizes = [min(length, block * (j + 1)) for j in range(FILLED_ONLY_BLOCKS)]
  branch = jnp.clip((jnp.max(index) + block) // block - 1, 0,
                    FILLED_ONLY_BLOCKS - 1)
  return jax.lax.switch(branch, [attend_first(n) for n in sizes], *operands)


def write_cache(cache: Array, update: Array, index: Array) -> Array:
  """Writes ``update[b, 0]`` at ``cache[b, index[b]]`` (one scatter)."""
  batch = jnp.arange(cache.shape[0])
  return cache.at[batch, index].set(update[:, 0].astype(cache.dtype),
                                    mode="drop")


def prefill_cache(update: Array, lengths: Array) -> Array:
  """Keys or values of the first ``lengths[b]`` positions, zeros after."""
  keep = jnp.arange(update.shape[1])[None, :] < lengths[:, None]
  return jnp.where(keep[:, :, None, None], update, jnp.zeros_like(update))


__all__ = [
    "IMPLEMENTATIONS", "attend", "attend_cached", "cudnn_attention",
    "decoder_mask", "prefill_cache", "relative_position_buckets",
    "relative_position_buckets_at", "resolve_implementation", "write_cache",
    "xla_attention",
]
