"""Prints a few examples of an AudioLM task and statistics of a split.

Usage::

  AUDIOLM_DATA_DIR=/data/tokens \\
  python -m tasks.inspect_task --task=audiolm_coarse_v001 \\
      --split=validation --num_examples=3

Each example shows its record, the crop (start, seconds), lengths before and
after deduplication, whether EOS ends it, and its ids decoded as ``S<k>``
(semantic token k), ``A<q>:<c>`` (acoustic level q, 0-based, code c) and
``EOS``. The statistics cover ``--stats_examples`` examples (0 = the whole
split): length distributions, deduplication ratio, EOS rate and token usage
per level (codes used out of the codebook, unigram perplexity).
"""

from __future__ import annotations

import collections
import functools
import inspect as pyinspect
import sys
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from audiolm_t5x.pipelines import options as options_lib

if __name__ == "__main__":  # before seqio: TensorFlow's pre-absl log lines
  options_lib.import_tensorflow_quietly(verbose="--verbose" in sys.argv)

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import seqio

from audiolm_t5x import contract
from . import audiolm
from . import preprocessors as prep
from . import stages
from . import vocabulary as vocabulary_lib


MODULE = "audiolm_t5x.tasks.inspect_task"

def task_examples(task_name: str, *, split: str, seed: int = 0,
                  data_dir: Optional[str] = None) -> Iterable[dict]:
  """Yields numpy examples of a task with crop metadata (no cache, no shuffle).

  Same preprocessing as the registered task, plus ``id``, ``num_samples``,
  ``crop_start``, ``crop_steps`` and ``crop_reaches_end``.
  """
  corpus, stage = audiolm.TASK_STAGES[task_name]
  task = seqio.get_mixture_or_task(task_name)
  resolved = stages.resolve_corpus(corpus, data_dir=data_dir)
  files = seqio.utils.list_files(resolved.file_patterns(split))
  if not files:
    raise FileNotFoundError(f"no shards match {resolved.file_patterns(split)}"
                            f" (task split {split!r})")
  ds = stages.read_token_records(files)
  steps = list(task.preprocessors)
  cache = next(i for i, p in enumerate(steps)
               if isinstance(p, seqio.CacheDatasetPlaceholder))
  # The last step makes inputs/targets; here it also keeps the metadata.
  steps[-1] = functools.partial(steps[-1], keep=stages.METADATA)
  for step in steps[:cache]:
    ds = _apply(step, ds, task, data_dir)
  with seqio.utils.map_seed_manager(seed):
    for step in steps[cache + 1:]:
      ds = _apply(step, ds, task, data_dir)
  return ds.as_numpy_iterator()


def _apply(step, ds, task, data_dir):
  """Runs one of the task's steps as seqio would, with ``data_dir``."""
  func = step.func if isinstance(step, functools.partial) else step
  if data_dir is not None and "data_dir" in pyinspect.signature(
      func).parameters:
    step = functools.partial(step, data_dir=data_dir)
  step = seqio.utils.add_kwargs_to_transform(
      step, output_features=task.output_features, sequence_length=None)
  return step(ds)


def describe_ids(ids: Sequence[int], layout: vocabulary_lib.VocabularyLayout,
                 *, max_tokens: int = 24) -> str:
  """``S12 S7 A0:512 A1:3 ... EOS`` for the first and last ids."""
  def one(i):
    kind, level, raw = layout.describe(i)
    return {"semantic": f"S{raw}", "acoustic": f"A{level}:{raw}",
            "eos": "EOS", "pad": "PAD"}.get(kind, f"?{i}")
  ids = list(ids)
  if len(ids) <= max_tokens:
    return " ".join(one(i) for i in ids)
  head = " ".join(one(i) for i in ids[:max_tokens - 4])
  tail = " ".join(one(i) for i in ids[-4:])
  return f"{head} ... ({len(ids) - max_tokens} more) ... {tail}"


def _percentiles(values: Sequence[float]) -> Dict[str, float]:
  v = np.asarray(values, dtype=np.float64)
  if not v.size:
    return {}
  return {"min": float(v.min()), "p50": float(np.percentile(v, 50)),
          "mean": float(v.mean()), "p90": float(np.percentile(v, 90)),
          "max": float(v.max())}


