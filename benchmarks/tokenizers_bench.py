r"""Throughput of the model tokenizers: audio-hours per device-hour, and cost.

Builds each backend at its full-size architecture with random weights (speed
does not depend on the weights), saves it with ``save_pretrained`` and loads
it through the backend's real loading code, then times ``embed`` / ``encode``
one utterance at a time against ``embed_batch`` / ``encode_batch`` on the same
utterances, and projects the device-hours and cost of tokenizing Libri-Light
unlab-60k (60,000 hours).

=========== ================================================================
backend     architecture (random weights)
=========== ================================================================
w2v_bert    w2v-BERT 2.0: Wav2Vec2BertConfig() defaults, 24 Conformer layers,
            1024-d, 0.6B (layer 17 kept: layers 18-24 are not run)
hubert      HuBERT base: HubertConfig() defaults, 12 layers, 768-d, 95M
            (layer 6 kept)
dac         DAC 16 kHz: ratios 2,4,5,8, hop 320, 12 x 1024 codebooks, 64/1536
encodec     EnCodec 24 kHz: EncodecConfig() defaults, 8 levels (6 kbps)
saved_model a TF SavedModel MLP on 640-sample frames (4 x 1024): the
            backend's overhead, not a real model; needs TensorFlow
=========== ================================================================

CPU (here)::

  python benchmarks/tokenizers_bench.py --device=cpu --seconds=6

One GPU (TensorFlow absent there: saved_model is skipped)::

  CUDA_VISIBLE_DEVICES=0 python benchmarks/tokenizers_bench.py \
      --device=cuda --seconds=600 --dtypes=float32,bfloat16 --residual

Today's path against the new one, both models in one process sharing the GPU
(``--compare``; BUILD.md section 3's throughput table)::

  python benchmarks/tokenizers_bench.py --compare --device=cuda \
      --seconds=1200 --utterances=8 --dtypes=bfloat16 --compile

``--compare`` builds w2v-BERT 2.0 (24 layers, layer 17 kept) and DAC 16 kHz,
and times, on the same long recordings (30 s windows with their context):

* ``today``: host (numpy) filterbank, batches padded to their longest window
  (``features=host buckets=[]``), 8 windows of 30 s per batch (the defaults
  before bucketing);
* ``new``: filterbank on the device, windows padded to fixed buckets,
  ``--batch_seconds`` of windows per batch, optionally ``torch.compile``;
* ``both``: w2v-BERT then DAC on the same recordings in one process, as the
  job's worker runs them (rate of the pair: audio seconds / their summed
  wall time);

with a warm-up pass first (compilation and cuDNN plans are not timed), and
reports audio-hours per device-hour, the share of the bf16 dense peak
(``--peak_tflops``, 989 for an H100/H200 SXM) from FLOPs counted by
``torch.utils.flop_counter`` on one 30 s window, and the Libri-Light cost.
Precision: DAC codes in bf16 and in float32 with TF32 against float32, and
w2v-BERT's relative L2 error in the same settings.

``--residual`` also measures how much windowing (30 s windows, 5 s of context;
DAC: 1 s) changes the output of a long input against processing it whole, and
how far batched output is from unbatched on this device.

Prices are assumptions, not quotes: ``--price_per_device_hour`` (default: 4.00
USD for a GPU, the order of an on-demand H100/H200 GPU-hour in 2026; 0.10 USD
for CPU, about a 2-vCPU cloud VM-hour). Audio-hours per device-hour equals
the real-time factor (audio seconds / wall seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from audiolm_t5x.pipelines.tokenizers import base  # noqa: E402  pylint: disable=g-import-not-at-top

LIBRI_LIGHT_HOURS = 60_000
ALL = ("w2v_bert", "hubert", "dac", "encodec", "saved_model")


TINY = False  # --tiny: small configs, to try the benchmark itself on a CPU


def build_hf(name: str, root: str, semantic_layers=None) -> str:
  """Saves a full-size random model of ``name`` under ``root``; its path
  (``semantic_layers``: build only that many encoder layers, which is all a
  backend keeping that layer runs, and saves building the rest)."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  path = os.path.join(root, name)
  extractor = None
  if name == "w2v_bert":
    config = transformers.Wav2Vec2BertConfig(
        **(dict(hidden_size=64, intermediate_size=128, num_attention_heads=2)
           if TINY else {}))
    if semantic_layers:
      config.num_hidden_layers = semantic_layers
    model = transformers.Wav2Vec2BertModel(config)
    extractor = transformers.SeamlessM4TFeatureExtractor()
  elif name == "hubert":
    model = transformers.HubertModel(transformers.HubertConfig())
    extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=False)
  elif name == "dac":
    model = transformers.DacModel(transformers.DacConfig(
        encoder_hidden_size=4 if TINY else 64,
        downsampling_ratios=[2, 4, 5, 8],
        decoder_hidden_size=16 if TINY else 1536, n_codebooks=12, codebook_size=1024,
        codebook_dim=8, sampling_rate=16000))
  elif name == "encodec":
    model = transformers.EncodecModel(transformers.EncodecConfig())
    for layer in model.quantizer.layers:
      layer.codebook.embed.normal_()
  else:
    raise ValueError(name)
  model.save_pretrained(path)
  if extractor is not None:
    extractor.save_pretrained(path)
  return path


