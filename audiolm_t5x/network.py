"""AudioLM's decoder-only Transformer for T5X's ``DecoderOnlyModel``.

The network of the three AudioLM stages, selected by
``t5x_configs/models/audiolm_decoder.gin`` and driven by T5X's unchanged
``DecoderOnlyModel``, trainer, checkpoints and ``t5x.train`` / ``t5x.infer``
binaries. It has the interface, hyper-parameters and parameter tree of T5X's
decoder-only example network (``t5x/examples/decoder_only/network.py``): the
same parameter names, shapes, initialisers and logical axes, so the same
checkpoints restore into either (see BUILD.md, "Training speed"). What it
changes, for speed on GPUs and for prefix LMs:

* Attention through ``audiolm_t5x.attention.attend``: cuDNN flash attention
  on GPUs (``attention_implementation="auto"``), XLA einsums elsewhere; the
  length padded for the kernel inside attention only; a bidirectional prefix
  through a second cuDNN call with per-row sequence lengths
  (``prefix_attention_implementation``).
* T5's relative position bias built once per step (``[1, heads, S, S]``) and
  shared by all layers; with ``bidirectional_prefix_buckets`` the buckets are
  T5's bidirectional ones (16 past + 16 future), so positions inside a
  bidirectional prefix tell later keys apart (T5X's network gives every
  later key the bucket of distance 0).
* Rematerialisation of each layer under a gin-selected policy.
* The token embedding as a gather; the output layer as a bfloat16 matmul
  with float32 results (the loss stays float32).
* Cached decoding with its own cache (keys and values ``[batch, length,
  heads, head_dim]``, written with one scatter per step, and the step's bias
  row computed from its position instead of a cached ``S x S`` bias), used by
  T5X's ``predict_batch`` through ``decode=True`` / ``prefill=True`` exactly
  as T5X's network is.

With dropout off, the same parameters and causal buckets, its logits and
gradients equal T5X's network's within bfloat16 rounding
(``tests/test_network.py``).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Sequence, Tuple

from flax import linen as nn
from flax import struct
from flax.linen import partitioning as nn_partitioning
import jax
from jax.ad_checkpoint import checkpoint_name
import jax.numpy as jnp
import numpy as np

from audiolm_t5x import attention

param_with_axes = nn_partitioning.param_with_axes
Array = jax.Array

# Remat policies by name (gin strings). "names:a,b" saves only the
# activations tagged with those names: query, key, value, attention (the
# attention output before its projection), mlp_in (the gated hidden layer).
_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "nothing_saveable": jax.checkpoint_policies.nothing_saveable,
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
    "dots_with_no_batch_dims_saveable":
        jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    "everything_saveable": jax.checkpoint_policies.everything_saveable,
}
REMAT_POLICIES = ("none",) + tuple(_POLICIES) + ("names:<a,b,...>",)


def remat_policy(name: str) -> Optional[Callable[..., Any]]:
  """The ``jax.checkpoint`` policy called ``name`` (None for ``"none"``)."""
  if name == "none":
    return None
  if name.startswith("names:"):
    names = [n for n in name[len("names:"):].split(",") if n]
    return jax.checkpoint_policies.save_only_these_names(*names)
  if name not in _POLICIES:
    raise ValueError(f"remat_policy {name!r}: expected one of "
                     f"{REMAT_POLICIES}")
  return _POLICIES[name]


@struct.dataclass
class TransformerConfig:
  """Hyper-parameters: T5X's decoder-only ones, then this network's own."""

  vocab_size: int
  dtype: Any = jnp.float32  # activations; parameters are float32
  emb_dim: int = 512
  num_heads: int = 8
  num_layers: int = 6
  head_dim: int = 64
  mlp_dim: int = 2048
  mlp_activations: Sequence[str] = ("relu",)
  dropout_rate: float = 0.1
  logits_via_embedding: bool = False
  # "auto" (cuDNN on GPUs, XLA elsewhere), "cudnn" or "xla".
  attention_implementation: str = "auto"
  # The cuDNN kernel runs on lengths padded to a multiple of this.
  attention_pad_multiple: int = 64
  # Dropout on attention probabilities (XLA path only; the public cuDNN call
  # has none). T5X's network drops them at dropout_rate.
  attention_dropout: bool = True
  # T5's bidirectional buckets (for prefix LMs) instead of causal ones.
  bidirectional_prefix_buckets: bool = False
  # Bound on the bidirectional prefix (inputs length + 1) for the cuDNN path.
  max_prefix_length: Optional[int] = None
  # How the cuDNN path attends inside that bound: "cudnn" (a second fused
  # call with per-row sequence lengths; unpacked prefix-LM rows) or "xla".
  prefix_attention_implementation: str = "cudnn"
  relpos_num_buckets: int = 32
  relpos_max_distance: int = 128
  remat_policy: str = "none"
  logits_dtype: Any = jnp.float32


def _truncated_normal_fan_in():
  return nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")


class Projection(nn.Module):
  """Bias-free linear map over the trailing ``len(in_shape)`` axes.

  The kernel is stored float32 as ``[prod(in_shape), prod(features)]`` (the
  layout of T5X's checkpoints) and used in ``dtype``.
  """

  features: Tuple[int, ...]
  in_axes: int = 1
  kernel_axes: Tuple[str, str] = ("embed", "mlp")
  kernel_init: Callable[..., Array] = _truncated_normal_fan_in()
  dtype: Any = jnp.float32
  out_dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: Array) -> Array:
    in_shape = x.shape[-self.in_axes:]
    kernel = param_with_axes(
        "kernel", self.kernel_init,
        (int(np.prod(in_shape)), int(np.prod(self.features))), jnp.float32,
        axes=self.kernel_axes)
    kernel = kernel.astype(self.dtype).reshape(in_shape + self.features)
    contract = tuple(range(x.ndim - self.in_axes, x.ndim))
    return jax.lax.dot_general(
        x.astype(self.dtype), kernel,
        ((contract, tuple(range(self.in_axes))), ((), ())),
        preferred_element_type=self.out_dtype)


class RMSNorm(nn.Module):
  """T5's layer norm: scale only, no mean subtraction, float32 statistics."""

  dtype: Any = jnp.float32
  epsilon: float = 1e-6

  @nn.compact
  def __call__(self, x: Array) -> Array:
    scale = param_with_axes("scale", nn.initializers.ones, (x.shape[-1],),
                            jnp.float32, axes=("embed",))
    x = x.astype(jnp.float32)
    y = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), -1, keepdims=True)
                          + self.epsilon)
    return y.astype(self.dtype) * scale.astype(self.dtype)


