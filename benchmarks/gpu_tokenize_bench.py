r"""w2v-BERT 2.0 + DAC on one GPU: eager and compiled, alone, together, and
the job's per-batch steps with and without overlap. Prints figures.

One command measures, on the same synthetic recordings (``--seconds`` of
audio in ``--utterances`` recordings, 30 s windows with their context, one
bucket of 30 s and ``--rows`` windows per batch, so that one compiled graph
per model serves every batch)::

  python benchmarks/gpu_tokenize_bench.py --device=cuda --out=/tmp/gpu_bench

* ``eager`` (one process), for each of ``--dtypes`` (float32 is the job's
  default, TF32 off): w2v-BERT alone, DAC alone, both in one process (rate
  of the pair: audio seconds / their summed wall time), and ``job``: the
  tokenization job's steps per batch of ``--job_files`` recordings (FLAC
  decode with the job's ``audio.decode``, both models, k-means on the host,
  ``TokenRecord.validate``), driven by a loop as ``TokenizeFn`` runs them,
  without overlap and with it (models on a background thread while the next
  batch is decoded on threads and the previous one turned into records).
  Beam's runner is not in this figure (the GPU machine has neither Beam nor
  TensorFlow); the job itself runs ``TokenizeFn`` with the same overlap.
* ``compiled:<dtype>`` (one process each, ``--compile_dtypes``):
  ``torch.compile`` (``--compile_backend``, ``--compile_mode``) of both
  models; warm-up (compilation) timed apart; then the same rates, and how
  many tokens equal the eager ones (DAC codes; w2v-BERT relative L2).

The processes compile at the same time; once all are warm (or
``--barrier_s`` passed) each holds a lock for all its remaining GPU work, so
timed parts run alone on the GPU. ``--compile_models=dac`` compiles DAC only
(w2v-BERT's compilation takes 45 s per row count on an H200). Weights are random (full-size configs; speed does not depend on
them). Results: one JSON line per figure on stdout and in
``<out>/results.jsonl``, then a table. ``--tiny`` tries it on a CPU.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import fcntl
import io
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from audiolm_t5x import constants  # noqa: E402
from audiolm_t5x import contract  # noqa: E402
from audiolm_t5x.pipelines.tokenizers import base  # noqa: E402
from audiolm_t5x.pipelines.tokenizers import kmeans  # noqa: E402
import tokenizers_bench  # noqa: E402  pylint: disable=g-import-not-at-top

T0 = time.time()


def emit(out_dir, row):
  row = dict(row, t=round(time.time() - T0, 1))
  line = json.dumps(row)
  print(line, flush=True)
  with open(os.path.join(out_dir, "results.jsonl"), "a") as f:
    f.write(line + "\n")


def make_pair(args, dtype, compile_):
  opts = dict(device=args.device, dtype=dtype, buckets=[30.0],
              batch_size=args.rows, batch_seconds=30.0 * args.rows)
  compiled = dict(opts, compile=True, compile_backend=args.compile_backend)
  if args.compile_mode:
    compiled["compile_mode"] = args.compile_mode
  which = args.compile_models.split(",") if compile_ else []
  sem = base.make_semantic_embedder(
      "w2v_bert", model=os.path.join(args.models, "w2v_bert"), layer=17,
      features="device", **(compiled if "w2v_bert" in which else opts))
  ac = base.make_acoustic_tokenizer(
      "dac", model=os.path.join(args.models, "dac"),
      **(compiled if "dac" in which else opts))
  return sem, ac


class Gpu:
  """Barrier (all processes warm) and a lock around the timed parts."""

  def __init__(self, args, role):
    self.args, self.role = args, role
    self.sync = os.path.join(args.out, "sync")
    os.makedirs(self.sync, exist_ok=True)

  def ready(self):
    pathlib.Path(self.sync, "ready-" + self.role.replace(":", "_")).touch()
    while (len([n for n in os.listdir(self.sync) if n.startswith("ready-")])
           < self.args.num_roles and time.time() - T0 < self.args.barrier_s):
      time.sleep(0.5)

  def __enter__(self):
    self._f = open(os.path.join(self.sync, "lock"), "a")
    fcntl.flock(self._f, fcntl.LOCK_EX)
    return self

  def __exit__(self, *exc):
    fcntl.flock(self._f, fcntl.LOCK_UN)
    self._f.close()


def sync(torch):
  if torch.cuda.is_available():
    torch.cuda.synchronize()


def timed(fn):
  t = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - t


def flac_files(waves):
  """The recordings as FLAC bytes (16-bit), or the arrays without soundfile."""
  try:
    import soundfile  # pylint: disable=g-import-not-at-top
  except ImportError:
    return list(waves), "none: soundfile missing on this machine"
  out = []
  for w in waves:
    buf = io.BytesIO()
    soundfile.write(buf, np.clip(w, -1, 1), constants.SAMPLE_RATE,
                    format="FLAC", subtype="PCM_16")
    out.append(buf.getvalue())
  return out, "FLAC 16-bit, pipelines.audio.decode"


def job_pass(sem, ac, book, files, batch_files, overlap, threads=4):
  """TokenizeFn's steps on batches of ``files``; overlap as in the job."""
  def decode(f):
    if isinstance(f, bytes):
      from audiolm_t5x.pipelines import audio  # pylint: disable=g-import-not-at-top
      w = audio.decode(f)
      audio.check_usable(w)
      return w
    return f

  def models(waves):
    return list(zip(sem.embed_batch(waves), ac.encode_batch(waves)))

  def records(waves, outs):
    for i, (w, (e, c)) in enumerate(zip(waves, outs)):
      contract.TokenRecord(
          id=f"u{i}", split="train", speaker_id=1, chapter_id=1, source="b",
          transcript="", num_samples=len(w),
          semantic_tokens=book.quantize(e), acoustic_tokens=c).validate(
              semantic_codebook_size=book.size, acoustic_levels=ac.levels,
              acoustic_codebook_size=ac.codebook_size)

  batches = [files[i:i + batch_files] for i in range(0, len(files),
                                                      batch_files)]
  if not overlap:
    for b in batches:
      waves = [decode(f) for f in b]
      records(waves, models(waves))
    return
  with concurrent.futures.ThreadPoolExecutor(1) as gpu, \
      concurrent.futures.ThreadPoolExecutor(threads) as dec:
    inflight = None
    for b in batches:
      waves = list(dec.map(decode, b))
      previous = inflight
      inflight = (waves, gpu.submit(models, waves))
      if previous is not None:
        records(previous[0], previous[1].result())
    records(inflight[0], inflight[1].result())


