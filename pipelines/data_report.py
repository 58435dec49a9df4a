r"""The data report job: statistics of a token dataset, with Beam combiners.

Reads the tokenization job's output (``dataset_info.json``, the shards of
every split, ``dead_letter.jsonl``; see :mod:`audiolm_t5x.contract`) and
computes, per split and over all splits:

* records, hours, distinct speakers and chapters;
* a histogram of record durations;
* semantic cluster usage: count of each of the K ids, perplexity
  (``exp`` of the entropy of the usage distribution, natural log), dead
  clusters (ids never used);
* the same per acoustic level (N codes each);
* the deduplication ratio of semantic tokens: tokens kept by the tasks'
  deduplication (:func:`audiolm_t5x.tasks.preprocessors.dedup_consecutive_example`,
  applied here to whole records; the tasks apply it to crops) over all tokens;
* tokens per second of audio (semantic, deduplicated semantic, acoustic ids);
* dead letters counted by split, step and reason.

Every statistic is a ``CombineFn`` or a ``Distinct``/``Count`` over the
records, so the job scales with the corpus (Libri-Light's millions of
records) on any Beam runner; only the per-key results (a few arrays of K and
Q x N counts) come back to be written as ``stats.json``. Plots and the
markdown report are drawn from ``stats.json`` by
:mod:`audiolm_t5x.pipelines.report_render`.

Locally (DirectRunner, the default)::

  python -m pipelines.report --data_dir=/data/tokens

On Dataflow (the statistics; plots are drawn where the command runs)::

  python -m pipelines.report --data_dir=gs://BUCKET/tokens \
    --output_dir=gs://BUCKET/tokens/report --runner=DataflowRunner \
    --project=PROJECT --region=us-central1 --temp_location=gs://BUCKET/tmp \
    --setup_file=./setup.py
"""

from __future__ import annotations

import argparse
import json
import math
import posixpath
import sys
import time
from typing import Any, Iterable, Mapping, Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
import numpy as np

from audiolm_t5x import constants
from audiolm_t5x import contract
from audiolm_t5x.pipelines import options as options_lib

ALL = "(all)"  # the key of statistics over every split
STATS_FILENAME = "stats.json"
REPORT_DIRNAME = "report"
NAMESPACE = "audiolm_report"
MAX_REASON_CHARS = 200


UserError = options_lib.UserError
MODULE = "audiolm_t5x.pipelines.report"


# --- Per-record summary ---------------------------------------------------------
_DEDUP_FN = None  # the traced tf.function, built once per process


def _dedup_fn():
  """``dedup_consecutive_example`` traced once (eager ops cost ~20 ms/call)."""
  global _DEDUP_FN
  if _DEDUP_FN is None:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from audiolm_t5x.tasks import preprocessors  # pylint: disable=g-import-not-at-top

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def kept(tokens):
      out = preprocessors.dedup_consecutive_example(
          {contract.SEMANTIC_TOKENS: tokens})
      return tf.size(out[contract.SEMANTIC_TOKENS])

    _DEDUP_FN = kept
  return _DEDUP_FN


def dedup_count(tokens: np.ndarray) -> int:
  """Semantic tokens kept by the tasks' deduplication of consecutive repeats.

  Runs :func:`audiolm_t5x.tasks.preprocessors.dedup_consecutive_example`, the
  function the stage-1 and stage-2 tasks apply to their crops.

  Example: ``[7, 7, 7, 3, 3, 7, 9, 9]`` -> 4 (``[7, 3, 7, 9]``).
  """
  return int(_dedup_fn()(np.asarray(tokens, np.int32)))


class SummarizeRecordFn(beam.DoFn):
  """Serialized record -> (split key, summary dict), once per split and ALL."""

  def __init__(self, acoustic_levels: int):
    self._q = acoustic_levels
    self._records = Metrics.counter(NAMESPACE, "records")

  def process(self, data: bytes):
    rec = contract.TokenRecord.from_example_bytes(data,
                                                  acoustic_levels=self._q)
    sem = np.asarray(rec.semantic_tokens, np.int64)
    summary = {
        "split": rec.split,
        "speaker": rec.speaker_id,
        "chapter": (rec.speaker_id, rec.chapter_id),
        "num_samples": int(rec.num_samples),
        "semantic": sem,
        "semantic_dedup": dedup_count(sem),
        "acoustic": np.asarray(rec.acoustic_tokens, np.int64),
    }
    self._records.inc()
    yield rec.split, summary
    yield ALL, summary