class RelativePositionBias(nn.Module):
  """T5's per-head bias table; full ``[1, H, S, S]`` or one row per query."""

  config: TransformerConfig

  def setup(self):
    cfg = self.config
    self.rel_embedding = param_with_axes(
        "rel_embedding",
        nn.initializers.variance_scaling(1.0, "fan_avg", "uniform"),
        (cfg.num_heads, cfg.relpos_num_buckets), jnp.float32,
        axes=("heads", "relpos_buckets"))

  def _lookup(self, buckets):
    table = self.rel_embedding.astype(self.config.dtype)
    return jnp.take(table, buckets, axis=1)  # [H, ...]

  def __call__(self, length: int) -> Array:
    """``[1, H, length, length]``: a one-hot contraction, not a gather.

    The buckets are computed from iotas inside the program (no S x S
    constant), and the lookup is a matmul with their one-hot encoding, whose
    gradient is a matmul too (a gather's is a scatter-add of S x S values
    into 32 buckets, which serialises on GPUs).
    """
    cfg = self.config
    position = jnp.arange(length, dtype=jnp.int32)
    buckets = attention.relative_position_buckets_at(
        position, length, bidirectional=cfg.bidirectional_prefix_buckets,
        num_buckets=cfg.relpos_num_buckets,
        max_distance=cfg.relpos_max_distance)  # [q, k]
    one_hot = (buckets[None] == jnp.arange(cfg.relpos_num_buckets)[
        :, None, None]).astype(cfg.dtype)  # [buckets, q, k]
    table = self.rel_embedding.astype(cfg.dtype)
    return jnp.einsum("hn,nqk->hqk", table, one_hot)[None]

  def row(self, positions: Array, length: int) -> Array:
    """``[batch, H, 1, length]`` bias of one query per row at ``positions``."""
    cfg = self.config
    buckets = attention.relative_position_buckets_at(
        positions, length, bidirectional=cfg.bidirectional_prefix_buckets,
        num_buckets=cfg.relpos_num_buckets,
        max_distance=cfg.relpos_max_distance)
    return jnp.transpose(self._lookup(buckets), (1, 0, 2))[:, :, None, :]