def rates(audio_s, walls):
  return {k: {"wall_seconds": round(v, 3),
              "audio_hours_per_gpu_hour": round(audio_s / v, 1)}
          for k, v in walls.items()}


def worker(args):
  import torch  # pylint: disable=g-import-not-at-top
  role = args.role
  gpu = Gpu(args, role)
  waves = tokenizers_bench.utterances(args.seconds, args.utterances)
  audio_s = sum(len(w) for w in waves) / constants.SAMPLE_RATE
  job_waves = tokenizers_bench.utterances(
      args.seconds * args.job_passes, args.utterances * args.job_passes,
      seed=1)
  job_s = sum(len(w) for w in job_waves) / constants.SAMPLE_RATE
  rng = np.random.default_rng(0)
  book = kmeans.KMeansCodebook(
      centroids=rng.standard_normal((constants.SEMANTIC_CODEBOOK_SIZE,
                                     64 if args.tiny else
                                     constants.W2V_BERT_DIM)).astype(
                                         np.float32),
      mean=np.zeros(64 if args.tiny else constants.W2V_BERT_DIM, np.float32),
      std=np.ones(64 if args.tiny else constants.W2V_BERT_DIM, np.float32))
  base_row = {"role": role, "audio_seconds": round(audio_s, 1),
              "recordings": len(waves), "rows": args.rows, "bucket_s": 30,
              "device": (torch.cuda.get_device_name(0)
                         if torch.cuda.is_available() else "cpu")}

  def left():
    return args.deadline_s - (time.time() - T0)

  if role == "eager":
    files, decode_note = flac_files(job_waves)
    pairs = {}
    for dtype in args.dtypes.split(","):
      sem, ac = make_pair(args, dtype, False)
      _, load_s = timed(lambda: (sem.load(), ac.load()))
      _, warm_s = timed(lambda: (sem.embed_batch(waves),
                                 ac.encode_batch(waves), sync(torch)))
      pairs[dtype] = (sem, ac, load_s, warm_s)
    last = pairs[args.dtypes.split(",")[-1]]
    flops = ({"w2v_bert": tokenizers_bench._flops_per_audio_second(last[0]),  # pylint: disable=protected-access
              "dac": tokenizers_bench._flops_per_audio_second(last[1])}  # pylint: disable=protected-access
             if args.flops else {"w2v_bert": 46.4e9, "dac": 24.6e9})
    emit(args.out, {"role": role, "gflop_per_audio_second": {
        k: round(v / 1e9, 1) for k, v in flops.items()},
                    "counted": bool(args.flops)})
    gpu.ready()
    with gpu:  # everything from here on the GPU alone
      eager_timings(args, gpu, pairs, waves, audio_s, job_s, files,
                    decode_note, book, flops, base_row, left)
    return
  compiled_role(args, role, gpu, waves, audio_s, job_s, job_waves, book,
                base_row, left)