# --- Combiners ------------------------------------------------------------------
class SplitTotalsFn(beam.CombineFn):
  """Sums records, samples and token counts of record summaries."""

  KEYS = ("records", "num_samples", "semantic_tokens", "semantic_dedup_tokens",
          "acoustic_frames", "acoustic_ids")

  def create_accumulator(self):
    return dict.fromkeys(self.KEYS, 0)

  def add_input(self, acc, s):
    acc["records"] += 1
    acc["num_samples"] += s["num_samples"]
    acc["semantic_tokens"] += int(s["semantic"].size)
    acc["semantic_dedup_tokens"] += s["semantic_dedup"]
    acc["acoustic_frames"] += int(s["acoustic"].shape[0])
    acc["acoustic_ids"] += int(s["acoustic"].size)
    return acc

  def merge_accumulators(self, accs):
    out = self.create_accumulator()
    for a in accs:
      for k in self.KEYS:
        out[k] += a[k]
    return out

  def extract_output(self, acc):
    return dict(acc)


class DurationHistogramFn(beam.CombineFn):
  """Counts record durations in fixed bins; the last bin holds the rest."""

  def __init__(self, bin_seconds: float, max_seconds: float):
    self._edges = duration_bin_edges(bin_seconds, max_seconds)

  def create_accumulator(self):
    return np.zeros(len(self._edges), np.int64)  # one overflow bin at the end

  def add_input(self, acc, s):
    seconds = s["num_samples"] / constants.SAMPLE_RATE
    acc[int(np.searchsorted(self._edges, seconds, side="right")) - 1] += 1
    return acc

  def merge_accumulators(self, accs):
    return np.sum(list(accs), axis=0)

  def extract_output(self, acc):
    return {"edges": [float(e) for e in self._edges],
            "counts": [int(c) for c in acc]}


class TokenUsageFn(beam.CombineFn):
  """Counts each id of a codebook of ``size`` ids (``np.bincount``)."""

  def __init__(self, size: int):
    self._size = size

  def create_accumulator(self):
    return np.zeros(self._size, np.int64)

  def add_input(self, acc, ids):
    return acc + np.bincount(np.asarray(ids, np.int64).reshape(-1),
                             minlength=self._size)

  def merge_accumulators(self, accs):
    return np.sum(list(accs), axis=0)

  def extract_output(self, acc):
    return [int(c) for c in acc]


def duration_bin_edges(bin_seconds: float, max_seconds: float) -> np.ndarray:
  """Left edges of the duration bins: 0, w, 2w, ... up to ``max_seconds``.

  The last edge is ``max_seconds``: its bin counts every longer record.
  """
  n = int(math.ceil(max_seconds / bin_seconds))
  return np.arange(n + 1, dtype=np.float64) * bin_seconds


# --- Derived figures (pure; the renderer and the tests use them) ----------------
def usage_summary(counts: Sequence[int]) -> dict:
  """Used and dead ids and the perplexity of a usage count vector.

  Perplexity is ``exp(-sum p log p)`` over ids with ``p = count / total``:
  K for uniform use of K ids, 1 when one id takes everything.

  Example: ``[2, 2, 0, 0]`` -> used 2, dead 2, perplexity 2.0.
  """
  c = np.asarray(counts, np.float64)
  total = c.sum()
  used = int((c > 0).sum())
  if total == 0:
    return {"size": int(c.size), "total": 0, "used": 0, "dead": int(c.size),
            "perplexity": 0.0, "max_share": 0.0}
  p = c[c > 0] / total
  return {"size": int(c.size), "total": int(total), "used": used,
          "dead": int(c.size) - used,
          "perplexity": float(np.exp(-(p * np.log(p)).sum())),
          "max_share": float(p.max())}


def derive(totals: Mapping[str, int]) -> dict:
  """Hours, deduplication ratio and tokens per second from split totals."""
  seconds = totals["num_samples"] / constants.SAMPLE_RATE
  per_s = (lambda n: n / seconds) if seconds else (lambda n: 0.0)
  sem = totals["semantic_tokens"]
  return {
      "seconds": seconds,
      "hours": seconds / 3600.0,
      "dedup_ratio": totals["semantic_dedup_tokens"] / sem if sem else 0.0,
      "semantic_tokens_per_second": per_s(sem),
      "semantic_dedup_tokens_per_second": per_s(
          totals["semantic_dedup_tokens"]),
      "acoustic_frames_per_second": per_s(totals["acoustic_frames"]),
      "acoustic_tokens_per_second": per_s(totals["acoustic_ids"]),
  }


# --- The pipeline ---------------------------------------------------------------
def _dead_key(line: str) -> tuple:
  d = contract.DeadLetter.from_json(line)
  return (d.split, d.step, d.reason[:MAX_REASON_CHARS])


def _as_item(kind: str):
  return lambda kv: (kind, kv[0], kv[1])