def build_saved_model(root: str) -> str:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)

  class Mlp(tf.Module):

    def __init__(self):
      super().__init__()
      sizes = [640, 1024, 1024, 1024, 1024]
      self.w = [tf.Variable((rng.standard_normal((a, b)) / np.sqrt(a))
                            .astype(np.float32))
                for a, b in zip(sizes, sizes[1:])]

    def _net(self, frames):
      for w in self.w:
        frames = tf.nn.gelu(frames @ w)
      return frames

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def embed(self, waveform):
      n = tf.shape(waveform)[0] // 640
      return {"embeddings": self._net(tf.reshape(waveform[:n * 640],
                                                 [n, 640]))}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32),
                                  tf.TensorSpec([None], tf.int32)])
    def batched(self, waveforms, lengths):
      b, n = tf.shape(waveforms)[0], tf.shape(waveforms)[1] // 640
      frames = tf.reshape(waveforms[:, :n * 640], [b * n, 640])
      return {"embeddings": tf.reshape(self._net(frames), [b, n, -1]),
              "num_frames": lengths // 640}

  m = Mlp()
  path = os.path.join(root, "saved_model")
  tf.saved_model.save(m, path, signatures={"serving_default": m.embed,
                                           "batched": m.batched})
  return path


def make(name: str, path: str, args, dtype: str, **extra):
  if name == "saved_model":
    return base.make_semantic_embedder(
        "saved_model", path=path,
        device="cpu" if args.device == "cpu" else "auto", **extra)
  common = dict(model=path, device=args.device, dtype=dtype,
                batch_size=args.batch_size, **extra)
  if name in ("dac", "encodec"):
    return base.make_acoustic_tokenizer(name, **common)
  return base.make_semantic_embedder(name, **common)


def run_one(tok, waves, batched: bool):
  if isinstance(tok, base.SemanticEmbedder):
    return tok.embed_batch(waves) if batched else [tok.embed(w) for w in waves]
  return tok.encode_batch(waves) if batched else [tok.encode(w) for w in waves]


def utterances(total_seconds: float, count: int, seed: int = 0):
  """``count`` waveforms of 0.6x..1.4x the mean length, ``total_seconds`` in
  all (speed does not depend on content: low-passed noise)."""
  rng = np.random.default_rng(seed)
  weights = np.linspace(0.6, 1.4, count)
  lengths = (weights / weights.sum() * total_seconds * 16000).astype(int)
  rng.shuffle(lengths)
  out = []
  for n in lengths:
    x = rng.standard_normal(n + 8).astype(np.float32)
    out.append((0.05 * np.convolve(x, np.ones(8) / 8, "valid")[:n])
               .astype(np.float32))
  return out


def timed(fn):
  t = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - t


def max_diff(a_list, b_list) -> dict:
  """Largest difference between two lists of outputs (floats or codes)."""
  if a_list[0].dtype.kind == "f":
    rel = max(float(np.max(np.linalg.norm(a - b, axis=1) /
                           np.maximum(np.linalg.norm(b, axis=1), 1e-9)))
              for a, b in zip(a_list, b_list) if len(a))
    return {"max_rel_l2": rel}
  same = sum(int((a == b).sum()) for a, b in zip(a_list, b_list))
  total = sum(a.size for a in a_list)
  return {"codes_equal_fraction": same / max(total, 1)}


def residual(name, path, args, dtype) -> dict:
  """Windowed (defaults) against whole-input processing of a long input."""
  w = utterances(args.residual_seconds, 1, seed=7)[0]
  windowed = make(name, path, args, dtype)
  whole = make(name, path, args, dtype, window_seconds=0)
  if name in ("dac", "encodec"):
    a, b = windowed.encode(w), whole.encode(w)
  else:
    a, b = windowed.embed(w), whole.embed(w)
  out = {"seconds": args.residual_seconds,
         "window_seconds": windowed.window_seconds,
         "context_seconds": windowed.context_seconds}
  if a.dtype.kind == "f":
    rel = np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) *
                                   np.linalg.norm(b, axis=1))
    out.update(rel_l2_mean=float(rel.mean()), rel_l2_p99=float(
        np.percentile(rel, 99)), rel_l2_max=float(rel.max()),
               cosine_min=float(cos.min()))
  else:
    out.update(codes_equal_fraction=float((a == b).mean()))
  return out