def eager_timings(args, gpu, pairs, waves, audio_s, job_s, files,
                  decode_note, book, flops, base_row, left):
  role = "eager"
  for dtype, (sem, ac, load_s, warm_s) in pairs.items():
    if left() < 5:
      emit(args.out, {"role": role, "dtype": dtype, "skipped": "deadline"})
      continue
    walls = {}
    _, walls["w2v_bert"] = timed(lambda: sem.embed_batch(waves))
    _, walls["dac"] = timed(lambda: ac.encode_batch(waves))
    _, walls["both"] = timed(lambda: (sem.embed_batch(waves),
                                      ac.encode_batch(waves)))
    row = dict(base_row, dtype=dtype, load_seconds=round(load_s, 1),
               warmup_seconds=round(warm_s, 1), **rates(audio_s, walls))
    for name in ("w2v_bert", "dac"):
      row[name]["percent_of_bf16_peak"] = round(
          100 * flops[name] * row[name]["audio_hours_per_gpu_hour"] /
          (args.peak_tflops * 1e12), 2)
    emit(args.out, row)
    if left() < 10:
      continue
    job_pass(sem, ac, book, files[:args.job_files], args.job_files, True)
    walls = {}
    for overlap in (False, True):
      _, walls["job_overlap" if overlap else "job_plain"] = timed(
          lambda: job_pass(sem, ac, book, files, args.job_files,
                           overlap))
    emit(args.out, dict(base_row, dtype=dtype, audio_seconds=round(job_s, 1),
                        recordings=len(files), job_files=args.job_files,
                        decode=decode_note, **rates(job_s, walls)))


def compiled_role(args, role, gpu, waves, audio_s, job_s, job_waves, book,
                  base_row, left):
  import torch  # pylint: disable=g-import-not-at-top
  dtype = role.split(":")[1]
  sem, ac = make_pair(args, dtype, True)
  _, load_s = timed(lambda: (sem.load(), ac.load()))
  # The first pass compiles every shape it meets (bucket x row count).
  _, compile_w = timed(lambda: (sem.embed_batch(waves), sync(torch)))
  emit(args.out, dict(role=role, w2v_bert_compile_seconds=round(compile_w, 1)))
  _, compile_d = timed(lambda: (ac.encode_batch(waves), sync(torch)))
  emit(args.out, dict(role=role, dac_compile_seconds=round(compile_d, 1)))
  _, warm_s = timed(lambda: (sem.embed_batch(waves), ac.encode_batch(waves),
                             sync(torch)))
  files, decode_note = flac_files(job_waves)
  if args.job_passes:  # the job's first batches: shapes not met above
    job_pass(sem, ac, book, files[:2 * args.job_files], args.job_files, True)
  gpu.ready()
  if left() < 5:
    emit(args.out, {"role": role, "skipped": "deadline"})
    return
  with gpu:  # everything from here on the GPU alone
    compiled_timings(args, role, dtype, sem, ac, waves, audio_s, job_s, files,
                     decode_note, book, base_row, left, load_s, compile_w,
                     compile_d, warm_s)