def build_pipeline(p: beam.Pipeline, *, data_dir: str,
                   info: contract.DatasetInfo, splits: Sequence[str],
                   stats_path: str, bin_seconds: float,
                   max_seconds: float) -> beam.PCollection:
  """Wires the job; the one output element is the path of ``stats.json``."""
  q, k, n = (info.acoustic_levels, info.semantic_codebook_size,
             info.acoustic_codebook_size)
  patterns = [info.shard_pattern(data_dir, s) for s in splits]
  summaries = (
      p
      | "ShardPatterns" >> beam.Create(patterns)
      | "ReadRecords" >> beam.io.ReadAllFromTFRecord()
      | "Summarize" >> beam.ParDo(SummarizeRecordFn(q)))
  results = [
      summaries
      | "Totals" >> beam.CombinePerKey(SplitTotalsFn())
      | "TotalsItems" >> beam.Map(_as_item("totals")),
      summaries
      | "Durations" >> beam.CombinePerKey(
          DurationHistogramFn(bin_seconds, max_seconds))
      | "DurationItems" >> beam.Map(_as_item("durations")),
      summaries
      | "SemanticIds" >> beam.MapTuple(lambda key, s: (key, s["semantic"]))
      | "SemanticUsage" >> beam.CombinePerKey(TokenUsageFn(k))
      | "SemanticItems" >> beam.Map(_as_item("semantic_usage")),
      summaries
      | "AcousticIdsPerLevel" >> beam.FlatMapTuple(
          lambda key, s: [((key, lvl), s["acoustic"][:, lvl])
                          for lvl in range(q)])
      | "AcousticUsage" >> beam.CombinePerKey(TokenUsageFn(n))
      | "AcousticItems" >> beam.Map(_as_item("acoustic_usage")),
  ]
  for kind in ("speaker", "chapter"):
    results.append(
        summaries
        | f"{kind}Keys" >> beam.MapTuple(
            lambda key, s, kind=kind: (key, s[kind]))
        | f"Distinct{kind}s" >> beam.Distinct()
        | f"Count{kind}s" >> beam.combiners.Count.PerKey()
        | f"{kind}Items" >> beam.Map(_as_item(f"{kind}s")))
  dead_path = posixpath.join(data_dir, contract.DEAD_LETTER_FILENAME)
  if FileSystems.exists(dead_path):
    dead_lines = p | "DeadLetterLines" >> beam.io.ReadFromText(dead_path)
  else:
    dead_lines = p | "NoDeadLetterFile" >> beam.Create([])
  results.append(
      dead_lines
      | "NonEmpty" >> beam.Filter(lambda line: line.strip())
      | "DeadLetterKeys" >> beam.Map(_dead_key)
      | "CountDeadLetters" >> beam.combiners.Count.PerElement()
      | "DeadItems" >> beam.Map(_as_item("dead_letters")))
  return (
      results
      | "AllResults" >> beam.Flatten()
      | "Gather" >> beam.combiners.ToList()
      | "WriteStats" >> beam.Map(
          write_stats, stats_path=stats_path, info=info, data_dir=data_dir,
          splits=list(splits), bin_seconds=bin_seconds))


def assemble_stats(items: Iterable[tuple], *, info: contract.DatasetInfo,
                   data_dir: str, splits: Sequence[str],
                   bin_seconds: float) -> dict:
  """Turns the combiners' (kind, key, value) results into ``stats.json``."""
  per: dict[str, dict[str, Any]] = {}
  dead = []
  for kind, key, value in items:
    if kind == "dead_letters":
      split, step, reason = key
      dead.append({"split": split, "step": step, "reason": reason,
                   "count": int(value)})
    elif kind == "acoustic_usage":
      split, level = key
      per.setdefault(split, {}).setdefault("acoustic_usage", {})[level] = value
    else:
      per.setdefault(key, {})[kind] = value
  out_splits = {}
  for key in [*sorted(per.keys() - {ALL}), ALL]:
    if key not in per:
      continue
    s = per[key]
    totals = s["totals"]
    levels = s.get("acoustic_usage", {})
    out_splits[key] = {
        **totals, **derive(totals),
        "speakers": int(s.get("speakers", 0)),
        "chapters": int(s.get("chapters", 0)),
        "duration_histogram": s["durations"],
        "semantic_usage": {**usage_summary(s["semantic_usage"]),
                           "counts": s["semantic_usage"]},
        "acoustic_usage": [
            {"level": lvl, **usage_summary(levels[lvl]),
             "counts": levels[lvl]} for lvl in sorted(levels)],
    }
  dead.sort(key=lambda d: (-d["count"], d["split"], d["step"], d["reason"]))
  by_step: dict[str, int] = {}
  for d in dead:
    by_step[d["step"]] = by_step.get(d["step"], 0) + d["count"]
  return {
      "data_dir": data_dir,
      "splits_read": list(splits),
      "tokenizers": {"semantic": info.semantic, "acoustic": info.acoustic},
      "layout": contract.summarize_tokens(info),
      "duration_bin_seconds": bin_seconds,
      "splits": out_splits,
      "dead_letters": dead,
      "dead_letters_by_step": dict(sorted(by_step.items())),
      "dataset_info_splits": info.splits,
  }


