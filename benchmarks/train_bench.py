"""Training throughput of the AudioLM stages at the paper's size, on GPUs.

Measures, for each stage at its sequence length (read from the stage gins in
``t5x_configs/stages/``), the train-step time, tokens per second and model
FLOPs utilisation of T5X's decoder-only Flax network
(``t5x.examples.decoder_only.network``) at the paper's size (12 layers,
d_model 1024, 16 heads, FFN 4096, from ``audiolm_t5x.constants``) with
bfloat16 activations, float32 parameters, dropout 0.1 and Adafactor, with the
largest per-device batch that fits, data parallel over 1 and over N devices.

This is the train step that T5X's train binary runs (same network, same
loss with z-loss, same optimizer family), in plain JAX, so that it runs on
hosts without TensorFlow; input pipeline and checkpointing are not included.

Run on a GPU host (T5X installed, or its ``t5x/examples/decoder_only`` folder
on PYTHONPATH)::

  XLA_PYTHON_CLIENT_MEM_FRACTION=0.95 python3 benchmarks/train_bench.py \\
    --stages semantic,coarse,fine --devices 1,2 --steps 10

MFU counts model FLOPs per token as 6 * N_matmul + 12 * L * d_model * S
(PaLM's formula: N_matmul is every matmul parameter, the output layer
included, the input embedding lookup excluded; the second term is attention
over S positions, forward and backward) against the device's dense bf16 peak
(--peak_tflops, 989 for an H100/H200 SXM by NVIDIA's datasheet).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import re
import sys
import time
from typing import Dict, List, Optional

os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.95")
os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # never NVLink multicast

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

from audiolm_t5x import constants  # pylint: disable=g-import-not-at-top

_BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
if _BENCH_DIR not in sys.path:
  sys.path.insert(0, _BENCH_DIR)  # stock_network

STAGES_DIR = os.path.join(_REPO, "t5x_configs", "stages")


@dataclasses.dataclass
class StageShape:
  """What the benchmark needs from a stage gin."""

  name: str
  inputs: int
  targets: int
  vocab_size: int

  @property
  def length(self) -> int:
    """Decoder length: the prefix LM concatenates inputs and targets."""
    return self.inputs + self.targets


def read_stage_gin(stage: str, stages_dir: str = STAGES_DIR) -> StageShape:
  """Reads TASK_FEATURE_LENGTHS and VOCAB_SIZE from ``stages/<stage>.gin``.

  Only these two literal bindings are read (no gin, no T5X), so the figures
  follow the configs users train with.
  """
  path = os.path.join(stages_dir, f"{stage}.gin")
  with open(path) as f:
    text = f.read()
  m = re.search(r"^TASK_FEATURE_LENGTHS\s*=\s*(\{.*?\})", text, re.M | re.S)
  v = re.search(r"^VOCAB_SIZE\s*=\s*(\d+)", text, re.M)
  if not m or not v:
    raise ValueError(f"{path}: expected literal bindings of "
                     "TASK_FEATURE_LENGTHS and VOCAB_SIZE")
  body = re.sub(r"#[^\n]*", "", m.group(1))
  lengths = ast.literal_eval(body)
  return StageShape(stage, int(lengths.get("inputs", 0)),
                    int(lengths["targets"]), int(v.group(1)))


def matmul_params(*, vocab_size: int, num_layers: Optional[int] = None,
                  d_model: int = constants.D_MODEL,
                  d_ff: int = constants.D_FF, gated: bool = True) -> int:
  """Matmul parameters: attention, gated FFN and the output layer."""
  num_layers = NUM_LAYERS if num_layers is None else num_layers
  attn = 4 * d_model * d_model
  ffn = (3 if gated else 2) * d_model * d_ff
  return num_layers * (attn + ffn) + d_model * vocab_size


def flops_per_token(*, vocab_size: int, length: int) -> float:
  """Model FLOPs per trained token (forward and backward)."""
  return (6.0 * matmul_params(vocab_size=vocab_size)
          + 12.0 * NUM_LAYERS * constants.D_MODEL * length)


NUM_LAYERS = constants.NUM_LAYERS  # --layers overrides it for smoke runs


@dataclasses.dataclass(frozen=True)
class Variant:
  """Which network and how it is run."""

  network: str = "stock"  # "stock": T5X's decoder-only network; "ours"
  remat: str = "none"  # ours: audiolm_t5x.network.remat_policy name
  pad_multiple: int = 64  # ours: cuDNN length multiple
  attention: str = "auto"  # ours: "auto", "cudnn" or "xla"
  microbatches: int = 1  # gradient accumulation, as trainer.num_microbatches
  prefix: str = "cudnn"  # ours, prefix stages: prefix_attention_implementation

  @property
  def label(self) -> str:
    if self.network == "stock":
      return "stock"
    return (f"ours(remat={self.remat},pad={self.pad_multiple}"
            f",mb={self.microbatches},prefix={self.prefix})")


def make_model(shape: StageShape, variant: Variant, *, dropout: float = None):
  """The paper-size network of ``variant`` for ``shape``."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  kwargs = dict(
      vocab_size=shape.vocab_size, dtype=jnp.bfloat16,
      emb_dim=constants.D_MODEL, num_heads=constants.NUM_HEADS,
      num_layers=NUM_LAYERS, head_dim=constants.HEAD_DIM,
      mlp_dim=constants.D_FF, mlp_activations=("gelu", "linear"),
      dropout_rate=constants.DROPOUT_RATE if dropout is None else dropout,
      logits_via_embedding=False)
  if variant.network == "stock":
    import stock_network  # pylint: disable=g-import-not-at-top
    network = stock_network.load()
    return network.DecoderWrapper(network.TransformerConfig(**kwargs))
  from audiolm_t5x import network  # pylint: disable=g-import-not-at-top
  return network.DecoderWrapper(network.TransformerConfig(
      **kwargs, attention_implementation=variant.attention,
      attention_pad_multiple=variant.pad_multiple,
      bidirectional_prefix_buckets=bool(shape.inputs),
      max_prefix_length=(shape.inputs + 1) if shape.inputs else None,
      prefix_attention_implementation=variant.prefix,
      remat_policy=variant.remat))