def compiled_timings(args, role, dtype, sem, ac, waves, audio_s, job_s, files,
                     decode_note, book, base_row, left, load_s, compile_w,
                     compile_d, warm_s):
  walls = {}
  emb, walls["w2v_bert"] = timed(lambda: sem.embed_batch(waves))
  codes, walls["dac"] = timed(lambda: ac.encode_batch(waves))
  _, walls["both"] = timed(lambda: (sem.embed_batch(waves),
                                    ac.encode_batch(waves)))
  row = dict(base_row, dtype=dtype, compile_backend=args.compile_backend,
             compiled_models=args.compile_models,
             compile_mode=args.compile_mode or "default",
             load_seconds=round(load_s, 1),
             compile_seconds={"w2v_bert": round(compile_w, 1),
                              "dac": round(compile_d, 1)},
             warmup_after_compile_seconds=round(warm_s, 1),
             **rates(audio_s, walls))
  emit(args.out, row)
  if left() < 10:
    return
  if args.job_passes and left() > 20:
    _, wall = timed(lambda: job_pass(sem, ac, book, files, args.job_files,
                                     True))
    emit(args.out, dict(base_row, dtype=dtype, audio_seconds=round(job_s, 1),
                        recordings=len(files), job_files=args.job_files,
                        decode=decode_note,
                        **rates(job_s, {"job_overlap_compiled": wall})))
  if left() < 10 or not args.agreement:
    return
  # Compile on against off: the eager pair's tokens on the same input.
  eager_sem, eager_ac = make_pair(args, dtype, False)
  few = waves[:2]
  e_emb = eager_sem.embed_batch(few)
  e_codes = eager_ac.encode_batch(few)
  emit(args.out, {"role": role, "dtype": dtype,
                  "compiled_vs_eager": {
                      "w2v_bert": tokenizers_bench._agreement(  # pylint: disable=protected-access
                          emb[:2], e_emb),
                      "dac": tokenizers_bench._agreement(codes[:2], e_codes)}})  # pylint: disable=protected-access


def build_models(args):
  import torch  # pylint: disable=g-import-not-at-top
  tokenizers_bench.TINY = args.tiny
  os.makedirs(args.models, exist_ok=True)
  for name in ("w2v_bert", "dac"):
    if not os.path.isdir(os.path.join(args.models, name)):
      with torch.device("cuda" if args.device == "cuda" else "cpu"):
        tokenizers_bench.build_hf(
            name, args.models, semantic_layers=17 if name == "w2v_bert"
            else None)