# Modes of a forward pass.
TRAIN, INIT_CACHE, PREFILL, DECODE = "train", "init_cache", "prefill", "decode"


class SelfAttention(nn.Module):
  """Multi-head self-attention with T5X's parameter tree and a KV cache."""

  config: TransformerConfig
  mode: str = TRAIN
  deterministic: bool = True

  @nn.compact
  def __call__(self, x, bias, padding, prefix, segment_ids, index):
    cfg = self.config
    features = (cfg.num_heads, cfg.head_dim)
    init = nn.initializers.variance_scaling(1.0, "fan_in", "normal")
    # T5 folds 1/sqrt(head_dim) into the query initialiser (no logit scale).
    query_init = lambda *a: init(*a) / np.sqrt(cfg.head_dim).astype(  # pylint: disable=g-long-lambda
        np.float32)
    proj = functools.partial(Projection, features, 1, ("embed", "joined_kv"),
                             dtype=cfg.dtype)
    q = checkpoint_name(proj(kernel_init=query_init, name="query")(x), "query")
    k = checkpoint_name(proj(kernel_init=init, name="key")(x), "key")
    v = checkpoint_name(proj(kernel_init=init, name="value")(x), "value")

    if self.mode == TRAIN:
      impl = attention.resolve_implementation(cfg.attention_implementation)
      rng = None
      rate = cfg.dropout_rate if cfg.attention_dropout else 0.0
      if not self.deterministic and rate > 0.0:
        if impl == "xla":
          rng = self.make_rng("dropout")
        else:
          attention._warn_once(  # pylint: disable=protected-access
              "cuDNN attention: no dropout on attention probabilities (the "
              "other dropouts stay); BUILD.md, 'Attention dropout'")
      out = attention.attend(
          q, k, v, bias=bias, implementation=impl, padding=padding,
          prefix=prefix, segment_ids=segment_ids,
          max_prefix_length=cfg.max_prefix_length,
          pad_multiple=cfg.attention_pad_multiple,
          dropout_rate=rate, dropout_rng=rng,
          prefix_implementation=cfg.prefix_attention_implementation)
    else:
      cached_key = self.variable("cache", "cached_key", jnp.zeros, k.shape,
                                 k.dtype)
      cached_value = self.variable("cache", "cached_value", jnp.zeros,
                                   v.shape, v.dtype)
      if self.mode == INIT_CACHE:  # shapes only; the output is discarded
        out = jnp.zeros_like(q)
      elif self.mode == PREFILL:
        impl = attention.resolve_implementation(cfg.attention_implementation)
        out = attention.attend(
            q, k, v, bias=bias, implementation=impl, padding=padding,
            prefix=prefix, segment_ids=segment_ids,
            max_prefix_length=cfg.max_prefix_length,
            pad_multiple=cfg.attention_pad_multiple,
            prefix_implementation=cfg.prefix_attention_implementation)
        cached_key.value = attention.prefill_cache(k, index)
        cached_value.value = attention.prefill_cache(v, index)
      else:  # DECODE: one position per row at `index`
        if q.shape[1] != 1:
          raise ValueError(f"decoding takes one position per step, got "
                           f"{q.shape[1]}")
        cached_key.value = attention.write_cache(cached_key.value, k, index)
        cached_value.value = attention.write_cache(cached_value.value, v,
                                                   index)
        out = attention.attend_cached(q, cached_key.value, cached_value.value,
                                      bias_row=bias, index=index)
    out = checkpoint_name(out, "attention")
    return Projection((x.shape[-1],), 2, ("joined_kv", "embed"),
                      kernel_init=init, dtype=cfg.dtype, name="out")(out)