def _build(shape: StageShape, devices, per_device_batch: int, *, seed: int,
           variant: Variant = Variant()):
  """Builds the sharded train step, state and a batch for ``devices``."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # pylint: disable=g-import-not-at-top

  model = make_model(shape, variant)
  mesh = Mesh(np.asarray(devices), ("data",))
  replicated = NamedSharding(mesh, P())
  data_sharded = NamedSharding(mesh, P("data"))
  batch_size = per_device_batch * len(devices)
  length = shape.length
  micro = variant.microbatches
  if per_device_batch % micro:
    raise ValueError(f"batch {per_device_batch} per device is not a multiple "
                     f"of {micro} microbatches")

  tx = optax.adafactor(learning_rate=1e-2, decay_rate=0.8,
                       multiply_by_parameter_scale=True)

  def init(rng):
    dummy = jnp.ones((1, length), jnp.int32)
    params = model.init(rng, dummy, dummy, enable_dropout=False)["params"]
    return params, tx.init(params)

  params, opt_state = jax.jit(init, out_shardings=replicated)(
      jax.random.PRNGKey(seed))

  rng = np.random.default_rng(seed)
  tokens = rng.integers(2, shape.vocab_size, size=(batch_size, length),
                        dtype=np.int32)
  inputs = np.concatenate(
      [np.zeros((batch_size, 1), np.int32), tokens[:, :-1]], axis=1)
  weights = np.ones((batch_size, length), np.float32)
  weights[:, :shape.inputs] = 0.0  # loss on targets only
  batch = {"decoder_target_tokens": tokens, "decoder_input_tokens": inputs,
           "decoder_loss_weights": weights}
  if shape.inputs:
    causal = np.zeros((batch_size, length), np.int32)
    causal[:, :shape.inputs + 1] = 1  # as seqio's PrefixLMFeatureConverter
    batch["decoder_causal_attention"] = causal
  batch = jax.device_put(batch, data_sharded)

  z_loss = 1e-4  # as models/audiolm_decoder.gin

  def loss_fn(p, b, dropout_rng):
    logits = model.apply(
        {"params": p}, b["decoder_input_tokens"], b["decoder_target_tokens"],
        decoder_causal_attention=b.get("decoder_causal_attention"),
        enable_dropout=True, rngs={"dropout": dropout_rng})
    logits = logits.astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    target_logit = jnp.take_along_axis(
        logits, b["decoder_target_tokens"][..., None], axis=-1)[..., 0]
    w = b["decoder_loss_weights"]
    loss = jnp.sum(((log_z - target_logit) + z_loss * log_z**2) * w)
    return loss, jnp.sum(w)

  def grads_of(p, b, step_rng):
    if micro == 1:
      (loss, n), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          p, b, step_rng)
      return loss / n, jax.tree.map(lambda g: g / n, grads)
    # Gradient accumulation over microbatches, as T5X's trainer does.
    split = jax.tree.map(
        lambda x: x.reshape((micro, x.shape[0] // micro) + x.shape[1:]), b)

    def body(carry, xs):
      loss_sum, n_sum, g_sum = carry
      mb, i = xs
      (loss, n), g = jax.value_and_grad(loss_fn, has_aux=True)(
          p, mb, jax.random.fold_in(step_rng, i))
      return (loss_sum + loss, n_sum + n,
              jax.tree.map(jnp.add, g_sum, g)), None

    zeros = jax.tree.map(jnp.zeros_like, p)
    (loss, n, grads), _ = jax.lax.scan(
        body, (0.0, 0.0, zeros), (split, jnp.arange(micro)))
    return loss / n, jax.tree.map(lambda g: g / n, grads)

  def step(p, o, b, step_rng):
    loss, grads = grads_of(p, b, step_rng)
    updates, o = tx.update(grads, o, p)
    return optax.apply_updates(p, updates), o, loss

  step_fn = jax.jit(step, in_shardings=(replicated, replicated, data_sharded,
                                        replicated),
                    out_shardings=(replicated, replicated, replicated),
                    donate_argnums=(0, 1))
  return step_fn, params, opt_state, batch


def _memory_plan(compiled):
  """(fixed, batch-dependent) device bytes XLA plans, or None if unknown.

  Arguments and outputs (parameters, optimizer state, the batch) are taken
  as fixed and the temporaries (activations kept for the backward pass,
  gradients) as proportional to the batch: slightly conservative.
  """
  try:
    stats = compiled.memory_analysis()
    fixed = (stats.argument_size_in_bytes + stats.output_size_in_bytes
             - stats.alias_size_in_bytes)
    return int(fixed), int(stats.temp_size_in_bytes)
  except Exception:  # pylint: disable=broad-except
    return None


def _compiled_bytes(compiled) -> Optional[int]:
  """Peak device bytes XLA plans for one executable (None if unknown)."""
  plan = _memory_plan(compiled)
  return None if plan is None else sum(plan)


def measure(shape: StageShape, devices, per_device_batch: int, *,
            steps: int, warmup: int, seed: int = 0,
            variant: Variant = Variant()) -> Dict:
  """Compiles and times ``steps`` train steps; raises on out-of-memory."""
  import jax  # pylint: disable=g-import-not-at-top
  step_fn, params, opt_state, batch = _build(shape, devices, per_device_batch,
                                             seed=seed, variant=variant)
  key = jax.random.PRNGKey(seed + 1)
  t0 = time.perf_counter()
  compiled = step_fn.lower(params, opt_state, batch, key).compile()
  compile_s = time.perf_counter() - t0
  planned = _compiled_bytes(compiled)
  for i in range(warmup):
    params, opt_state, loss = compiled(params, opt_state, batch,
                                       jax.random.fold_in(key, i))
    loss.block_until_ready()
  times = []
  for i in range(steps):
    t0 = time.perf_counter()
    params, opt_state, loss = compiled(params, opt_state, batch,
                                       jax.random.fold_in(key, warmup + i))
    loss.block_until_ready()
    times.append(time.perf_counter() - t0)
  step_s = sorted(times)[len(times) // 2]  # median
  stats = devices[0].memory_stats() or {}
  n = len(devices)
  global_batch = per_device_batch * n
  tokens_per_s = global_batch * shape.length / step_s
  return {
      "stage": shape.name, "length": shape.length, "inputs": shape.inputs,
      "targets": shape.targets, "vocab_size": shape.vocab_size,
      "devices": n, "per_device_batch": per_device_batch,
      "global_batch": global_batch, "step_s": step_s,
      "tokens_per_s": tokens_per_s,
      "target_tokens_per_s": global_batch * shape.targets / step_s,
      "compile_s": compile_s, "planned_gb_per_device":
          None if planned is None else planned / 1e9,
      "loss": float(loss), "network": variant.label,
      "process_peak_gb": stats.get("peak_bytes_in_use", 0) / 1e9 or None,
  }


def measure_decode(shape: StageShape, device, batch: int, *, steps: int,
                   variant: Variant) -> Dict:
  """Cached decoding: ``steps`` one-token steps over a full-length cache.

  The cache holds the stage's whole decoder length (as T5X's predict_batch
  allocates it); each step attends over all of it under the mask, so the
  time per step does not depend on how far decoding has got. The steps run
  inside one ``lax.fori_loop`` (no Python dispatch per token), with the
  parameters in bfloat16 (as inference restores them) and greedy argmax.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  model = make_model(shape, variant, dropout=0.0)
  length = shape.length
  dummy = jnp.ones((1, length), jnp.int32)
  params = jax.jit(lambda r: model.init(r, dummy, dummy,
                                        enable_dropout=False)["params"])(
                                            jax.random.PRNGKey(0))
  params = jax.tree.map(lambda x: x.astype(jnp.bfloat16), params)
  full = jnp.ones((batch, length), jnp.int32)
  _, variables = jax.jit(lambda p: model.apply(
      {"params": p}, full, full, enable_dropout=False, decode=True,
      mutable=["cache"]))(params)
  cache = variables["cache"]

  def run(p, cache, token):
    def body(_, carry):
      cache, token = carry
      logits, new = model.apply({"params": p, "cache": cache}, token, token,
                                enable_dropout=False, decode=True,
                                max_decode_length=length, mutable=["cache"])
      return new["cache"], jnp.argmax(logits, -1).astype(jnp.int32)
    return jax.lax.fori_loop(0, steps, body, (cache, token))

  run = jax.jit(run, donate_argnums=(1,))
  token = jnp.full((batch, 1), 2, jnp.int32)
  t0 = time.perf_counter()
  cache, out = run(params, cache, token)
  out.block_until_ready()
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  cache, out = run(params, cache, token)
  out.block_until_ready()
  step_s = (time.perf_counter() - t0) / steps
  return {"stage": shape.name, "length": length, "network": variant.label,
          "decode_batch": batch, "decode_step_ms": step_s * 1e3,
          "decode_tokens_per_s": batch / step_s, "compile_s": compile_s}