def _flops_per_audio_second(tok, seconds: float = 30.0) -> float:
  """FLOPs of one forward pass on one ``seconds`` window, per audio second
  (matmuls and convolutions, as torch.utils.flop_counter counts them)."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch.utils import flop_counter  # pylint: disable=g-import-not-at-top
  w = utterances(seconds, 1, seed=3)[0]
  units = tok._prepare_all([w], [1])  # pylint: disable=protected-access
  counter = flop_counter.FlopCounterMode(display=False)
  with counter, torch.inference_mode():
    batch, mask, valid, _ = tok._pad([units[0]])  # pylint: disable=protected-access
    if isinstance(tok, base.SemanticEmbedder):
      tok._compute(batch, mask, valid)  # pylint: disable=protected-access
    else:
      tok._compute(batch, valid)  # pylint: disable=protected-access
  return counter.get_total_flops() / seconds


def _agreement(a_list, b_list) -> dict:
  if a_list[0].dtype.kind == "f":
    a, b = np.concatenate(a_list), np.concatenate(b_list)
    rel = np.linalg.norm(a - b, axis=1) / np.maximum(
        np.linalg.norm(b, axis=1), 1e-9)
    return {"rel_l2_mean": float(rel.mean()), "rel_l2_max": float(rel.max())}
  return {"codes_equal_fraction": float(np.mean(
      np.concatenate(a_list) == np.concatenate(b_list)))}


def _precision(args, few, make_pair, built) -> dict:
  """bf16 and TF32 against float32; host against device features."""

  ref_sem, ref_ac = make_pair("new", "float32", compile=False)
  ref = (ref_sem.embed_batch(few), ref_ac.encode_batch(few))
  precision = {}
  for label, dtype, extra in (("bfloat16", "bfloat16", {}),
                              ("tf32", "float32", {"tf32": True})):
    sem, ac = make_pair("new", dtype, compile=False, **extra)
    precision[label] = {
        "w2v_bert": _agreement(sem.embed_batch(few), ref[0]),
        "dac": _agreement(ac.encode_batch(few), ref[1])}
    del sem, ac
  host = base.make_semantic_embedder(
      "w2v_bert", model=built["w2v_bert"], layer=17, device=args.device,
      features="host", buckets=args.buckets, batch_seconds=240.0)
  precision["host_features_fp32"] = {
      "w2v_bert": _agreement(host.embed_batch(few), ref[0])}
  host.load()
  units_h = host._prepare_all(few, [1] * len(few))  # pylint: disable=protected-access
  units_d = ref_sem._prepare_all(few, [1] * len(few))  # pylint: disable=protected-access
  precision["features_device_vs_host_max_abs"] = max(
      float(np.max(np.abs(d.cpu().numpy() - h)))
      for d, h in zip(units_d, units_h))
  precision["seconds"] = sum(len(w) for w in few) / 16000
  print(json.dumps({"precision": precision}), flush=True)

  return precision


def compare(args) -> list[dict]:
  """Today's path against the new one; see the module docstring."""
  import torch  # pylint: disable=g-import-not-at-top
  gpu = args.device != "cpu" and torch.cuda.is_available()
  device_name = (torch.cuda.get_device_name(0) if gpu else
                 f"CPU ({torch.get_num_threads()} threads)")
  count = args.utterances or max(1, round(args.seconds / 150))
  waves = utterances(args.seconds, count)
  audio_s = sum(len(w) for w in waves) / 16000
  print(f"device: {device_name}; {count} recordings, {audio_s:.1f} s of audio "
        f"per pass; corpus {args.corpus_hours:,.0f} h", flush=True)
  paths = {
      "today": dict(features="host", buckets=[], batch_seconds=240.0,
                    batch_size=32),
      "new": dict(features="device", buckets=args.buckets,
                  batch_seconds=args.batch_seconds,
                  batch_size=args.batch_size, compile=args.compile),
  }
  rows = []
  start = time.perf_counter()

  def note(what):
    print(f"[{time.perf_counter() - start:7.1f} s] {what}", flush=True)

  with tempfile.TemporaryDirectory() as root:
    root = args.models_dir or root
    built = {}
    for n in ("w2v_bert", "dac"):
      path = os.path.join(root, n)
      built[n] = path if os.path.isdir(path) else build_hf(
          n, root, semantic_layers=17 if n == "w2v_bert" else None)
    note("models saved")

    def make_pair(path, dtype, **extra):
      opts = dict(paths[path], device=args.device, dtype=dtype, **extra)
      sem_opts = dict(opts)
      ac_opts = {k: v for k, v in opts.items() if k != "features"}
      return (base.make_semantic_embedder("w2v_bert", model=built["w2v_bert"],
                                          layer=17, **sem_opts),
              base.make_acoustic_tokenizer("dac", model=built["dac"],
                                           **ac_opts))

    def sync():
      if gpu:
        torch.cuda.synchronize()

    for dtype in args.dtypes.split(","):
      for path in paths:
        if path == "today" and not args.today:
          continue
        sem, ac = make_pair(path, dtype)
        _, load_s = timed(lambda: (sem.load(), ac.load()))
        note(f"{path} {dtype}: loaded")
        # Warm-up: every bucket shape, compilation and cuDNN plans.
        _, warm_s = timed(lambda: (sem.embed_batch(waves), sync()))
        note(f"{path} {dtype}: w2v_bert warm")
        _, warm2_s = timed(lambda: (ac.encode_batch(waves), sync()))
        warm_s += warm2_s
        note(f"{path} {dtype}: dac warm")
        emb, sem_s = timed(lambda: sem.embed_batch(waves))
        codes, ac_s = timed(lambda: ac.encode_batch(waves))
        _, both_s = timed(lambda: (sem.embed_batch(waves),
                                   ac.encode_batch(waves)))
        note(f"{path} {dtype}: timed")
        row = {"path": path, "dtype": dtype, "device": device_name,
               "audio_seconds": audio_s, "recordings": count,
               "options": {k: v for k, v in paths[path].items()},
               "load_seconds": round(load_s, 1),
               "warmup_seconds": round(warm_s, 1)}
        for name, wall in (("w2v_bert", sem_s), ("dac", ac_s),
                           ("both", both_s)):
          rate = audio_s / wall
          row[name] = {"wall_seconds": round(wall, 3),
                       "audio_hours_per_device_hour": round(rate, 1),
                       "corpus_device_hours": round(
                           args.corpus_hours / rate, 1)}
        if gpu:
          row["peak_memory_gib"] = round(
              torch.cuda.max_memory_allocated() / 2**30, 1)
        if path == "new":
          for name, tok in (("w2v_bert", sem), ("dac", ac)):
            f = _flops_per_audio_second(tok)
            row[name]["gflop_per_audio_second"] = round(f / 1e9, 1)
            row[name]["percent_of_peak"] = round(
                100 * f * row[name]["audio_hours_per_device_hour"] /
                (args.peak_tflops * 1e12), 2)
          row["outputs"] = (emb, codes)
        rows.append(row)
        del sem, ac
        if gpu:
          torch.cuda.empty_cache()

    if not args.precision:
      precision = {}
      few = []
    # Precision, on the first recording(s): float32 (TF32 off) is the
    # reference; bf16 and TF32 against it, and device vs host features.
    else:
      few = waves[:max(1, len(waves) // 4)]
      precision = _precision(args, few, make_pair, built)

  print(f"\n{'path':<8}{'dtype':<10}{'w2v_bert':>10}{'dac':>10}{'both':>10}"
        f"{'GPU-h 60k':>11}   (audio-h per device-h; both: in one process)")
  for r in rows:
    r.pop("outputs", None)
    print(f"{r['path']:<8}{r['dtype']:<10}"
          f"{r['w2v_bert']['audio_hours_per_device_hour']:>10,.0f}"
          f"{r['dac']['audio_hours_per_device_hour']:>10,.0f}"
          f"{r['both']['audio_hours_per_device_hour']:>10,.0f}"
          f"{r['both']['corpus_device_hours']:>11,.1f}")
    print(json.dumps(r), flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"rows": rows, "precision": precision}, f, indent=2)
  return rows


def main(argv=None) -> list[dict]:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=(
                                  argparse.ArgumentDefaultsHelpFormatter))
  p.add_argument("--backends", default=",".join(ALL),
                 help="comma-separated backends to time")
  p.add_argument("--device", default="auto", help="cpu, cuda or auto")
  p.add_argument("--dtypes", default="float32",
                 help="comma-separated: float32, bfloat16, float16")
  p.add_argument("--seconds", type=float, default=6.0,
                 help="audio per backend and mode")
  p.add_argument("--utterances", type=int, default=0,
                 help="how many (default: one per ~12 s, at least 2; "
                 "--compare: one per ~150 s)")
  p.add_argument("--batch_size", type=int, default=32,
                 help="most windows per forward pass")
  p.add_argument("--price_per_device_hour", type=float, default=None,
                 help="USD (default 4.00 on a GPU, 0.10 on CPU)")
  p.add_argument("--corpus_hours", type=float, default=LIBRI_LIGHT_HOURS,
                 help="hours of audio to project the cost for")
  p.add_argument("--residual", action="store_true",
                 help="also measure windowing's residual")
  p.add_argument("--residual_seconds", type=float, default=90.0,
                 help="length of the residual's input")
  p.add_argument("--compare", action="store_true",
                 help="today's path against the new one (w2v_bert + dac)")
  p.add_argument("--today", type=int, default=1,
                 help="--compare: also time today's path (1) or not (0)")
  p.add_argument("--compile", action="store_true",
                 help="--compare: torch.compile the new path")
  p.add_argument("--buckets", default="30",
                 help="--compare: the new path's bucket lengths, seconds")
  p.add_argument("--batch_seconds", type=float, default=1920.0,
                 help="--compare: the new path's padded seconds per batch")
  p.add_argument("--models_dir", default="",
                 help="--compare: keep the saved random models here and "
                 "reuse them (default: a temporary folder)")
  p.add_argument("--precision", type=int, default=1,
                 help="--compare: also measure bf16 / TF32 agreement (1)")
  p.add_argument("--peak_tflops", type=float, default=989.0,
                 help="--compare: the device's dense bf16 peak")
  p.add_argument("--tiny", action="store_true",
                 help="small random configs (to try this script on a CPU; "
                 "figures then mean nothing)")
  p.add_argument("--json", default="", help="also write the rows here")
  args = p.parse_args(argv)
  global TINY
  TINY = args.tiny
  args.buckets = [float(b) for b in args.buckets.split(",") if b]
  if args.compare:
    return compare(args)

  import torch  # pylint: disable=g-import-not-at-top
  gpu = args.device != "cpu" and torch.cuda.is_available()
  device_name = (torch.cuda.get_device_name(0) if gpu else
                 f"CPU ({torch.get_num_threads()} threads)")
  price = args.price_per_device_hour
  if price is None:
    price = 4.00 if gpu else 0.10
  count = args.utterances or max(2, round(args.seconds / 12))
  waves = utterances(args.seconds, count)
  audio_s = sum(len(w) for w in waves) / 16000
  print(f"device: {device_name}; {count} utterances, {audio_s:.1f} s of "
        f"audio per run; price assumed {price:.2f} USD per device-hour; "
        f"corpus {args.corpus_hours:,.0f} h", flush=True)

  rows = []
  with tempfile.TemporaryDirectory() as root:
    for name in args.backends.split(","):
      if name == "saved_model":
        try:
          import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
        except ImportError:
          print("saved_model: skipped (no TensorFlow here)", flush=True)
          continue
      path, build_s = timed(lambda: build_saved_model(root)
                            if name == "saved_model" else build_hf(name, root))
      for dtype in (["float32"] if name == "saved_model"
                    else args.dtypes.split(",")):
        tok = make(name, path, args, dtype)
        _, load_s = timed(tok.load)
        run_one(tok, [waves[0][:16000]], batched=True)  # warm-up
        run_one(tok, [waves[0][:16000]], batched=False)
        single, single_s = timed(lambda: run_one(tok, waves, batched=False))
        batch, batch_s = timed(lambda: run_one(tok, waves, batched=True))
        row = {"backend": name, "dtype": dtype, "device": device_name,
               "audio_seconds": audio_s, "utterances": count,
               "build_seconds": round(build_s, 1),
               "load_seconds": round(load_s, 1)}
        for mode, wall in (("unbatched", single_s), ("batched", batch_s)):
          rate = audio_s / wall  # audio-hours per device-hour
          hours = args.corpus_hours / rate
          row[mode] = {"wall_seconds": round(wall, 3),
                       "audio_hours_per_device_hour": round(rate, 1),
                       "corpus_device_hours": round(hours, 1),
                       "corpus_cost_usd": round(hours * price, 0)}
        if name != "saved_model":
          # Host-side preparation (w2v-BERT's filterbank, EnCodec's
          # resampling) runs on the worker's CPUs (threads), inside both modes.
          _, prep_s = timed(lambda: tok._prepare_all(waves, [1] * len(waves)))  # pylint: disable=protected-access
          row["host_prepare_seconds"] = round(prep_s, 3)
          row["batched_without_prepare_audio_hours_per_device_hour"] = round(
              audio_s / max(batch_s - prep_s, 1e-9), 1)
        row["batched_vs_unbatched"] = max_diff(batch, single)
        if args.residual and name != "saved_model":
          row["window_residual"] = residual(name, path, args, dtype)
        rows.append(row)
        print(json.dumps(row), flush=True)
        del tok
        if gpu:
          torch.cuda.empty_cache()
      if name != "saved_model":
        import shutil  # pylint: disable=g-import-not-at-top
        shutil.rmtree(path, ignore_errors=True)

  print(f"\n{'backend':<12}{'dtype':<10}{'unbatched':>12}{'batched':>12}"
        f"{'dev-h 60k':>12}{'USD 60k':>10}   (audio-h per device-h)")
  for r in rows:
    print(f"{r['backend']:<12}{r['dtype']:<10}"
          f"{r['unbatched']['audio_hours_per_device_hour']:>12,.1f}"
          f"{r['batched']['audio_hours_per_device_hour']:>12,.1f}"
          f"{r['batched']['corpus_device_hours']:>12,.1f}"
          f"{r['batched']['corpus_cost_usd']:>10,.0f}")
  by = {(r["backend"], r["dtype"]): r for r in rows}
  for dtype in args.dtypes.split(","):
    pair = [by.get((n, dtype)) for n in ("w2v_bert", "dac")]
    if all(pair):
      hours = sum(r["batched"]["corpus_device_hours"] for r in pair)
      print(f"w2v_bert + dac ({dtype}, batched): {hours:,.1f} device-hours, "
            f"{hours * price:,.0f} USD for {args.corpus_hours:,.0f} h")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=2)
  return rows


if __name__ == "__main__":
  main()
