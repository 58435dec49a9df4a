"""A trained T5X stage behind the :class:`~.stage_model.StageModel` interface.

Loading follows T5X's own binaries: the stage's gin files are parsed as
``t5x.infer`` parses them (the project's ``infer/<stage>.gin`` by default,
plus size gins such as ``models/tiny.gin`` and bindings), the model is
``%MODEL`` and the checkpoint is restored with ``utils.TrainStateInitializer``
(no optimizer state) and ``utils.create_checkpoint_manager_and_restore``, as
``t5x.infer.infer`` does. Whatever network the gin names (T5X's
``decoder_only`` example or the project's own) is used unchanged.

Sampling goes through ``DecoderOnlyModel.predict_batch_with_aux`` with
``decoder_params``: T5X's ``decoding.temperature_sample`` with the network's
KV cache (prefilled over the prompt), per-row ``max_decode_steps`` and a
``logit_callback_fn`` that keeps only the ids of the level each target
position holds (:mod:`.constraints`).

Where a request carries its own seed (the chain's requests do), the
callback also draws the row's sample with the row's own key (Gumbel-max;
T5X then takes the argmax at temperature 0): T5X draws one key per batch,
which would make a sample depend on its batch (see ``_predict_fn``).
Parameters are restored in bfloat16 for a bfloat16 network, as
``t5x.infer`` restores them (:func:`inference_dtype`).

The one method overridden (:class:`ForcedTargetDecoderOnlyModel`): T5X takes
the sampling prompt to be exactly the prefix-LM ``inputs`` region
(``decoder_input_tokens * decoder_causal_attention``), so a forced start of
the *target* (stage 2's prompt coarse frames) could only be passed by making
it bidirectional too, which training never did. The override lets the batch
carry a separate bidirectional mask; the forced tokens are then prefilled into
the cache with causal attention, exactly as in training.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import threading
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from audiolm_t5x.pipelines.generation import constraints as constraints_lib
from audiolm_t5x.pipelines.generation import stage_model as stage_model_lib

#: Batch feature with the bidirectional (prefix-LM ``inputs``) region, when
#: ``decoder_causal_attention`` also covers a forced start of the target.
BIDIRECTIONAL_KEY = "decoder_bidirectional_attention"

_GIN_LOCK = threading.Lock()  # gin's configuration is process-global


def _models():
  from t5x import models  # pylint: disable=g-import-not-at-top
  return models


def forced_target_model_class():
  """``ForcedTargetDecoderOnlyModel``, a subclass of T5X's DecoderOnlyModel.

  Built lazily so that this module imports without T5X.
  """
  global _FORCED_CLASS
  if _FORCED_CLASS is not None:
    return _FORCED_CLASS
  models = _models()

  class ForcedTargetDecoderOnlyModel(models.DecoderOnlyModel):
    """DecoderOnlyModel whose sampling prompt may extend into the target.

    With ``BIDIRECTIONAL_KEY`` in the batch, ``decoder_causal_attention``
    marks the whole prompt (``inputs`` + forced target start: T5X keeps
    those tokens and prefills them into the cache) while ``BIDIRECTIONAL_KEY``
    marks only the ``inputs`` region that attends bidirectionally. Without
    the key, T5X's behaviour is unchanged.
    """

    _bidirectional_override = None

    def predict_batch_with_aux(self, params, batch, rng=None, **kwargs):
      if BIDIRECTIONAL_KEY not in batch:
        return super().predict_batch_with_aux(params, batch, rng, **kwargs)
      batch = dict(batch)
      # Read by _get_decoder_causal_attention below while T5X builds the
      # prefill's attention mask (during this call's trace only).
      self._bidirectional_override = batch.pop(BIDIRECTIONAL_KEY)
      try:
        return super().predict_batch_with_aux(params, batch, rng, **kwargs)
      finally:
        self._bidirectional_override = None

    def _get_decoder_causal_attention(self, batch):
      if self._bidirectional_override is not None:
        if not self._inputs_bidirectional_attention:
          return None  # a causal stage: no bidirectional region at all
        return self._bidirectional_override
      return super()._get_decoder_causal_attention(batch)

  _FORCED_CLASS = ForcedTargetDecoderOnlyModel
  return _FORCED_CLASS


_FORCED_CLASS = None


def parse_stage_gin(gin_files: Sequence[str], gin_bindings: Sequence[str] = (),
                    *, checkpoint: str = "") -> Dict[str, Any]:
  """Parses a stage's gin files as ``t5x.infer`` does; returns what we need.

  Returns ``{"model", "temperature", "top_k", "task_feature_lengths"}``;
  the gin configuration is cleared afterwards.
  """
  import gin  # pylint: disable=g-import-not-at-top
  from t5x import gin_utils  # pylint: disable=g-import-not-at-top
  from audiolm_t5x import t5x_configs  # pylint: disable=g-import-not-at-top

  bindings = [f"CHECKPOINT_PATH={checkpoint!r}",
              "INFER_OUTPUT_DIR='/tmp/unused'", *gin_bindings]
  with _GIN_LOCK:
    saved_main = sys.modules["__main__"]
    # The run gins configure `__main__` (import __main__ as infer_script).
    sys.modules["__main__"] = importlib.import_module("t5x.infer")
    try:
      gin.clear_config()
      gin_utils.parse_gin_flags([t5x_configs.CONFIG_DIR], list(gin_files),
                                bindings, finalize_config=False)
      model = gin.query_parameter("%MODEL").scoped_configurable_fn()

      def query(name, default):
        try:
          return gin.query_parameter(name)
        except ValueError:
          return default
      out = {
          "model": model,
          "temperature": query("%TEMPERATURE", None),
          "top_k": query("decoding.temperature_sample.topk", 0),
          "task_feature_lengths": query("%TASK_FEATURE_LENGTHS", None),
      }
    finally:
      gin.clear_config()
      sys.modules["__main__"] = saved_main
  return out


def inference_dtype(module) -> str:
  """``"bfloat16"`` for a network computing in bfloat16, else ``"float32"``.

  ``t5x.infer`` restores parameters in bfloat16 (T5X's ``runs/infer.gin``:
  ``utils.RestoreCheckpointConfig.dtype = 'bfloat16'``). For a network whose
  activations are bfloat16 that changes no result (every parameter is cast
  to bfloat16 before use, in T5X's network and in the project's) and halves
  the parameter reads of each decoding step; a float32 network keeps float32.
  """
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  config = getattr(module, "config", None)
  dtype = getattr(config, "dtype", None)
  return ("bfloat16" if dtype is not None and jnp.dtype(dtype) == jnp.bfloat16
          else "float32")


def cast_params(params, dtype: str):
  """Floating-point leaves of ``params`` as ``dtype`` (others unchanged)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  return jax.tree_util.tree_map(
      lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating)
      else x, params)