def summarize(examples: Iterable[Mapping[str, np.ndarray]], *,
              layout: vocabulary_lib.VocabularyLayout, stage: str,
              semantic_rate_hz: int) -> dict:
  """Statistics of task examples (with crop metadata).

  Example (semantic stage, two examples)::

    in:  [{"targets": [2, 3, 1], "crop_steps": 4, "crop_reaches_end": True},
          {"targets": [5, 6], "crop_steps": 2, "crop_reaches_end": False}]
    out: {"examples": 2, "dedup_ratio": 4 / 6, "eos_rate": 0.5,
          "lengths": {"targets": {...}}, "crop_seconds": {...},
          "usage": {"semantic": {"used": 4, "of": K, ...}}}
  """
  lengths = collections.defaultdict(list)
  crop_seconds, before, after, eos, n = [], 0, 0, 0, 0
  counts = collections.defaultdict(collections.Counter)
  for ex in examples:
    n += 1
    for key in ("inputs", "targets"):
      if key in ex:
        lengths[key].append(len(ex[key]))
        for i in ex[key]:
          kind, level, raw = layout.describe(i)
          if kind == "semantic":
            counts["semantic"][raw] += 1
          elif kind == "acoustic":
            counts[f"acoustic level {level}"][raw] += 1
    steps = int(ex[prep.CROP_STEPS])
    crop_seconds.append(steps / semantic_rate_hz)
    reaches_end = bool(ex[prep.CROP_REACHES_END])
    eos += reaches_end
    if stage != stages.FINE:
      if stage == stages.SEMANTIC:
        semantic = ex["targets"]
      elif stage == stages.SEMANTIC_PROMPT:  # one deduplicated crop
        semantic = np.concatenate([ex["inputs"], ex["targets"]])
      else:
        semantic = ex["inputs"]
      before += steps
      after += len(semantic) - (reaches_end if stage in (
          stages.SEMANTIC, stages.SEMANTIC_PROMPT) else 0)
  usage = {}
  for name in sorted(counts, key=lambda s: (len(s), s)):
    c = np.asarray(list(counts[name].values()), dtype=np.float64)
    p = c / c.sum()
    size = (layout.semantic_codebook_size if name == "semantic"
            else layout.acoustic_codebook_size)
    usage[name] = {"tokens": int(c.sum()), "used": len(c), "of": size,
                   "perplexity": float(np.exp(-(p * np.log(p)).sum()))}
  return {
      "examples": n,
      "lengths": {k: _percentiles(v) for k, v in lengths.items()},
      "crop_seconds": _percentiles(crop_seconds),
      "dedup_ratio": (after / before) if before else None,
      "eos_rate": eos / n if n else None,
      "usage": usage,
  }


def _fmt(stats: Mapping[str, float]) -> str:
  return "  ".join(f"{k} {v:.1f}" for k, v in stats.items())




def make_parser() -> options_lib.CommandParser:
  parser = options_lib.CommandParser(
      prog=options_lib.invocation(MODULE),
      description=__doc__.split("\n\n")[0], beam=False)
  parser.add_argument("--task", required=True,
                      choices=sorted(audiolm.TASK_STAGES),
                      help="registered task to show")
  parser.add_argument("--split", default="validation",
                      choices=list(stages.TASK_SPLITS),
                      help="task split (mapped to corpus splits as the task "
                      "maps it)")
  parser.add_argument("--num_examples", type=int, default=3,
                      help="examples printed in full")
  parser.add_argument("--stats_examples", type=int, default=1000,
                      help="examples for the statistics; 0 = whole split")
  parser.add_argument("--seed", type=int, default=0,
                      help="seqio map seed (random crops)")
  parser.add_argument("--data_dir", default=None,
                      help="the tokenization job's output (default: "
                      "$AUDIOLM_DATA_DIR / $AUDIOLM_PIANO_DATA_DIR or gin)")
  parser.add_argument("--max_tokens", type=int, default=24,
                      help="ids shown per feature")
  return parser