def _is_oom(err: Exception) -> bool:
  text = str(err)
  return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or (
      "out of memory" in text)


def largest_batch(shape: StageShape, device, *, probe: int, multiple: int,
                  budget_bytes: float) -> int:
  """Largest per-device batch whose planned memory fits ``budget_bytes``.

  One probe compile at batch ``probe``; XLA's temporaries grow linearly with
  the batch.
  """
  import jax  # pylint: disable=g-import-not-at-top
  step_fn, params, opt_state, batch = _build(shape, [device], probe, seed=0)
  compiled = step_fn.lower(params, opt_state, batch,
                           jax.random.PRNGKey(0)).compile()
  plan = _memory_plan(compiled)
  del params, opt_state, batch, compiled
  if plan is None:
    raise RuntimeError("the backend gives no memory analysis; pass --batch")
  fixed, temp = plan
  per_example = temp / probe
  best = int((budget_bytes - fixed) // per_example)
  best = max(multiple, best // multiple * multiple)
  print(f"[{shape.name}] plan at batch {probe}: {fixed/1e9:.1f} GB fixed + "
        f"{temp/1e9:.1f} GB temporaries = {per_example/1e9:.3f} GB/sequence; "
        f"budget {budget_bytes/1e9:.0f} GB -> batch {best}", flush=True)
  return best


def _per_stage(text: str, stage: str, cast=int):
  """``"8"`` or ``"semantic=1,coarse=4"`` -> the value for ``stage``."""
  if "=" not in text:
    return cast(text)
  values = dict(item.split("=") for item in text.split(",") if item)
  if stage not in values:
    raise SystemExit(f"no value for stage {stage!r} in {text!r}")
  return cast(values[stage])


def parse_runs(text: str) -> List[tuple]:
  """``--runs``: ``stage/network/batch[/key=value...]`` items, ``;``-separated.

  Keys: ``mb`` (microbatches), ``remat`` (policy name), ``pad`` (length
  multiple), ``prefix`` (``cudnn`` or ``xla``), ``attention``. Returns
  ``(stage, Variant, per-device batch)`` tuples in order.
  """
  runs = []
  for item in (x.strip() for x in text.split(";")):
    if not item:
      continue
    parts = item.split("/")
    if len(parts) < 3 or parts[1] not in ("stock", "ours"):
      raise SystemExit(f"--runs item {item!r}: expected "
                       "stage/stock|ours/batch[/key=value...]")
    fields = {"network": parts[1]}
    names = {"mb": ("microbatches", int), "remat": ("remat", str),
             "pad": ("pad_multiple", int), "prefix": ("prefix", str),
             "attention": ("attention", str)}
    if parts[1] == "ours":
      fields["remat"] = "dots_with_no_batch_dims_saveable"
    for kv in parts[3:]:
      key, _, value = kv.partition("=")
      if key not in names:
        raise SystemExit(f"--runs item {item!r}: unknown key {key!r}")
      name, cast = names[key]
      fields[name] = cast(value)
    runs.append((parts[0], Variant(**fields), int(parts[2])))
  return runs


def check_prefix_attention(shape: StageShape, batch: int = 4) -> Dict:
  """Fused prefix attention vs the XLA prefix path on this device.

  Random bf16 q, k, v and bias at the stage's length, heads and prefix
  bound; rows with prefixes of different lengths, one with trailing
  padding. Returns the largest differences of the output (real queries)
  and of the gradients of q, k, v and the bias, relative to the largest
  magnitude of each.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from audiolm_t5x import attention  # pylint: disable=g-import-not-at-top
  length, bound = shape.length, shape.inputs + 1
  h, d = constants.NUM_HEADS, constants.HEAD_DIM
  padded = -(-length // 64) * 64
  rng = np.random.default_rng(0)
  q, k, v = (jnp.asarray(rng.normal(size=(batch, length, h, d)),
                         jnp.bfloat16) for _ in range(3))
  bias = jnp.asarray(rng.normal(size=(1, h, padded, padded)), jnp.bfloat16)
  prefix = np.zeros((batch, length), np.int32)
  padding = np.ones((batch, length), np.int32)
  for row in range(batch):
    prefix[row, :max(1, bound - 37 * row)] = 1
  padding[-1, length - 100:] = 0
  weights = jnp.asarray(rng.normal(size=q.shape), jnp.float32) * (
      padding[:, :, None, None])

  def loss(impl, q, k, v, bias):
    out = attention.cudnn_attention(
        q, k, v, bias=bias, prefix=jnp.asarray(prefix),
        padding=jnp.asarray(padding), max_prefix_length=bound,
        pad_multiple=64, prefix_implementation=impl)
    return jnp.sum(out.astype(jnp.float32) * weights), out

  got = {impl: jax.jit(jax.grad(lambda *a, impl=impl: loss(impl, *a),
                                argnums=(0, 1, 2, 3), has_aux=True))(
                                    q, k, v, bias)
         for impl in ("cudnn", "xla")}

  def rel(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-12))

  real = padding[:, :, None, None].astype(bool)
  (g_c, out_c), (g_x, out_x) = got["cudnn"], got["xla"]
  result = {"stage": shape.name, "check": "prefix attention cudnn vs xla",
            "output": rel(np.where(real, out_c, 0), np.where(real, out_x, 0))}
  for name, a, b in zip(("dq", "dk", "dv", "dbias"), g_c, g_x):
    result[name] = rel(a, b)
    result[name + "_finite"] = bool(np.isfinite(np.asarray(
        a, np.float32)).all())
  return result


def _print(r: Dict) -> None:
  if "check" in r:
    print(f"[{r['stage']}] {r['check']} (relative max differences): "
          + ", ".join(f"{k} {r[k]:.2e}" if isinstance(r[k], float)
                      else f"{k} {r[k]}" for k in r
                      if k not in ("stage", "check")), flush=True)
    return
  if "decode_batch" in r:
    print(f"[{r['stage']}] {r['network']} decode S={r['length']} batch "
          f"{r['decode_batch']}: {r['decode_step_ms']:.2f} ms/step, "
          f"{r['decode_tokens_per_s']:.0f} tokens/s "
          f"(compile {r['compile_s']:.0f}s)", flush=True)
    return
  print(f"[{r['stage']}] {r['network']} S={r['length']} devices="
        f"{r['devices']} batch={r['global_batch']} "
        f"({r['per_device_batch']}/device): {r['step_s']*1e3:.1f} ms/step, "
        f"{r['tokens_per_s']/1e3:.1f}k tokens/s, MFU {100*r['mfu']:.1f}% "
        f"({100*r['mfu_matmul_ceiling']:.1f}% of the matmul ceiling)"
        + (f", scaling {100*r['scaling_efficiency']:.1f}%"
           if "scaling_efficiency" in r else "")
        + f", plan {r['planned_gb_per_device']:.1f} GB, "
        f"{r['days_per_1m_steps_at_256']:.1f} days/1M steps at 256, "
        f"compile {r['compile_s']:.0f}s, loss {r['loss']:.2f}", flush=True)


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n")[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--stages", default="semantic,coarse,fine",
                      help="stages to measure (stage gin names)")
  parser.add_argument("--networks", default="stock,ours",
                      help="stock (T5X's decoder-only network) and/or ours "
                      "(audiolm_t5x.network)")
  parser.add_argument("--devices", default="1",
                      help="device counts to measure, comma-separated")
  parser.add_argument("--steps", type=int, default=10,
                      help="timed steps (the median is reported)")
  parser.add_argument("--warmup", type=int, default=2,
                      help="untimed steps after compilation")
  parser.add_argument("--batch", default="256",
                      help="per-device batch of ours: N or stage=N,...")
  parser.add_argument("--stock_batch", default="semantic=120,coarse=16,"
                      "fine=24", help="per-device batch of the stock network "
                      "(N or stage=N,...; 0 = the largest whose XLA plan "
                      "fits); the defaults are the largest that fit an H200")
  parser.add_argument("--remat", default="dots_with_no_batch_dims_saveable",
                      help="remat policy of ours (N or stage=policy,...)")
  parser.add_argument("--microbatches", default="semantic=1,coarse=4,fine=4",
                      help="gradient accumulation steps of ours (N or "
                      "stage=N,...)")
  parser.add_argument("--pad_multiples", default="64",
                      help="cuDNN length multiples of ours to compare, "
                      "comma-separated (on the first stage only if several)")
  parser.add_argument("--attention", default="auto",
                      choices=["auto", "cudnn", "xla"],
                      help="attention implementation of ours")
  parser.add_argument("--peer_batch", type=int, default=0,
                      help="also measure ours at this batch on the first "
                      "stage (audiolm-pytorch's figure is at 32); 0: skip")
  parser.add_argument("--decode_batches", default="",
                      help="cached-decoding batches to time on the first "
                      "stage, comma-separated (e.g. 1,64); empty: skip")
  parser.add_argument("--decode_steps", type=int, default=256,
                      help="decoding steps timed per batch")
  parser.add_argument("--probe", type=int, default=16,
                      help="batch of the memory-plan probe (stock, batch 0)")
  parser.add_argument("--multiple", type=int, default=8,
                      help="batch multiple of the probe's answer")
  parser.add_argument("--memory_fraction", type=float, default=0.9,
                      help="share of device memory the plan may take")
  parser.add_argument("--peak_tflops", type=float, default=989.0,
                      help="dense bf16 peak of one device (H100/H200 SXM)")
  parser.add_argument("--matmul_tflops", type=float, default=790.0,
                      help="measured bf16 matmul ceiling of one device")
  parser.add_argument("--prefix_attention", default="cudnn",
                      choices=["cudnn", "xla"],
                      help="ours, prefix stages: how the bidirectional "
                      "prefix is attended on the cuDNN path")
  parser.add_argument("--runs", default="",
                      help="instead of --stages/--networks: an explicit list "
                      "of runs, ';'-separated stage/network/batch[/mb=N]"
                      "[/remat=POLICY][/pad=N][/prefix=cudnn|xla] (e.g. "
                      "'fine/ours/256/mb=2;semantic/stock/120')")
  parser.add_argument("--check_prefix", default="",
                      help="stages (comma-separated) whose fused prefix "
                      "attention is first compared with the XLA prefix path "
                      "on the device (values and gradients)")
  parser.add_argument("--json", default="", help="write results here")
  parser.add_argument("--layers", type=int, default=constants.NUM_LAYERS,
                      help="override the paper's 12 layers (smoke runs)")
  parser.add_argument("--stages_dir", default=STAGES_DIR,
                      help="folder of the stage gins (smoke runs)")
  args = parser.parse_args(argv)
  global NUM_LAYERS
  NUM_LAYERS = args.layers
  networks = [n for n in args.networks.split(",") if n]
  if set(networks) - {"stock", "ours"}:
    parser.error(f"--networks: expected stock and/or ours, got {networks}")

  import jax  # pylint: disable=g-import-not-at-top
  all_devices = jax.devices()
  counts = [int(c) for c in args.devices.split(",") if c]
  counts = [c for c in counts if c <= len(all_devices)]
  print(f"devices: {len(all_devices)} x {all_devices[0].device_kind}; "
        f"jax {jax.__version__}", flush=True)
  capacity = None
  stats = all_devices[0].memory_stats() or {}
  if "bytes_limit" in stats:
    capacity = float(stats["bytes_limit"])
  results = []

  def record(r: Dict) -> None:
    results.append(r)
    if args.json:  # after every result, so a cut-off run keeps its figures
      with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    _print(r)

  def run_one(shape, variant, b):
    fpt = flops_per_token(vocab_size=shape.vocab_size, length=shape.length)
    stage = shape.name
    for n in counts:
      try:
        r = measure(shape, all_devices[:n], b, steps=args.steps,
                    warmup=args.warmup, variant=variant)
      except Exception as err:  # pylint: disable=broad-except
        if not _is_oom(err):
          if not args.runs:
            raise
          print(f"[{stage}] {variant.label} batch {b}: failed: "
                f"{str(err)[:500]}", flush=True)
          continue
        print(f"[{stage}] {variant.label} batch {b} per device: out of "
              f"memory", flush=True)
        continue
      r["model_tflops_per_device"] = r["tokens_per_s"] * fpt / n / 1e12
      r["mfu"] = r["model_tflops_per_device"] / args.peak_tflops
      r["mfu_matmul_ceiling"] = (r["model_tflops_per_device"]
                                 / args.matmul_tflops)
      r["days_per_1m_steps_at_256"] = (
          constants.TRAIN_STEPS * constants.BATCH_SIZE * shape.length
          / r["tokens_per_s"] / 86400)
      one = [x for x in results if x.get("stage") == stage
             and x.get("devices") == 1 and x.get("network") == variant.label
             and x.get("per_device_batch") == b]
      if n > 1 and one:
        r["scaling_efficiency"] = r["tokens_per_s"] / (
            n * one[0]["tokens_per_s"])
      record(r)

  for stage in [s for s in args.check_prefix.split(",") if s]:
    record(check_prefix_attention(read_stage_gin(stage, args.stages_dir)))
  if args.runs:
    for stage, variant, b in parse_runs(args.runs):
      run_one(read_stage_gin(stage, args.stages_dir), variant, b)
    return 0

  stages = [s for s in args.stages.split(",") if s]
  for k, stage in enumerate(stages):
    shape = read_stage_gin(stage, args.stages_dir)
    plans = []  # (variant, per-device batch)
    if "stock" in networks:
      b = _per_stage(args.stock_batch, stage)
      if not b:
        if capacity is None:
          raise SystemExit("device memory unknown: pass --stock_batch")
        b = largest_batch(shape, all_devices[0], probe=args.probe,
                          multiple=args.multiple,
                          budget_bytes=args.memory_fraction * capacity)
      plans.append((Variant(), b))
    if "ours" in networks:
      pads = [int(p) for p in args.pad_multiples.split(",") if p]
      if k > 0:
        pads = pads[:1]
      for pad in pads:
        v = Variant("ours", _per_stage(args.remat, stage, str), pad,
                    args.attention, _per_stage(args.microbatches, stage),
                    args.prefix_attention)
        plans.append((v, _per_stage(args.batch, stage)))
      if k == 0 and args.peer_batch:
        first = [v for v, _ in plans if v.network == "ours"][0]
        plans.append((dataclasses.replace(first, microbatches=1),
                      args.peer_batch))
    for variant, b in plans:
      run_one(shape, variant, b)
    if k == 0 and args.decode_batches:
      for net in networks:
        variant = Variant() if net == "stock" else Variant(
            "ours", attention=args.attention)
        for b in [int(x) for x in args.decode_batches.split(",") if x]:
          record(measure_decode(shape, all_devices[0], b,
                                steps=args.decode_steps, variant=variant))
  return 0


if __name__ == "__main__":
  sys.exit(main())