class MlpBlock(nn.Module):
  """Gated feed-forward block (``wi_0``, ``wi_1``, ``wo`` as in T5X)."""

  config: TransformerConfig
  deterministic: bool = True

  @nn.compact
  def __call__(self, x):
    cfg = self.config
    hidden = None
    for i, act in enumerate(cfg.mlp_activations):
      name = "wi" if len(cfg.mlp_activations) == 1 else f"wi_{i}"
      h = Projection((cfg.mlp_dim,), 1, ("embed", "mlp"), dtype=cfg.dtype,
                     name=name)(x)
      h = h if act == "linear" else getattr(nn, act)(h)
      hidden = h if hidden is None else hidden * h
    hidden = checkpoint_name(hidden, "mlp_in")
    hidden = nn.Dropout(rate=cfg.dropout_rate, broadcast_dims=(-2,))(
        hidden, deterministic=self.deterministic)
    return Projection((x.shape[-1],), 1, ("mlp", "embed"), dtype=cfg.dtype,
                      name="wo")(hidden)


class DecoderLayer(nn.Module):
  """Pre-norm Transformer layer: attention and feed-forward, residuals."""

  config: TransformerConfig
  mode: str = TRAIN
  deterministic: bool = True

  @nn.compact
  def __call__(self, x, bias, padding, prefix, segment_ids, index):
    cfg = self.config
    dropout = lambda name: nn.Dropout(  # pylint: disable=g-long-lambda
        rate=cfg.dropout_rate, broadcast_dims=(-2,), name=name)
    y = RMSNorm(dtype=cfg.dtype, name="pre_self_attention_layer_norm")(x)
    y = SelfAttention(cfg, self.mode, self.deterministic,
                      name="self_attention")(y, bias, padding, prefix,
                                             segment_ids, index)
    x = x + dropout("post_self_attention_dropout")(
        y, deterministic=self.deterministic)
    y = RMSNorm(dtype=cfg.dtype, name="pre_mlp_layer_norm")(x)
    y = MlpBlock(cfg, self.deterministic, name="mlp")(y)
    return x + dropout("post_mlp_dropout")(y, deterministic=self.deterministic)