def restore_params(model, checkpoint: str):
  """Restores a checkpoint's parameters as ``t5x.infer`` does (no optimizer).

  In :func:`inference_dtype` (bfloat16 for the project's gins, as
  ``t5x.infer``).
  """
  from t5x import partitioning  # pylint: disable=g-import-not-at-top
  from t5x import utils  # pylint: disable=g-import-not-at-top

  partitioner = partitioning.PjitPartitioner(num_partitions=1)
  shape = (1, 8)  # parameters of a decoder-only network do not depend on it
  initializer = utils.TrainStateInitializer(
      optimizer_def=None, init_fn=model.get_initial_variables,
      input_shapes={"decoder_input_tokens": shape,
                    "decoder_target_tokens": shape,
                    "decoder_causal_attention": shape},
      partitioner=partitioner)
  cfg = utils.RestoreCheckpointConfig(path=checkpoint, mode="specific",
                                      strict=False,
                                      dtype=inference_dtype(model.module))
  state, _ = utils.create_checkpoint_manager_and_restore(
      initializer, partitioner, cfg, checkpoint, None, use_orbax=True)
  if state is None:
    raise FileNotFoundError(f"{checkpoint}: no T5X checkpoint could be "
                            "restored from there")
  return state.params  # stays on the device(s) it was restored to


