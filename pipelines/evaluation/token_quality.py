r"""The token-quality job: ABX of semantic settings, reconstruction of codecs.

Locally (DirectRunner, the default)::

  python -m pipelines.evaluate_tokens --output_dir=/tmp/token_quality \
    --espeak_set --semantic=logmel --kmeans_k=64,256,1024 \
    --audio_dir=/data/LibriSpeech/dev-clean --max_files=20 --max_seconds=10 \
    --codec=lyra:levels=16 --codec=lyra:levels=30 --codec=lyra:levels=46 \
    --codec=lyra:levels=24,pack=2 --lyra_dir=/models/lyra

With the official LibriSpeech ABX items (libri-light / ZeroSpeech)::

  python -m pipelines.evaluate_tokens --output_dir=/tmp/tq \
    --item_file=/data/ABX/dev-clean.item --item_audio_dir=/data/dev-clean-flat \
    --semantic=hubert:model=/models/hubert,layer=6 --semantic=logmel

On Dataflow: add ``--runner=DataflowRunner --project=... --region=...
--temp_location=gs://... --setup_file=./setup.py``; every Beam option passes
through.

What runs where: one Beam step embeds every ABX file with every semantic
setting (files spread by ``Reshuffle``); a grouped step per semantic setting
fits the k-means codebooks (``pipelines.tokenizers.kmeans.fit_codebook``,
K capped by the frames available) and computes the ABX error rates
(continuous features, and tokens with the one-hot and the centroid
distance); another step encodes, decodes and scores each audio file with
every codec setting. Rows go to ``rows.jsonl``, bad inputs (unreadable, too
short, NaN) to ``dead_letters.jsonl`` with their reason; the launcher then
writes ``token_quality.json``, ``token_quality.md``, ``abx.png`` and
``reconstruction.png`` (and ``abx_layers.png`` where settings differ by
layer; :mod:`audiolm_t5x.pipelines.evaluation.report`).

Memory: the ABX step holds all features of one semantic setting for one item
set (LibriSpeech dev-clean at 25 Hz x 1024-d: about 2 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import sys
import time
from typing import Optional, Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics
import numpy as np

from audiolm_t5x import constants
from audiolm_t5x.pipelines import audio
from audiolm_t5x.pipelines import options as options_lib
from audiolm_t5x.pipelines.evaluation import abx
from audiolm_t5x.pipelines.evaluation import reconstruction
from audiolm_t5x.pipelines.evaluation import report
from audiolm_t5x.pipelines.tokenizers import base
from audiolm_t5x.pipelines.tokenizers import kmeans

NAMESPACE = "token_quality"
AUDIO_SUFFIXES = (".flac", ".wav")
DEFAULT_CODECS = ("lyra:levels=16", "lyra:levels=30", "lyra:levels=46",
                  "lyra:levels=24,pack=2")
ROWS = "rows.jsonl"
DEAD = "dead_letters.jsonl"


UserError = options_lib.UserError
MODULE = "audiolm_t5x.pipelines.evaluate_tokens"


# --- settings ----------------------------------------------------------------


def parse_semantic(text: str) -> tuple[str, dict]:
  """``"hubert:model=/m,layer=6"`` -> ``("hubert", {"model": "/m", ...})``."""
  name, _, rest = text.partition(":")
  return name, options_lib.parse_options([p for p in rest.split(",") if p])


def _label(name: str, opts: dict) -> str:
  shown = ",".join(f"{k}={v}" for k, v in sorted(opts.items()))
  return f"{name}:{shown}" if shown else name


def list_audio(folder: str) -> list[str]:
  """Audio files under a folder (any Beam filesystem), sorted."""
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top

  pattern = posixpath.join(folder.rstrip("/"), "**")
  found = []
  for m in FileSystems.match([pattern])[0].metadata_list:
    if m.path.endswith(AUDIO_SUFFIXES):
      found.append(m.path)
  return sorted(found)


def _read_wave(path: str, max_seconds: float = 0.0) -> np.ndarray:
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top

  with FileSystems.open(path) as f:
    wave = audio.decode(f)
  if max_seconds:
    wave = wave[: int(max_seconds * constants.SAMPLE_RATE)]
  if wave.size and not np.all(np.isfinite(wave)):
    raise audio.AudioError("NaN or infinite samples")
  audio.check_usable(wave)
  return wave


# --- DoFns -------------------------------------------------------------------


class EmbedFn(beam.DoFn):
  """(role, set, file id, path) -> (semantic label, (role, set, id, feats))."""

  def __init__(self, semantic: Sequence[tuple[str, dict]]):
    self._semantic = list(semantic)
    self._files = Metrics.counter(NAMESPACE, "files_embedded")
    self._failed = Metrics.counter(NAMESPACE, "embed_failed")

  def setup(self):
    self._emb = []
    for name, opts in self._semantic:
      e = base.make_semantic_embedder(name, **opts)
      e.load()
      self._emb.append((_label(name, opts), e))

  def process(self, element):
    role, set_name, file_id, path = element
    try:
      wave = _read_wave(path)
    except (audio.AudioError, OSError) as e:
      self._failed.inc()
      yield beam.pvalue.TaggedOutput("dead", {
          "path": path, "step": "read", "set": set_name, "reason": str(e)})
      return
    seconds = wave.shape[0] / constants.SAMPLE_RATE
    for label, emb in self._emb:
      t = time.process_time()
      try:
        feats = np.asarray(emb.embed(wave), np.float32)
      except base.TokenizerError as e:
        self._failed.inc()
        yield beam.pvalue.TaggedOutput("dead", {
            "path": path, "step": f"embed {label}", "set": set_name,
            "reason": str(e)})
        continue
      took = time.process_time() - t
      if not np.all(np.isfinite(feats)):
        yield beam.pvalue.TaggedOutput("dead", {
            "path": path, "step": f"embed {label}", "set": set_name,
            "reason": "NaN or infinite features"})
        continue
      yield beam.pvalue.TaggedOutput("timing", {
          "kind": "timing", "metric": f"embed {label}",
          "audio_seconds": seconds, "cpu_seconds": took, "set": set_name,
          "role": role})
      yield label, (role, set_name, file_id, feats)
    self._files.inc()


class AbxFn(beam.DoFn):
  """(semantic label, all its features) -> ABX rows for every item set."""

  def __init__(self, item_sets: dict, *, rate: float, ks: Sequence[int],
               seed: int, continuous_distance: str,
               discrete_distances: Sequence[str]):
    self._sets = item_sets  # set name -> .item text
    self._rate = rate
    self._ks = list(ks)
    self._seed = seed
    self._cont = continuous_distance
    self._disc = list(discrete_distances)
    self._rows = Metrics.counter(NAMESPACE, "abx_results")

  def process(self, element):
    label, values = element
    values = sorted(values, key=lambda v: (v[0], v[1], v[2]))
    fit = [f for role, _, _, f in values]  # every embedded frame fits
    fit_frames = np.concatenate(fit) if fit else np.zeros([0, 1], np.float32)
    for set_name, text in sorted(self._sets.items()):
      items = abx.parse_items(text, source=set_name)
      feats = {fid: f for role, s, fid, f in values
               if role == "abx" and s == set_name}
      common = {"kind": "abx", "set": set_name, "semantic": label}
      t = time.process_time()
      res = abx.abx_error_rates(feats, items, rate=self._rate,
                                distance=self._cont)
      yield {**common, "features": "continuous", "k": None,
             "k_requested": None, **res.to_dict(),
             "cpu_seconds": time.process_time() - t}
      for k_req in self._ks:
        k = min(k_req, fit_frames.shape[0])
        if k < 2:
          continue
        book = kmeans.fit_codebook(fit_frames, k=k, seed=self._seed)
        ids = {fid: book.quantize(f) for fid, f in feats.items()}
        for dist in self._disc:
          t = time.process_time()
          if dist == "onehot":
            res = abx.abx_error_rates(ids, items, rate=self._rate,
                                      distance="onehot")
          else:
            cents = {fid: abx.tokens_to_centroids(i, book.centroids)
                     for fid, i in ids.items()}
            res = abx.abx_error_rates(cents, items, rate=self._rate,
                                      distance="angular")
            res.distance = "centroid (angular)"
          yield {**common, "features": "kmeans", "k": k, "k_requested": k_req,
                 "fit_frames": int(fit_frames.shape[0]), **res.to_dict(),
                 "cluster_usage": book.provenance.get("cluster_usage"),
                 "cpu_seconds": time.process_time() - t}
      self._rows.inc()


class ReconstructFn(beam.DoFn):
  """Audio path -> one row per codec setting (scores, timings)."""

  def __init__(self, codecs: Sequence[str], *, lyra_dir: Optional[str],
               metrics: Sequence[str], max_seconds: float):
    self._codecs = list(codecs)
    self._lyra_dir = lyra_dir
    self._metrics = list(metrics)
    self._max_seconds = max_seconds
    self._done = Metrics.counter(NAMESPACE, "reconstructions")
    self._failed = Metrics.counter(NAMESPACE, "reconstruction_failed")

  def setup(self):
    self._scorer = reconstruction.Scorer(self._metrics)
    self._toks = []
    for text in self._codecs:
      setting = reconstruction.CodecSetting.parse(text)
      extra = ({"model_dir": self._lyra_dir}
               if setting.backend == "lyra" and self._lyra_dir else {})
      tok = setting.make(**extra)
      tok.load()
      self._toks.append((setting, tok))

  def process(self, path: str):
    try:
      wave = _read_wave(path, self._max_seconds)
    except (audio.AudioError, OSError) as e:
      self._failed.inc()
      yield beam.pvalue.TaggedOutput("dead", {
          "path": path, "step": "read", "reason": str(e)})
      return
    for setting, tok in self._toks:
      try:
        scores = reconstruction.reconstruct_and_score(wave, tok, self._scorer)
      except (reconstruction.ReconstructionError, base.TokenizerError) as e:
        self._failed.inc()
        yield beam.pvalue.TaggedOutput("dead", {
            "path": path, "step": f"reconstruct {setting.label}",
            "reason": str(e)})
        continue
      self._done.inc()
      yield {"kind": "reconstruction", "file": path,
             **reconstruction.describe(setting, tok), **scores}


# --- the pipeline ------------------------------------------------------------


def _json_line(row: dict) -> str:
  return json.dumps(row, sort_keys=True, default=lambda o: o.tolist()
                    if isinstance(o, np.ndarray) else str(o))


def build_pipeline(p: beam.Pipeline, plan: dict) -> None:
  """Wires the job from a checked plan (see :func:`make_plan`)."""
  rows, dead = [], []
  if plan["abx_files"]:
    embedded = (
        p | "AbxFiles" >> beam.Create(plan["abx_files"])
        | "SpreadAbx" >> beam.Reshuffle()
        | "Embed" >> beam.ParDo(EmbedFn(plan["semantic"])).with_outputs(
            "dead", "timing", main="features"))
    rows.append(embedded.timing)
    dead.append(embedded.dead)
    rows.append(
        embedded.features
        | "BySemantic" >> beam.GroupByKey()
        | "Abx" >> beam.ParDo(AbxFn(
            plan["item_sets"], rate=plan["rate"], ks=plan["ks"],
            seed=plan["seed"], continuous_distance=plan["continuous_distance"],
            discrete_distances=plan["discrete_distances"])))
  if plan["audio_files"]:
    recon = (
        p | "AudioFiles" >> beam.Create(plan["audio_files"])
        | "SpreadAudio" >> beam.Reshuffle()
        | "Reconstruct" >> beam.ParDo(ReconstructFn(
            plan["codecs"], lyra_dir=plan["lyra_dir"],
            metrics=plan["metrics"], max_seconds=plan["max_seconds"])
        ).with_outputs("dead", main="rows"))
    rows.append(recon.rows)
    dead.append(recon.dead)
  out = plan["output_dir"]
  (tuple(rows) | "AllRows" >> beam.Flatten() | "RowJson" >> beam.Map(_json_line)
   | "WriteRows" >> beam.io.WriteToText(posixpath.join(out, ROWS),
                                        shard_name_template=""))
  (tuple(dead) | "AllDead" >> beam.Flatten()
   | "DeadJson" >> beam.Map(_json_line)
   | "WriteDead" >> beam.io.WriteToText(posixpath.join(out, DEAD),
                                        shard_name_template=""))


# --- flags, plan, run --------------------------------------------------------


def make_parser() -> options_lib.CommandParser:
  parser = options_lib.CommandParser(
      prog=options_lib.invocation(MODULE),
      description="Token and codec quality: ABX of semantic features and "
      "tokens, ViSQOL / PESQ / STOI of acoustic codecs, with the paper's "
      "figures beside. A Beam job (DirectRunner unless --runner is given); "
      "flags this parser does not know go to Beam's PipelineOptions.")
  parser.add_argument("--output_dir", required=True,
                      help="where rows.jsonl, dead_letters.jsonl, "
                      "token_quality.json/.md and the PNG plots go")
  g = parser.add_argument_group("ABX (semantic tokens)")
  g.add_argument("--item_file", default=None,
                 help="a .item file (file onset offset phone prev next "
                 "speaker), e.g. libri-light's dev-clean.item")
  g.add_argument("--item_audio_dir", default=None,
                 help="folder holding <file>.flac or <file>.wav for each file "
                 "id of --item_file (searched recursively)")
  g.add_argument("--espeak_set", action="store_true",
                 help="also build an offline espeak-ng item set (synthetic "
                 "speech, NOT comparable with LibriSpeech ABX) under "
                 "<output_dir>/espeak_set and score it")
  g.add_argument("--espeak_repetitions", type=int, default=2,
                 help="readings of the word list per espeak speaker")
  g.add_argument("--semantic", action="append", default=None,
                 metavar="NAME[:KEY=VALUE,...]",
                 help="semantic setting to compare, repeatable (e.g. logmel, "
                 "hubert:model=/m,layer=6); default: logmel")
  g.add_argument("--kmeans_k", default="64,256,1024",
                 help="comma-separated K of the k-means codebooks to fit "
                 "(capped by the number of frames available)")
  g.add_argument("--kmeans_fit_dir", default=None,
                 help="extra folder of audio whose frames join the ABX sets' "
                 "own frames to fit the codebooks")
  g.add_argument("--kmeans_seed", type=int, default=0,
                 help="seed of the k-means fits")
  g.add_argument("--continuous_distance", default="angular",
                 choices=("angular", "cosine", "euclidean"),
                 help="frame distance for continuous features (angular is "
                 "libri-light's 'cosine')")
  g.add_argument("--discrete_distance", default="onehot,centroid",
                 help="frame distances for k-means tokens: onehot (0 same id,"
                 " 1 otherwise) and/or centroid (angular distance of the "
                 "centroids)")
  g = parser.add_argument_group("Reconstruction (acoustic tokens)")
  g.add_argument("--audio_dir", default=None,
                 help="folder of audio (searched recursively for .flac/.wav) "
                 "to encode, decode and score")
  g.add_argument("--max_files", type=int, default=0,
                 help="use the first N files of --audio_dir (sorted); 0 = all")
  g.add_argument("--max_seconds", type=float, default=0.0,
                 help="score the first N seconds of each file (ViSQOL costs "
                 "about 0.2 s of CPU per second of audio); 0 = whole file")
  g.add_argument("--codec", action="append", default=None,
                 metavar="BACKEND[:KEY=VALUE,...]",
                 help="acoustic setting to score, repeatable; default: "
                 + " ".join(DEFAULT_CODECS))
  g.add_argument("--lyra_dir", default=None,
                 help="folder with Lyra's .tflite files (default: "
                 "$AUDIOLM_LYRA_DIR, then the download cache)")
  g.add_argument("--metrics", default="visqol,pesq,stoi",
                 help="reconstruction metrics to compute")
  return parser


def _ints(text: str, flag: str) -> list[int]:
  try:
    out = [int(x) for x in text.split(",") if x.strip()]
  except ValueError:
    raise UserError(f"{flag} must be comma-separated integers, got {text!r}"
                    ) from None
  if any(k < 2 for k in out):
    raise UserError(f"{flag}: every K must be at least 2, got {text!r}")
  return out


def make_plan(args: argparse.Namespace) -> dict:
  """Checks every flag and input before any compute; raises UserError."""
  out = args.output_dir
  ks = _ints(args.kmeans_k, "--kmeans_k")
  semantic = [parse_semantic(s) for s in (args.semantic or ["logmel"])]
  rates = set()
  for name, opts in semantic:
    try:
      emb = base.make_semantic_embedder(name, **opts)
    except ValueError as e:
      raise UserError(f"--semantic={name}: {e}") from None
    rates.add(float(emb.info().get("rate_hz") or constants.SEMANTIC_RATE_HZ))
  if len(rates) != 1:
    raise UserError(f"--semantic settings give different frame rates "
                    f"{sorted(rates)}; compare them in separate runs")
  disc = [d for d in args.discrete_distance.split(",") if d]
  bad = set(disc) - {"onehot", "centroid"}
  if bad:
    raise UserError(f"--discrete_distance: unknown {sorted(bad)}; use onehot "
                    "and/or centroid")
  metrics = [m for m in args.metrics.split(",") if m]
  bad = set(metrics) - set(reconstruction.METRICS)
  if bad:
    raise UserError(f"--metrics: unknown {sorted(bad)}; known: "
                    f"{','.join(reconstruction.METRICS)}")
  item_sets, abx_files = {}, []
  if bool(args.item_file) != bool(args.item_audio_dir):
    raise UserError("--item_file and --item_audio_dir go together")
  if args.item_file:
    try:
      items = abx.read_items(args.item_file)
    except (OSError, abx.ItemFileError) as e:
      raise UserError(f"--item_file: {e}") from None
    by_stem = {posixpath.splitext(posixpath.basename(f))[0]: f
               for f in list_audio(args.item_audio_dir)}
    ids = sorted({it.file for it in items})
    found = [i for i in ids if i in by_stem]
    if not found:
      raise UserError(f"--item_audio_dir {args.item_audio_dir} holds none of "
                      f"the {len(ids)} files of --item_file (e.g. "
                      f"{ids[0]}.flac)")
    name = posixpath.splitext(posixpath.basename(args.item_file))[0]
    item_sets[name] = abx.format_items(items)
    abx_files += [("abx", name, i, by_stem[i]) for i in found]
  if args.espeak_set:
    from audiolm_t5x.pipelines.evaluation import espeak_items  # pylint: disable=g-import-not-at-top

    if "://" in out:
      raise UserError("--espeak_set writes its audio with the local espeak-ng "
                      f"library and needs a local --output_dir, not {out}; "
                      "build it once locally and pass --item_file / "
                      "--item_audio_dir on a shared filesystem instead")

    try:
      built = espeak_items.build_item_set(
          os.path.join(out, "espeak_set"),
          repetitions=args.espeak_repetitions)
    except espeak_items.EspeakUnavailable as e:
      raise UserError(f"--espeak_set: {e}") from None
    with open(built.item_file, encoding="utf-8") as f:
      item_sets["espeak"] = f.read()
    ids = sorted({it.file for it in abx.parse_items(item_sets["espeak"])})
    abx_files += [("abx", "espeak", i,
                   os.path.join(built.audio_dir, i + ".wav")) for i in ids]
  if args.kmeans_fit_dir:
    fit = list_audio(args.kmeans_fit_dir)
    if not fit:
      raise UserError(f"--kmeans_fit_dir {args.kmeans_fit_dir} has no "
                      ".flac/.wav files")
    abx_files += [("fit", "fit", posixpath.basename(f), f) for f in fit]
  audio_files = []
  if args.audio_dir:
    audio_files = list_audio(args.audio_dir)
    if not audio_files:
      raise UserError(f"--audio_dir {args.audio_dir} has no .flac/.wav files")
    if args.max_files:
      audio_files = audio_files[:args.max_files]
  if not item_sets and not audio_files:
    raise UserError("nothing to measure: give --item_file/--item_audio_dir, "
                    "--espeak_set and/or --audio_dir")
  codecs = list(args.codec or DEFAULT_CODECS)
  described = []
  if audio_files:
    for text in codecs:
      try:
        setting = reconstruction.CodecSetting.parse(text)
        extra = ({"model_dir": args.lyra_dir}
                 if setting.backend == "lyra" and args.lyra_dir else {})
        tok = setting.make(**extra)
        tok.load()  # fails here, not on a worker, if weights are missing
        tok.decode(np.zeros([1, tok.levels], np.int64))
      except NotImplementedError:
        raise UserError(f"--codec={text}: this backend has no decoder, so it "
                        "cannot be scored") from None
      except (ValueError, base.TokenizerError, OSError) as e:
        raise UserError(f"--codec={text}: {e}") from None
      described.append(reconstruction.describe(setting, tok))
  return {
      "output_dir": out, "semantic": semantic, "rate": rates.pop(),
      "ks": ks, "seed": args.kmeans_seed,
      "continuous_distance": args.continuous_distance,
      "discrete_distances": disc, "item_sets": item_sets,
      "abx_files": abx_files, "audio_files": audio_files, "codecs": codecs,
      "codec_info": described, "lyra_dir": args.lyra_dir, "metrics": metrics,
      "max_seconds": args.max_seconds,
  }


def run(argv: Optional[Sequence[str]] = None) -> dict:
  """The command: parse, check, run the Beam job, write the report."""
  argv = list(sys.argv[1:] if argv is None else argv)
  args, beam_args = options_lib.parse_args(make_parser(), argv)
  start = time.time()
  plan = make_plan(args)
  opts = options_lib.pipeline_options(beam_args, verbose=args.verbose)
  print(f"token quality: {len(plan['abx_files'])} ABX files "
        f"({', '.join(sorted(plan['item_sets'])) or 'no item set'}), "
        f"{len(plan['audio_files'])} audio files x {len(plan['codecs'])} "
        "codec settings; running the Beam job ...", flush=True)
  with options_lib.make_pipeline(opts) as p:
    build_pipeline(p, plan)
  counters = options_lib.counters(p.result, NAMESPACE)
  command = options_lib.command_line(MODULE, argv)
  figures = report.write_report(
      plan["output_dir"], rows_path=posixpath.join(plan["output_dir"], ROWS),
      dead_path=posixpath.join(plan["output_dir"], DEAD), command=command,
      settings={k: plan[k] for k in ("semantic", "rate", "ks", "seed",
                                     "continuous_distance",
                                     "discrete_distances", "codecs",
                                     "codec_info", "metrics", "max_seconds")},
      counters=counters)
  print(report.summary_text(figures))
  print(f"done in {time.time() - start:.1f} s; counters {json.dumps(counters)}"
        f"; outputs in {plan['output_dir']} (token_quality.md, "
        "token_quality.json, PNG plots, rows.jsonl, "
        "dead_letters.jsonl)")
  return figures


def main(argv: Optional[Sequence[str]] = None) -> int:
  """The command's entry point: exit status 0, or 2 for a user error."""
  return options_lib.main(run, MODULE, argv)