class Decoder(nn.Module):
  """Embedding, the layers, final norm and output logits."""

  config: TransformerConfig

  @nn.compact
  def __call__(self, decoder_input_tokens: Array,
               decoder_target_tokens: Optional[Array],
               decoder_segment_ids: Optional[Array] = None,
               decoder_positions: Optional[Array] = None,
               decoder_causal_attention: Optional[Array] = None,
               *, enable_dropout: bool = True, decode: bool = False,
               max_decode_length: Optional[int] = None,
               prefill: Optional[bool] = None,
               prefill_lengths: Optional[Array] = None) -> Array:
    """Logits ``[batch, length, vocab]`` (float32 by default).

    Arguments as T5X's decoder-only network: teacher-forced training and
    scoring (``decode=False``), the cache's creation (``decode=True`` on the
    full length, before any cache exists), prefill of a prompt
    (``prefill=True`` with ``prefill_lengths``) and one-position decoding
    steps (``decode=True``). ``decoder_positions`` is unused: positions are
    the row's indices, and packed segments are kept apart by the mask.
    """
    del decoder_positions, max_decode_length
    cfg = self.config
    deterministic = not enable_dropout
    batch, length = decoder_input_tokens.shape
    index_var = None
    if prefill:
      mode = PREFILL
    elif decode:
      mode = DECODE if self.has_variable("cache", "cache_index") else (
          INIT_CACHE)
    else:
      mode = TRAIN
    if mode != TRAIN:
      index_var = self.variable("cache", "cache_index", jnp.zeros, (batch,),
                                jnp.int32)

    table = TokenEmbedding(cfg, name="token_embedder")
    x = table(decoder_input_tokens.astype(jnp.int32))
    x = nn.Dropout(rate=cfg.dropout_rate, broadcast_dims=(-2,),
                   name="input_dropout")(x, deterministic=deterministic)
    x = x.astype(cfg.dtype)

    relpos = RelativePositionBias(cfg, name="relpos_bias")
    padding = prefix = segment_ids = index = None
    if mode == DECODE:
      index = index_var.value
      bias = relpos.row(index, self._cache_length())
    else:
      impl = attention.resolve_implementation(cfg.attention_implementation)
      bias_length = length
      if impl == "cudnn" and mode != INIT_CACHE:
        bias_length = -(-length // cfg.attention_pad_multiple) * (
            cfg.attention_pad_multiple)
      bias = relpos(bias_length)
      padding = decoder_target_tokens > 0
      prefix = decoder_causal_attention
      segment_ids = decoder_segment_ids
      if mode == PREFILL:
        index = prefill_lengths.astype(jnp.int32)

    layer_cls = DecoderLayer
    policy = remat_policy(cfg.remat_policy)
    if mode == TRAIN and cfg.remat_policy != "none":
      layer_cls = nn.remat(DecoderLayer, policy=policy, prevent_cse=True)
    for i in range(cfg.num_layers):
      x = layer_cls(cfg, mode, deterministic, name=f"layers_{i}")(
          x, bias, padding, prefix, segment_ids, index)

    if mode == PREFILL:
      index_var.value = index
    elif mode == DECODE:
      index_var.value = index + 1

    x = RMSNorm(dtype=cfg.dtype, name="decoder_norm")(x)
    x = nn.Dropout(rate=cfg.dropout_rate, broadcast_dims=(-2,),
                   name="output_dropout")(x, deterministic=deterministic)
    if cfg.logits_via_embedding:
      logits = table.attend(x) / jnp.sqrt(x.shape[-1]).astype(cfg.logits_dtype)
    else:
      logits = Projection((cfg.vocab_size,), 1, ("embed", "vocab"),
                          dtype=cfg.dtype, out_dtype=cfg.logits_dtype,
                          name="logits_dense")(x)
    return logits

  def _cache_length(self) -> int:
    cache = self.variables["cache"]["layers_0"]["self_attention"]
    return cache["cached_key"].shape[1]


class TokenEmbedding(nn.Module):
  """Token table ``[vocab, emb_dim]``: a gather in, a matmul out."""

  config: TransformerConfig

  def setup(self):
    cfg = self.config
    self.embedding = param_with_axes(
        "embedding", nn.initializers.normal(stddev=1.0),
        (cfg.vocab_size, cfg.emb_dim), jnp.float32, axes=("vocab", "embed"))

  def __call__(self, tokens: Array) -> Array:
    return jnp.take(self.embedding, tokens, axis=0).astype(self.config.dtype)

  def attend(self, x: Array) -> Array:
    cfg = self.config
    return jax.lax.dot_general(
        x.astype(cfg.dtype), self.embedding.astype(cfg.dtype),
        (((x.ndim - 1,), (1,)), ((), ())),
        preferred_element_type=cfg.logits_dtype)


class DecoderWrapper(nn.Module):
  """The outer ``decoder/`` name scope of T5X's checkpoints."""

  config: TransformerConfig

  def setup(self):
    self.decoder = Decoder(self.config, name="decoder")

  def __call__(self, *args, **kwargs):
    return self.decoder(*args, **kwargs)