def main(argv: Optional[List[str]] = None) -> int:
  """Console entry: prints examples and statistics; exit status."""
  return options_lib.main(run, MODULE, argv)


def run(argv: Optional[List[str]] = None) -> dict:
  """Prints examples and statistics of a task split; returns the statistics.

  Raises:
    options_lib.UserError: a bad flag, or no usable data for the task.
  """
  args, _ = options_lib.parse_args(make_parser(), argv)
  corpus, stage = audiolm.TASK_STAGES[args.task]
  try:
    resolved = stages.resolve_corpus(corpus, data_dir=args.data_dir)
  except (ValueError, FileNotFoundError) as e:
    raise options_lib.UserError(str(e)) from e
  layout = resolved.layout
  print(f"task {args.task} (stage {stage}, corpus {corpus}), split "
        f"{args.split} -> {', '.join(resolved.split_map[args.split])}")
  print(f"data {resolved.data_dir}: {contract.summarize_tokens(resolved.info)}"
        f"; LM ids {layout.size} (padded {layout.padded_size}); crop "
        f"{resolved.crop_seconds(stage):g} s = {resolved.crop_steps(stage)} "
        f"semantic frames; Q'={resolved.coarse_levels}")
  limit = args.stats_examples or None
  kept = []
  try:
    examples = task_examples(args.task, split=args.split, seed=args.seed,
                             data_dir=args.data_dir)
  except FileNotFoundError as e:
    raise options_lib.UserError(str(e)) from e
  for i, ex in enumerate(examples):
    if limit is not None and i >= limit:
      break
    kept.append(ex)
    if i < args.num_examples:
      steps = int(ex[prep.CROP_STEPS])
      start = int(ex[prep.CROP_START])
      rate = resolved.semantic_rate_hz
      print(f"\n#{i} {ex[contract.ID].decode()}: record "
            f"{int(ex[contract.NUM_SAMPLES]) / resolved.info.sample_rate:.2f} s"
            f", crop {start / rate:.2f}-{(start + steps) / rate:.2f} s "
            f"({steps} semantic frames), EOS "
            f"{'yes' if ex[prep.CROP_REACHES_END] else 'no (crop ends inside the recording)'}")
      for key in ("inputs", "targets"):
        if key in ex:
          note = ""
          if stage == stages.SEMANTIC_PROMPT:
            p = min(resolved.prompt_steps, steps)
            note = (f" (prompt: crop frames 0-{p - 1}, deduplicated)"
                    if key == "inputs" else
                    f" (continuation: crop frames {p}-{steps - 1})")
          elif stage != stages.FINE and ((key == "inputs") ==
                                         (stage != stages.SEMANTIC)):
            n_sem = len(ex[key]) - int(key == "targets" and
                                       ex[prep.CROP_REACHES_END])
            note = f" (semantic: {steps} before dedup, {n_sem} after)"
          print(f"  {key} [{len(ex[key])}]{note}: "
                f"{describe_ids(ex[key], layout, max_tokens=args.max_tokens)}")
  stats = summarize(kept, layout=layout, stage=stage,
                    semantic_rate_hz=resolved.semantic_rate_hz)
  print(f"\nstatistics over {stats['examples']} examples "
        f"({'whole split' if limit is None or len(kept) < limit else f'first {limit}'}):")
  for key, s in stats["lengths"].items():
    print(f"  {key} length: {_fmt(s)}")
  print(f"  crop seconds: {_fmt(stats['crop_seconds'])}")
  if stats["dedup_ratio"] is not None:
    print(f"  dedup ratio (semantic tokens kept): {stats['dedup_ratio']:.3f}")
  print(f"  EOS rate (crop reaches recording end): {stats['eos_rate']:.3f}")
  for name, u in stats["usage"].items():
    print(f"  {name}: {u['tokens']} tokens, {u['used']} of {u['of']} ids used"
          f", unigram perplexity {u['perplexity']:.1f}")
  return stats


if __name__ == "__main__":
  sys.exit(main())
