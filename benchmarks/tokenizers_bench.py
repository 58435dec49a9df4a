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


def build_hf(name: str, root: str) -> str:
  """Saves a full-size random model of ``name`` under ``root``; its path."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  path = os.path.join(root, name)
  extractor = None
  if name == "w2v_bert":
    model = transformers.Wav2Vec2BertModel(transformers.Wav2Vec2BertConfig())
    extractor = transformers.SeamlessM4TFeatureExtractor()
  elif name == "hubert":
    model = transformers.HubertModel(transformers.HubertConfig())
    extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=False)
  elif name == "dac":
    model = transformers.DacModel(transformers.DacConfig(
        encoder_hidden_size=64, downsampling_ratios=[2, 4, 5, 8],
        decoder_hidden_size=1536, n_codebooks=12, codebook_size=1024,
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


def main(argv=None) -> list[dict]:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--backends", default=",".join(ALL))
  p.add_argument("--device", default="auto", help="cpu, cuda or auto")
  p.add_argument("--dtypes", default="float32",
                 help="comma-separated: float32, bfloat16, float16")
  p.add_argument("--seconds", type=float, default=6.0,
                 help="audio per backend and mode")
  p.add_argument("--utterances", type=int, default=0,
                 help="how many (default: one per ~12 s, at least 2)")
  p.add_argument("--batch_size", type=int, default=32)
  p.add_argument("--price_per_device_hour", type=float, default=None)
  p.add_argument("--corpus_hours", type=float, default=LIBRI_LIGHT_HOURS)
  p.add_argument("--residual", action="store_true")
  p.add_argument("--residual_seconds", type=float, default=90.0)
  p.add_argument("--json", default="", help="also write the rows here")
  args = p.parse_args(argv)

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
