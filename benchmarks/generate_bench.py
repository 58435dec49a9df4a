r"""Speed of the generation chain: seconds of audio per wall second.

Times a continuation of random 3 s prompts to ``--seconds`` through the
project's generation chain (:class:`pipelines.generation.chain.Generator`,
its requests, constraints and windows unchanged), with randomly initialised
stage models (speed only: random weights say nothing about quality), per
stage and for the whole chain, after a warm-up that compiles every shape
(compilation excluded, reported as ``compile_s``). Two backends:

* ``--backend=t5x``: each stage built from the project's gin files
  (``infer/<stage>.gin`` plus ``models/tiny.gin`` for ``--size=tiny``) and
  sampled through T5X's ``DecoderOnlyModel.predict_batch_with_aux``
  (:class:`~pipelines.generation.t5x_model.T5XStageModel`). Needs T5X,
  seqio and TensorFlow.
* ``--backend=direct``: the same stage model class, whose one call into
  ``DecoderOnlyModel.predict_batch_with_aux`` is replaced by the same
  sequence of calls made here (create the cache, prefill the prompt,
  ``t5x.decoding.temperature_sample`` with the network's KV cache and the
  chain's per-position level masks). Needs only JAX, Flax and T5X's
  ``decoding.py`` / ``binary_search.py`` (pure Python: a GPU host without
  TensorFlow can carry them), and ``--networks`` compares the project's
  network (``ours``) with T5X's stock decoder-only network (``stock``,
  ``benchmarks/stock_network.py``) in the same run. The stage-2 and stage-3
  prefix settings follow the stage gins (bidirectional buckets, prefix
  bound). Without TensorFlow the chain's deduplication runs in numpy.

With ``--stock_steps=N`` a stage of the stock network samples only its first
N positions (the rest is filled with random valid ids, so the chain goes
on); its ms/step is measured, its stage and chain times are extrapolated to
all steps (``extrapolated``: the stock step costs the same at every
position, since it reads and rewrites the whole cache each step).

``--xla_flags`` (default: CUDA-graph command buffers for the sampling loop
on GPUs, see BUILD.md "Generate") is added to ``XLA_FLAGS`` before JAX
starts.

  python benchmarks/generate_bench.py --size=tiny --batch_size 1
  python benchmarks/generate_bench.py --backend=direct --size=tiny \
      --batch_size 1 2 --networks ours stock
  python benchmarks/generate_bench.py --backend=direct --size=paper \
      --batch_size 1 64 --networks ours stock  # an H200
  python benchmarks/generate_bench.py --backend=direct --size=paper \
      --batch_size 1 --stages coarse  # one stage alone: one compile

Progress (compile and stage times) goes to stderr as it happens.

Prints one JSON line per configuration (network, batch size).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BENCH_DIR = os.path.dirname(os.path.abspath(__file__))

from audiolm_t5x import constants  # pylint: disable=g-import-not-at-top,wrong-import-position
from audiolm_t5x import t5x_configs  # pylint: disable=g-import-not-at-top,wrong-import-position
from audiolm_t5x.pipelines.generation import chain  # pylint: disable=g-import-not-at-top,wrong-import-position
from audiolm_t5x.pipelines.generation import t5x_model  # pylint: disable=g-import-not-at-top,wrong-import-position
from audiolm_t5x.tasks import vocabulary  # pylint: disable=g-import-not-at-top,wrong-import-position

STAGES = ("semantic", "coarse", "fine")

#: Recommended XLA flags for generation on NVIDIA GPUs: the sampling loop
#: (a while loop) and the decoding attention's branches run as CUDA graphs.
COMMAND_BUFFER_FLAGS = (
    "--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,"
    "CUDNN,CONDITIONAL,WHILE --xla_gpu_graph_min_graph_size=1")

# Sequence lengths are rounded up to these (one compiled shape per stage for
# every prompt: stage 2's deduplicated inputs vary in length).
LENGTH_MULTIPLE = {"semantic": 64, "coarse": 256, "fine": 64}


class _Timed:
  """Wraps a stage model; accumulates wall time of its generate calls.

  ``cap`` > 0: only the first ``cap`` sampled positions are sampled (same
  shapes, fewer loop steps); the rest of each target is filled with random
  valid ids (warm-up, and stock stages timed on part of their steps).
  """

  def __init__(self, model):
    self.model = model
    self.seconds = 0.0
    self.steps = 0  # loop steps run
    self.full_steps = 0  # loop steps of the uncapped stage
    self.cap = 0
    self.vocab_size = model.vocab_size
    self.bidirectional_inputs = model.bidirectional_inputs

  def generate(self, requests, *, constraint, sampling, seed):
    steps = max(r.length - len(r.forced) for r in requests)
    self.model.step_cap = self.cap
    start = time.perf_counter()
    out = self.model.generate(requests, constraint=constraint,
                              sampling=sampling, seed=seed)
    took = time.perf_counter() - start
    self.seconds += took
    _log(f"{constraint.stage}: {len(requests)} rows, "
         f"{min(steps, self.cap) if self.cap else steps} steps, {took:.3f} s")
    self.full_steps += steps
    self.steps += min(steps, self.cap) if self.cap else steps
    if self.cap:
      rng = np.random.default_rng(seed)
      bounds = constraint.bounds()
      for r, ids in zip(requests, out):
        keep = len(r.forced) + self.cap
        phase = np.arange(keep, r.length) % constraint.period
        ids[keep:] = rng.integers(bounds[phase, 0], bounds[phase, 1])
    return out


def _log(message: str) -> None:
  """Progress on stderr (partial runs still tell where the time went)."""
  print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr,
        flush=True)


def _stage_requests(b: int, settings):
  """Per stage: (constraint, requests shaped as the chain's continuation)."""
  from audiolm_t5x.pipelines.generation import constraints  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines.generation import stage_model  # pylint: disable=g-import-not-at-top
  layout = vocabulary.PAPER_LAYOUT
  q, q_all = constants.COARSE_LEVELS, layout.acoustic_levels
  rng = np.random.default_rng(1)
  c = {"semantic": constraints.semantic(layout),
       "coarse": constraints.coarse(layout, coarse_levels=q),
       "fine": constraints.fine(layout, coarse_levels=q)}

  def ids(stage, n):
    bounds = c[stage].bounds()
    phase = np.arange(n) % c[stage].period
    return rng.integers(bounds[phase, 0], bounds[phase, 1])

  s_all, p = settings.semantic_frames, settings.prompt_frames
  t_all, t_p, w = (settings.acoustic_frames, settings.prompt_acoustic_frames,
                   settings.window_frames)
  empty = np.zeros([0], np.int64)
  req = {
      "semantic": [stage_model.Request(ids("semantic", p // 2), empty,
                                       s_all - p, seed=0)] * b,
      "coarse": [stage_model.Request(ids("semantic", s_all - p // 2),
                                     ids("coarse", t_p * q), t_all * q,
                                     seed=0)] * b,
      "fine": [stage_model.Request(
          ids("coarse", (min(st + w, t_all) - st) * q), empty,
          (min(st + w, t_all) - st) * (q_all - q), seed=0)
               for st in range(0, t_all, w) if min(st + w, t_all) > t_p] * b}
  return {k: (c[k], req[k]) for k in STAGES}


def _precompile(models, b: int, settings) -> None:
  """Compiles the three stages' shapes at once (threads), before the chain.

  Requests shaped as the chain's continuation requests (prompt, forced
  prompt frames, windows); a stage the chain calls with another padded
  length is compiled again in the chain's warm-up.
  """
  import concurrent.futures  # pylint: disable=g-import-not-at-top
  work = _stage_requests(b, settings)

  def one(stage):
    m = models[stage]
    m.model.step_cap = 2
    start = time.perf_counter()
    c, req = work[stage]
    m.model.generate(req, constraint=c, sampling=chain.SamplingSettings(1.0),
                     seed=0)
    _log(f"compiled {stage} in {time.perf_counter() - start:.1f} s")

  with concurrent.futures.ThreadPoolExecutor(len(STAGES)) as pool:
    list(pool.map(one, STAGES))


def _numpy_dedup(tokens):
  """``chain.dedup`` without TensorFlow: consecutive repeats removed."""
  tokens = np.asarray(tokens, np.int64)
  if tokens.size == 0:
    return tokens
  return tokens[np.concatenate([[True], tokens[1:] != tokens[:-1]])]


def _tiny_overrides():
  """``models/tiny.gin``'s TransformerConfig values (read, not retyped)."""
  text = open(t5x_configs.gin_path("models/tiny.gin")).read()
  return {k: int(v) for k, v in
          re.findall(r"^\s+(\w+)\s*=\s*(\d+)", text, flags=re.MULTILINE)}


class DirectStageModel(t5x_model.T5XStageModel):
  """:class:`T5XStageModel` with T5X's sampling loop called directly.

  Everything but the model's ``predict_batch_with_aux`` is the chain's stage
  model (batching, padding, the level masks, the forced target start, the
  seeds); :meth:`predict_batch_with_aux` makes the calls T5X's
  ``DecoderOnlyModel`` makes (with the project's forced-target override:
  ``decoder_causal_attention`` covers inputs + forced target, the
  bidirectional region comes separately).
  """

  step_cap = 0

  def __init__(self, module, params, *, bidirectional: bool, batch_size: int,
               length_multiple: int, description: str = ""):  # pylint: disable=super-init-not-called
    import jax  # pylint: disable=g-import-not-at-top
    from t5x import decoding  # pylint: disable=g-import-not-at-top
    self._decoding = decoding
    self.module = module
    self.model = self
    self.params = params
    self.bidirectional_inputs = bidirectional
    self.vocab_size = int(module.config.vocab_size)
    self.batch_size = int(batch_size)
    self.length_multiple = int(length_multiple)
    self.description = description
    jitted = jax.jit(self._predict_fn, static_argnames=("top_k", "top_p"))

    def predict(params, tokens, prompt_mask, bidirectional, prefix, steps,
                *args, **kwargs):
      if self.step_cap:
        steps = np.minimum(steps, self.step_cap).astype(steps.dtype)
      return jitted(params, tokens, prompt_mask, bidirectional, prefix, steps,
                    *args, **kwargs)
    self._predict = predict

  def predict_batch_with_aux(self, params, batch, rng=None, *,
                             decoder_params=None):
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    batch = dict(batch)
    bidirectional = batch.pop(t5x_model.BIDIRECTIONAL_KEY)
    prompt = batch["decoder_causal_attention"]
    inputs = batch["decoder_input_tokens"] * prompt
    lengths = jnp.sum(inputs[:, 1:] != 0, axis=-1)
    _, init = self.module.apply({"params": params}, jnp.ones_like(inputs),
                                jnp.ones_like(inputs), enable_dropout=False,
                                decode=True, mutable=["cache"])
    _, filled = self.module.apply(
        {"params": params, "cache": init["cache"]},
        decoder_input_tokens=inputs, decoder_target_tokens=prompt,
        decoder_causal_attention=(bidirectional if self.bidirectional_inputs
                                  else None),
        mutable=["cache"], enable_dropout=False, prefill=True,
        prefill_lengths=lengths)
    length = inputs.shape[1]

    def tokens_to_logits(state):
      logits, new = self.module.apply(
          {"params": params, "cache": state.cache}, state.cur_token,
          state.cur_token, enable_dropout=False, decode=True,
          max_decode_length=length, mutable=["cache"])
      return logits[:, 0], new["cache"]

    decoder_params = dict(decoder_params or {}, decode_rng=rng, eos_id=1)
    decoded, scores = self._decoding.temperature_sample(
        inputs=inputs, cache=filled["cache"],
        tokens_to_logits=tokens_to_logits, num_decodes=1,
        initial_index=lengths, cache_offset=0, **decoder_params)
    decoded = decoded[:, -1, :]

    def remove_prefix(row, n):  # T5X's models.remove_prefix
      targets = row * (jnp.arange(row.shape[-1]) >= n).astype(row.dtype)
      return jnp.roll(targets, -n, axis=-1)
    return jax.vmap(remove_prefix)(decoded, lengths), {"scores": scores[:, -1]}


def _network_kwargs(size: str, layout):
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  kwargs = dict(
      vocab_size=layout.padded_size, dtype=jnp.bfloat16,
      emb_dim=constants.D_MODEL, num_heads=constants.NUM_HEADS,
      num_layers=constants.NUM_LAYERS, head_dim=constants.HEAD_DIM,
      mlp_dim=constants.D_FF, mlp_activations=("gelu", "linear"),
      dropout_rate=constants.DROPOUT_RATE, logits_via_embedding=False)
  if size == "tiny":
    kwargs.update(_tiny_overrides())
  return kwargs


def build_direct(size: str, network_name: str, rows: int, windows: int,
                 settings, *, param_dtype: str):
  """Stage models of ``network_name`` ("ours" or "stock"), random weights."""
  import jax  # pylint: disable=g-import-not-at-top
  layout = vocabulary.PAPER_LAYOUT
  kwargs = _network_kwargs(size, layout)
  # The stage gins' prefix bounds: stage 2's inputs are at most the coarse
  # crop's semantic frames, stage 3's one window's coarse ids (+1: BOS).
  prefix_bound = {
      "semantic": None,
      "coarse": settings.semantic_frames + 1,
      "fine": settings.window_frames * constants.COARSE_LEVELS + 1}
  # Random parameters are made once, on the host, and copied over: on the
  # H200 the GPU compile of the paper-size init alone ran past 50 s
  # (faulthandler's stack: backend_compile_and_load under this init's jit),
  # which is why the first timed calls printed nothing.
  try:
    host = jax.devices("cpu")[0]
  except RuntimeError:  # JAX_PLATFORMS without cpu
    host = jax.devices()[0]
  models = {}
  params = None
  for i, s in enumerate(STAGES):
    bidirectional = s != "semantic"
    if network_name == "stock":
      sys.path.insert(0, _BENCH_DIR)
      import stock_network  # pylint: disable=g-import-not-at-top
      net = stock_network.load()
      module = net.DecoderWrapper(net.TransformerConfig(**kwargs))
    else:
      from audiolm_t5x import network  # pylint: disable=g-import-not-at-top
      module = network.DecoderWrapper(network.TransformerConfig(
          **kwargs, bidirectional_prefix_buckets=bidirectional,
          max_prefix_length=prefix_bound[s]))
    x = jax.numpy.ones((1, 8), jax.numpy.int32)
    init = lambda k, m=module: m.init(k, x, x, enable_dropout=False)["params"]  # pylint: disable=cell-var-from-loop
    if params is None:
      _log(f"{s}: initialising {size} {network_name} parameters on "
           f"{host.platform}")
      start = time.perf_counter()
      with jax.default_device(host):
        params = t5x_model.cast_params(
            jax.jit(init)(jax.random.PRNGKey(i)), param_dtype)
      params = jax.device_put(params, jax.devices()[0])
      _log(f"{s}: parameters ready in {time.perf_counter() - start:.1f} s")
    else:  # the stages differ in masks, not in parameters: share one draw
      shapes = jax.eval_shape(init, jax.random.PRNGKey(i))
      assert (jax.tree_util.tree_structure(shapes) ==
              jax.tree_util.tree_structure(params)), s
    models[s] = _Timed(DirectStageModel(
        module, params, bidirectional=bidirectional,
        batch_size=rows * (windows if s == "fine" else 1),
        length_multiple=LENGTH_MULTIPLE[s],
        description=f"random {size} {network_name}"))
  return models


def build_t5x(size: str, rows: int, windows: int):
  import jax  # pylint: disable=g-import-not-at-top
  extra = [t5x_configs.gin_path("models/tiny.gin")] if size == "tiny" else []
  models = {}
  for i, s in enumerate(STAGES):
    parsed = t5x_model.parse_stage_gin(
        [t5x_configs.gin_path(f"infer/{s}.gin"), *extra])
    model = parsed["model"]
    params = model.get_initial_variables(
        jax.random.PRNGKey(i), {"decoder_input_tokens": (1, 8)})["params"]
    params = t5x_model.cast_params(
        params, t5x_model.inference_dtype(model.module))
    stage = t5x_model.T5XStageModel(
        model, params, batch_size=rows * (windows if s == "fine" else 1),
        length_multiple=LENGTH_MULTIPLE[s], description=f"random {size}")
    models[s] = _Timed(stage)
  return models


def _prompts(b: int, settings):
  rng = np.random.default_rng(0)
  p_frames = settings.prompt_frames
  return [chain.Prompt(
      prompt_id=f"p{i}",
      semantic=np.repeat(rng.integers(0, 1024, p_frames), 2)[:p_frames],
      acoustic=rng.integers(0, 1024, (2 * p_frames, 12)))
      for i in range(b)]


def run_stages(models, stages, b: int, settings) -> dict:
  """Each of ``stages`` alone on requests shaped as the chain's (no chain)."""
  import jax  # pylint: disable=g-import-not-at-top
  work = _stage_requests(b, settings)
  out = {"batch_size": b, "device": str(jax.devices()[0].device_kind),
         "stages": {}}
  for stage in stages:
    m = models[stage]
    c, req = work[stage]
    sampling = getattr(settings, stage)
    for m.cap in (2, 0):  # compile, then the timed run
      m.seconds, m.steps, m.full_steps = 0.0, 0, 0
      start = time.perf_counter()
      m.generate(req, constraint=c, sampling=sampling, seed=0)
      took = time.perf_counter() - start
      if m.cap:
        compile_s = took
    out["stages"][stage] = {
        "rows": len(req), "steps": m.steps, "wall_s": round(took, 3),
        "ms_per_step": round(1000 * took / m.steps, 3),
        "compile_s": round(compile_s, 1),
        "audio_s_per_wall_s": round(b * settings.seconds / took, 3)}
  return out


def run_one(models, b: int, settings, *, cap: int = 0):
  """Warm-up (2 steps per stage) then the timed chain; the result dict."""
  import jax  # pylint: disable=g-import-not-at-top
  layout = vocabulary.PAPER_LAYOUT
  g = chain.Generator(semantic_model=models["semantic"],
                      coarse_model=models["coarse"],
                      fine_model=models["fine"], layout=layout,
                      coarse_levels=constants.COARSE_LEVELS)
  prompts = _prompts(b, settings)
  start = time.perf_counter()
  _precompile(models, b, settings)
  for m in models.values():
    m.cap = 2
  _log("warm-up chain")
  g.generate(prompts, mode=chain.CONTINUATION, settings=settings)  # compile
  compile_s = time.perf_counter() - start
  for m in models.values():
    m.seconds, m.steps, m.full_steps, m.cap = 0.0, 0, 0, cap
  _log(f"compiled in {time.perf_counter() - start:.1f} s; timed chain")
  start = time.perf_counter()
  samples = g.generate(prompts, mode=chain.CONTINUATION, settings=settings)
  wall = time.perf_counter() - start
  audio = b * settings.seconds
  stages = {}
  for s, m in models.items():
    per_step = m.seconds / max(1, m.steps)
    stage_s = per_step * m.full_steps if cap else m.seconds
    stages[s] = {"wall_s": round(stage_s, 3), "steps": m.full_steps,
                 "ms_per_step": round(1000 * per_step, 3),
                 "audio_s_per_wall_s": round(audio / stage_s, 3)}
    if cap:
      stages[s]["measured_steps"] = m.steps
  if cap:  # the chain's own host work plus the extrapolated stages
    host = wall - sum(m.seconds for m in models.values())
    wall = host + sum(v["wall_s"] for v in stages.values())
  result = {
      "batch_size": b, "seconds": settings.seconds,
      "prompt_seconds": settings.prompt_seconds,
      "device": str(jax.devices()[0].device_kind),
      "compile_s": round(compile_s, 1),
      "chain_wall_s": round(wall, 3),
      "audio_s_per_wall_s": round(audio / wall, 3),
      "real_time_factor_per_row": round(settings.seconds / wall, 3),
      "stages": stages}
  if cap:
    result["extrapolated"] = True
  return result, samples


def main(argv=None) -> None:
  p = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  p.add_argument("--backend", choices=("t5x", "direct"), default="t5x",
                 help="T5X's DecoderOnlyModel (needs TF/seqio) or T5X's "
                 "sampling loop called directly (JAX only)")
  p.add_argument("--size", choices=("tiny", "paper"), default="tiny",
                 help="models/tiny.gin or the paper's 12-layer model")
  p.add_argument("--batch_size", type=int, nargs="+", default=[1],
                 help="prompts per batch (one JSON line each)")
  p.add_argument("--networks", nargs="+", choices=("ours", "stock"),
                 default=["ours"], help="--backend=direct: networks to time")
  p.add_argument("--param_dtype", choices=("bfloat16", "float32"),
                 default="bfloat16",
                 help="--backend=direct: parameters as restored for "
                 "inference (t5x.infer: bfloat16)")
  p.add_argument("--stock_steps", type=int, default=0,
                 help="stock network: sample only this many positions per "
                 "stage and extrapolate (0: all)")
  p.add_argument("--stages", nargs="+", choices=STAGES, default=[],
                 help="time these stages alone on requests shaped as the "
                 "chain's (one compile each, no chain figure)")
  p.add_argument("--seconds", type=float, default=constants.CONTINUATION_SECONDS,
                 help="output length, prompt included")
  p.add_argument("--prompt_seconds", type=float,
                 default=constants.PROMPT_SECONDS, help="prompt length")
  p.add_argument("--xla_flags", default=COMMAND_BUFFER_FLAGS,
                 help="added to XLA_FLAGS before JAX starts ('' for none; "
                 "GPU flags, ignored on CPUs)")
  p.add_argument("--compilation_cache_dir", default="",
                 help="JAX's persistent compilation cache (a second run of "
                 "the same shapes skips compilation)")
  p.add_argument("--lyra_dir", default="",
                 help="also time Lyra's decoder on the generated frames")
  args = p.parse_args(argv)
  if args.xla_flags:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " +
                               args.xla_flags).strip()
  if args.compilation_cache_dir:
    import jax  # pylint: disable=g-import-not-at-top
    jax.config.update("jax_compilation_cache_dir", args.compilation_cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  try:
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    chain.dedup = _numpy_dedup
  settings = chain.GenerationSettings(seconds=args.seconds,
                                      prompt_seconds=args.prompt_seconds)
  windows = settings.sampled_windows(chain.CONTINUATION)
  networks = args.networks if args.backend == "direct" else ["gin"]
  for b in args.batch_size:
    for name in networks:
      if args.backend == "direct":
        models = build_direct(args.size, name, b, windows, settings,
                              param_dtype=args.param_dtype)
      else:
        models = build_t5x(args.size, b, windows)
      cap = args.stock_steps if name == "stock" else 0
      if args.stages:
        result = run_stages(models, args.stages, b, settings)
        print(json.dumps({"backend": args.backend, "network": name,
                          "size": args.size,
                          "xla_flags": os.environ.get("XLA_FLAGS", ""),
                          **result}), flush=True)
        continue
      result, samples = run_one(models, b, settings, cap=cap)
      result = {"backend": args.backend, "network": name, "size": args.size,
                "xla_flags": os.environ.get("XLA_FLAGS", ""), **result}
      if args.lyra_dir:
        from audiolm_t5x.pipelines.tokenizers import lyra  # pylint: disable=g-import-not-at-top
        codec = lyra.LyraSoundStream(args.lyra_dir, levels=24, pack=2)
        codes = np.asarray(samples[0].codes) % codec.codebook_size
        codec.decode(codes[:2])
        start = time.perf_counter()
        codec.decode(codes)
        dec = time.perf_counter() - start
        result["lyra_decode"] = {
            "wall_s": round(dec, 3),
            "audio_s_per_wall_s": round(settings.seconds / dec, 3)}
      print(json.dumps(result), flush=True)
      del models, samples


if __name__ == "__main__":
  main()