class T5XStageModel(stage_model_lib.StageModel):
  """One trained stage: a T5X ``DecoderOnlyModel`` and its parameters.

  Args:
    model: a ``t5x.models.DecoderOnlyModel`` (as built from the stage gin).
    params: its parameters (a restored checkpoint's, or any initialised).
    batch_size: rows per ``predict_batch_with_aux`` call; a smaller batch is
      padded up to it (one compiled shape per length bucket).
    length_multiple: sequence lengths are rounded up to this (fewer shapes).
    description: for output metadata.
  """

  def __init__(self, model, params, *, batch_size: int = 16,
               length_multiple: int = 64, description: str = ""):
    import jax  # pylint: disable=g-import-not-at-top
    forced_cls = forced_target_model_class()
    bidirectional = bool(model._inputs_bidirectional_attention)  # pylint: disable=protected-access
    from t5x import decoding  # pylint: disable=g-import-not-at-top
    self._decoding = decoding
    self.model = forced_cls(
        module=model.module, vocabulary=model.output_vocabulary,
        optimizer_def=None, decode_fn=decoding.temperature_sample,
        inputs_bidirectional_attention=bidirectional)
    self.params = params
    self.bidirectional_inputs = bidirectional
    self.vocab_size = int(model.module.config.vocab_size)
    self.batch_size = int(batch_size)
    self.length_multiple = int(length_multiple)
    self.description = description
    self._predict = jax.jit(self._predict_fn,
                            static_argnames=("top_k", "top_p"))

  @classmethod
  def from_checkpoint(cls, checkpoint: str, *, gin_files: Sequence[str],
                      gin_bindings: Sequence[str] = (), batch_size: int = 16
                      ) -> "T5XStageModel":
    """Builds the stage from its gin files and restores ``checkpoint``."""
    if not os.path.exists(checkpoint) and "://" not in checkpoint:
      raise FileNotFoundError(f"{checkpoint}: no such checkpoint directory")
    parsed = parse_stage_gin(gin_files, gin_bindings, checkpoint=checkpoint)
    params = restore_params(parsed["model"], checkpoint)
    out = cls(parsed["model"], params, batch_size=batch_size,
              description=checkpoint)
    out.gin_defaults = {k: parsed[k] for k in ("temperature", "top_k",
                                               "task_feature_lengths")}
    return out

  gin_defaults: Dict[str, Any] = {}

  def _predict_fn(self, params, tokens, prompt_mask, bidirectional,
                  prefix_lengths, steps, bounds, temperature, rng,
                  row_seeds=None, *, top_k: int, top_p: float):
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    from t5x import binary_search  # pylint: disable=g-import-not-at-top
    neg_inf = self._decoding.NEG_INF_VALUE
    min_temperature = self._decoding.MIN_TEMPERATURE

    def keep_level_ids(logits, state):
      # state.cur_index is the target-sequence position being sampled (T5X's
      # loop writes its token at sequences[cur_index + 1], BOS at 0).
      t = state.cur_index - prefix_lengths
      phase = jnp.mod(t, bounds.shape[0])
      lo, hi = bounds[phase, 0][:, None], bounds[phase, 1][:, None]
      ids = jnp.arange(logits.shape[-1])[None, :]
      logits = jnp.where((ids >= lo) & (ids < hi), logits,
                         jnp.asarray(neg_inf, logits.dtype))
      if row_seeds is None:
        return logits
      # Per-row sampling, the one change to T5X's sampling: T5X draws one
      # key per batch (a row's sample then depends on the whole batch), so
      # the rows' own keys draw here, by the Gumbel-max trick (T5X's
      # categorical is the same argmax of logits / T + Gumbel noise), and
      # T5X runs at temperature 0 (argmax of what this returns). The noise
      # of row b at position i comes from fold_in(PRNGKey(row_seeds[b]), i).
      # Top-k / top-p are applied here as T5X applies them.
      scaled = logits / jnp.maximum(temperature, min_temperature)
      if top_k:
        scaled = binary_search.topk_mask(scaled, top_k, neg_inf)
      if top_p:
        scaled = binary_search.topp_mask(scaled, top_p, neg_inf)
      keys = jax.vmap(lambda s, i: jax.random.fold_in(
          jax.random.PRNGKey(s), i))(row_seeds, state.cur_index)
      noise = jax.vmap(lambda k: jax.random.gumbel(
          k, logits.shape[-1:], logits.dtype))(keys)
      return jnp.where(temperature > min_temperature, scaled + noise, logits)

    batch = {"decoder_input_tokens": tokens,
             "decoder_causal_attention": prompt_mask,
             BIDIRECTIONAL_KEY: bidirectional}
    decoded, _ = self.model.predict_batch_with_aux(
        params, batch, rng,
        decoder_params={
            "temperature": (temperature if row_seeds is None
                            else jnp.zeros_like(temperature)),
            "topk": top_k if row_seeds is None else 0,
            "topp": top_p if row_seeds is None else 0.0,
            "max_decode_steps": steps, "logit_callback_fn": keep_level_ids})
    return decoded

  def generate(self, requests, *, constraint, sampling, seed):
    import jax  # pylint: disable=g-import-not-at-top
    if not requests:
      return []
    m = self.length_multiple
    longest = max(1 + len(r.inputs) + r.length for r in requests)
    length = -(-longest // m) * m
    bounds = constraint.bounds()
    out: List[np.ndarray] = []
    key = jax.random.PRNGKey(seed)
    for chunk_index, first in enumerate(range(0, len(requests),
                                              self.batch_size)):
      chunk = list(requests[first:first + self.batch_size])
      n = len(chunk)
      chunk += [chunk[0]] * (self.batch_size - n)  # fixed batch shape
      b = len(chunk)
      tokens = np.zeros([b, length], np.int32)
      prompt_mask = np.zeros([b, length], np.int32)
      bidirectional = np.zeros([b, length], np.int32)
      prefix = np.zeros([b], np.int32)
      steps = np.zeros([b], np.int32)
      for i, r in enumerate(chunk):
        a, f = len(r.inputs), len(r.forced)
        # decoder_input_tokens = [BOS=0, inputs..., forced target...], the
        # PrefixLMFeatureConverter's layout with the target shifted right.
        tokens[i, 1:1 + a] = r.inputs
        tokens[i, 1 + a:1 + a + f] = r.forced
        prompt_mask[i, :1 + a + f] = 1
        bidirectional[i, :1 + a] = 1
        prefix[i] = a
        steps[i] = r.length - f
      row_seeds = None
      if all(r.seed is not None for r in chunk):
        row_seeds = np.asarray([r.seed for r in chunk], np.uint32)
      if np.any((tokens[:, 1:] == 0) & (prompt_mask[:, 1:] > 0)):
        raise constraints_lib.GenerationError(
            f"stage {constraint.stage}: PAD (0) inside a prompt")
      decoded = self._predict(
          self.params, tokens, prompt_mask, bidirectional, prefix, steps,
          bounds, np.float32(sampling.temperature),
          jax.random.fold_in(key, chunk_index), row_seeds,
          top_k=int(sampling.top_k),
          top_p=float(sampling.top_p))
      decoded = np.asarray(jax.device_get(decoded))
      for i, r in enumerate(chunk[:n]):
        k = r.length - len(r.forced)
        out.append(np.concatenate([np.asarray(r.forced, np.int64),
                                   decoded[i, :k].astype(np.int64)]))
    return out
