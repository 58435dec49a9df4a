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


def _build(shape: StageShape, devices, per_device_batch: int, *, seed: int):
  """Builds the sharded train step, state and a batch for ``devices``."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # pylint: disable=g-import-not-at-top
  from t5x.examples.decoder_only import network  # pylint: disable=g-import-not-at-top

  cfg = network.TransformerConfig(
      vocab_size=shape.vocab_size, dtype=jnp.bfloat16,
      emb_dim=constants.D_MODEL, num_heads=constants.NUM_HEADS,
      num_layers=NUM_LAYERS, head_dim=constants.HEAD_DIM,
      mlp_dim=constants.D_FF, mlp_activations=("gelu", "linear"),
      dropout_rate=constants.DROPOUT_RATE, logits_via_embedding=False)
  model = network.DecoderWrapper(cfg)
  mesh = Mesh(np.asarray(devices), ("data",))
  replicated = NamedSharding(mesh, P())
  data_sharded = NamedSharding(mesh, P("data"))
  batch_size = per_device_batch * len(devices)
  length = shape.length

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
    return loss / jnp.sum(w)

  def step(p, o, b, step_rng):
    loss, grads = jax.value_and_grad(loss_fn)(p, b, step_rng)
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
            steps: int, warmup: int, seed: int = 0) -> Dict:
  """Compiles and times ``steps`` train steps; raises on out-of-memory."""
  import jax  # pylint: disable=g-import-not-at-top
  step_fn, params, opt_state, batch = _build(shape, devices, per_device_batch,
                                             seed=seed)
  key = jax.random.PRNGKey(seed + 1)
  t0 = time.perf_counter()
  compiled = step_fn.lower(params, opt_state, batch, key).compile()
  compile_s = time.perf_counter() - t0
  planned = _compiled_bytes(compiled)
  for i in range(warmup):
    params, opt_state, loss = compiled(params, opt_state, batch,
                                       jax.random.fold_in(key, i))
  loss.block_until_ready()
  t0 = time.perf_counter()
  for i in range(steps):
    params, opt_state, loss = compiled(params, opt_state, batch,
                                       jax.random.fold_in(key, warmup + i))
  loss.block_until_ready()
  step_s = (time.perf_counter() - t0) / steps
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
      "loss": float(loss),
  }


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


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--stages", default="semantic,coarse,fine")
  parser.add_argument("--devices", default="1,2",
                      help="device counts to measure, comma-separated")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--batch", type=int, default=0,
                      help="per-device batch; 0 = the largest that fits")
  parser.add_argument("--probe", type=int, default=16)
  parser.add_argument("--multiple", type=int, default=8)
  parser.add_argument("--memory_fraction", type=float, default=0.9,
                      help="share of device memory the plan may take")
  parser.add_argument("--peak_tflops", type=float, default=989.0)
  parser.add_argument("--json", default="", help="write results here")
  parser.add_argument("--layers", type=int, default=constants.NUM_LAYERS,
                      help="override the paper's 12 layers (smoke runs)")
  args = parser.parse_args(argv)
  global NUM_LAYERS
  NUM_LAYERS = args.layers

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
  for stage in args.stages.split(","):
    shape = read_stage_gin(stage)
    batch = args.batch
    if not batch:
      if capacity is None:
        raise SystemExit("device memory unknown: pass --batch")
      batch = largest_batch(shape, all_devices[0], probe=args.probe,
                            multiple=args.multiple,
                            budget_bytes=args.memory_fraction * capacity)
    for n in counts:
      b = batch
      while b >= 1:
        try:
          r = measure(shape, all_devices[:n], b, steps=args.steps,
                      warmup=args.warmup)
          break
        except Exception as err:  # pylint: disable=broad-except
          if not _is_oom(err):
            raise
          print(f"[{stage}] batch {b} per device: out of memory", flush=True)
          b = b - args.multiple if b > args.multiple else b // 2
      else:
        continue
      fpt = flops_per_token(vocab_size=shape.vocab_size, length=shape.length)
      r["model_tflops_per_device"] = r["tokens_per_s"] * fpt / n / 1e12
      r["mfu"] = r["model_tflops_per_device"] / args.peak_tflops
      one = [x for x in results if x["stage"] == stage and x["devices"] == 1]
      if n > 1 and one:
        r["scaling_efficiency"] = r["tokens_per_s"] / (n * one[0]["tokens_per_s"])
      results.append(r)
      if args.json:  # after every result, so a cut-off run keeps its figures
        with open(args.json, "w") as f:
          json.dump(results, f, indent=2)
      print(f"[{stage}] S={r['length']} devices={n} batch={r['global_batch']} "
            f"({b}/device): {r['step_s']*1e3:.1f} ms/step, "
            f"{r['tokens_per_s']/1e3:.1f}k tokens/s, "
            f"MFU {100*r['mfu']:.1f}%"
            + (f", scaling {100*r['scaling_efficiency']:.1f}%"
               if "scaling_efficiency" in r else "")
            + f", plan {r['planned_gb_per_device']:.1f} GB, "
            f"compile {r['compile_s']:.0f}s, loss {r['loss']:.2f}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