def write_stats(items, *, stats_path: str, **kwargs) -> str:
  stats = assemble_stats(items, **kwargs)
  _write_text(stats_path, json.dumps(stats, indent=1, sort_keys=True))
  return stats_path


def _write_text(path: str, text: str) -> None:
  with FileSystems.create(path) as f:
    f.write(text.encode("utf-8"))


# --- The command ----------------------------------------------------------------
def make_parser() -> options_lib.CommandParser:
  p = options_lib.CommandParser(
      prog=options_lib.invocation(MODULE),
      description="Statistics, plots and a markdown report of a token dataset "
      "(the tokenization job's output). Flags not listed here go to Beam's "
      "PipelineOptions.")
  p.add_argument("--data_dir", required=True,
                 help="the tokenization job's output (dataset_info.json, "
                 "<split>/ shards, dead_letter.jsonl); any Beam filesystem")
  p.add_argument("--output_dir", default=None,
                 help="where stats.json, report.md and the PNG plots go "
                 f"(default: <data_dir>/{REPORT_DIRNAME}); plots need a local "
                 "folder or any Beam filesystem")
  p.add_argument("--splits", default="",
                 help="comma-separated splits to read (default: every split "
                 "in dataset_info.json)")
  p.add_argument("--duration_bin_seconds", type=float, default=1.0,
                 help="width of the duration histogram's bins")
  p.add_argument("--max_duration_seconds", type=float, default=36.0,
                 help="the last duration bin holds every record at least this "
                 "long (LibriSpeech utterances are at most 35 s; raise it for "
                 "grouped records or Libri-Light)")
  return p


def _check_inputs(args: argparse.Namespace) -> tuple:
  info_path = posixpath.join(args.data_dir, contract.DATASET_INFO_FILENAME)
  if not FileSystems.exists(info_path):
    raise UserError(
        f"--data_dir={args.data_dir} has no {contract.DATASET_INFO_FILENAME}: "
        "point it at the tokenization job's --output_dir")
  info = contract.DatasetInfo.load(args.data_dir)
  available = sorted(info.splits)
  splits = [s for s in args.splits.split(",") if s] or available
  missing = [s for s in splits if s not in available]
  if missing:
    raise UserError(f"--splits: {missing} not in {info_path} (it has "
                    f"{available})")
  if not splits:
    raise UserError(f"{info_path} lists no splits: has the tokenization job "
                    "finished?")
  if args.duration_bin_seconds <= 0 or (
      args.max_duration_seconds < args.duration_bin_seconds):
    raise UserError("--duration_bin_seconds must be > 0 and at most "
                    "--max_duration_seconds")
  return info, splits


def run(argv: Optional[Sequence[str]] = None, *, out=sys.stdout) -> dict:
  """Runs the report job and draws the report; returns ``stats.json``'s dict.

  Raises:
    UserError: a flag or input the user has to change (before any compute).
  """
  from audiolm_t5x.pipelines import report_render  # pylint: disable=g-import-not-at-top

  argv = list(sys.argv[1:] if argv is None else argv)
  args, beam_args = options_lib.parse_args(make_parser(), argv)
  opts = options_lib.pipeline_options(beam_args, verbose=args.verbose)
  info, splits = _check_inputs(args)
  output_dir = args.output_dir or posixpath.join(args.data_dir,
                                                 REPORT_DIRNAME)
  stats_path = posixpath.join(output_dir, STATS_FILENAME)
  start = time.monotonic()
  print(f"report: reading {', '.join(splits)} of {args.data_dir}", file=out)
  with options_lib.make_pipeline(opts) as p:
    build_pipeline(p, data_dir=args.data_dir, info=info, splits=splits,
                   stats_path=stats_path,
                   bin_seconds=args.duration_bin_seconds,
                   max_seconds=args.max_duration_seconds)
  with FileSystems.open(stats_path) as f:
    stats = json.loads(f.read().decode("utf-8"))
  stats["command"] = options_lib.command_line(MODULE, argv)
  _write_text(stats_path, json.dumps(stats, indent=1, sort_keys=True))
  files = report_render.render(stats, output_dir)
  total = stats["splits"].get(ALL, {})
  print(f"report: {total.get('records', 0)} records, "
        f"{total.get('hours', 0.0):.3f} h, "
        f"{sum(d['count'] for d in stats['dead_letters'])} dead letters, "
        f"in {time.monotonic() - start:.1f} s", file=out)
  for path in files:
    print(f"  {path}", file=out)
  return stats


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Command entry point: user errors are one line on stderr, exit code 2."""
  return options_lib.main(run, MODULE, argv)