def summary(out_dir):
  rows = [json.loads(l) for l in open(os.path.join(out_dir, "results.jsonl"))]
  print(f"\n{'role':<18}{'dtype':<10}{'w2v_bert':>10}{'dac':>10}{'both':>10}"
        f"{'job':>10}{'job+ovl':>10}   audio-h per GPU-h")
  jobs = {(r["role"], r["dtype"]): r for r in rows
          if any(k.startswith("job_") for k in r)}
  for r in rows:
    if "both" not in r:
      continue
    j = jobs.get((r["role"], r["dtype"]), {})
    f = lambda d, k: (f"{d[k]['audio_hours_per_gpu_hour']:>10,.0f}"  # pylint: disable=g-long-lambda
                      if k in d else f"{'-':>10}")
    ovl = "job_overlap" if "job_overlap" in j else "job_overlap_compiled"
    print(f"{r['role']:<18}{r['dtype']:<10}{f(r, 'w2v_bert')}{f(r, 'dac')}"
          f"{f(r, 'both')}{f(j, 'job_plain')}{f(j, ovl)}")


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=(
                                  argparse.ArgumentDefaultsHelpFormatter))
  p.add_argument("--device", default="cuda", help="cuda or cpu")
  p.add_argument("--out", required=True, help="results and saved models")
  p.add_argument("--models", default="", help="saved models (default "
                 "<out>/models)")
  p.add_argument("--seconds", type=float, default=1200.0,
                 help="audio per timed pass")
  p.add_argument("--utterances", type=int, default=8,
                 help="recordings per timed pass")
  p.add_argument("--rows", type=int, default=64,
                 help="30 s windows per batch")
  p.add_argument("--dtypes", default="float32,bfloat16",
                 help="eager precisions")
  p.add_argument("--compile_dtypes", default="bfloat16,float32",
                 help="compiled precisions (one process each; empty: none)")
  p.add_argument("--compile_backend", default="inductor")
  p.add_argument("--compile_models", default="w2v_bert,dac",
                 help="the models compiled in the compiled:<dtype> processes "
                 "(the others run eager there)")
  p.add_argument("--compile_mode", default="",
                 help="inductor mode (empty: its default)")
  p.add_argument("--job_files", type=int, default=8,
                 help="recordings per job batch (the job's --batch_size)")
  p.add_argument("--job_passes", type=int, default=4,
                 help="the job figure's audio, in timed passes")
  p.add_argument("--deadline_s", type=float, default=250.0,
                 help="no new measurement starts after this")
  p.add_argument("--barrier_s", type=float, default=180.0,
                 help="timed parts wait at most this for the compiles")
  p.add_argument("--flops", type=int, default=1,
                 help="count FLOPs per audio second (0: the H200 figures "
                 "46.4 and 24.6 GFLOP)")
  p.add_argument("--agreement", type=int, default=1,
                 help="compare compiled tokens with eager ones")
  p.add_argument("--peak_tflops", type=float, default=989.0)
  p.add_argument("--tiny", action="store_true",
                 help="small configs, to try this on a CPU")
  p.add_argument("--role", default="", help=argparse.SUPPRESS)
  p.add_argument("--num_roles", type=int, default=1, help=argparse.SUPPRESS)
  args = p.parse_args()
  args.models = args.models or os.path.join(args.out, "models")
  tokenizers_bench.TINY = args.tiny
  if args.role:
    worker(args)
    return
  os.makedirs(args.out, exist_ok=True)
  for stale in ("results.jsonl",):
    if os.path.exists(os.path.join(args.out, stale)):
      os.remove(os.path.join(args.out, stale))
  if os.path.isdir(os.path.join(args.out, "sync")):
    for n in os.listdir(os.path.join(args.out, "sync")):
      os.remove(os.path.join(args.out, "sync", n))
  _, build_s = timed(lambda: build_models(args))
  emit(args.out, {"models_built_seconds": round(build_s, 1)})
  roles = ["eager"] + [f"compiled:{d}" for d in args.compile_dtypes.split(",")
                       if d]
  argv = [a for a in sys.argv[1:] if not a.startswith("--models")]
  procs = [subprocess.Popen([sys.executable, __file__, *argv,
                             f"--models={args.models}", f"--role={r}",
                             f"--num_roles={len(roles)}",
                             f"--deadline_s={args.deadline_s - (time.time() - T0)}",
                             f"--barrier_s={args.barrier_s - (time.time() - T0)}"])
           for r in roles]
  for proc in procs:
    try:  # a compile still running at the deadline is cut short
      proc.wait(timeout=max(1.0, args.deadline_s + 20 - (time.time() - T0)))
    except subprocess.TimeoutExpired:
      proc.kill()
      emit(args.out, {"killed_at_deadline": [
          a for a in proc.args if a.startswith("--role=")][0]})
  summary(args.out)


if __name__ == "__main__":
  main()
