r"""Run the whole data path on a small built-in sample and say what it did.

::

  python -m audiolm_t5x.demo [--output_dir=/tmp/audiolm_demo] [--lyra_dir=DIR]

The demo spans the project's parts, so it lives beside them in the package:

1. writes a small LibriSpeech-shaped sample (SYNTHETIC audio, not speech; see
   ``pipelines.sample_data``) -- or uses ``--input_dir`` if given;
2. fits a k-means codebook (log-mel features, K=64) with
   ``pipelines.fit_kmeans``;
3. tokenizes both splits with ``pipelines.tokenize_corpus`` (log-mel + k-means
   semantic tokens, Lyra v2 SoundStream acoustic tokens in the job's default
   layout, which fits the gin files) into TFRecords;
4. prints one example of every speech task (``tasks.inspect_task``) built on
   the records; the piano tasks read a piano dataset
   (``$AUDIOLM_PIANO_DATA_DIR``), which the demo does not make;
5. writes the data report (``pipelines.report``: plots and report.md) into
   ``<output_dir>/tokens/report``.

Lyra's model files are found through ``--lyra_dir``, ``$AUDIOLM_LYRA_DIR``,
the team's ``../shared/assets/lyra_soundstream`` beside a source checkout, or
the download cache (``~/.cache/audiolm_t5x/lyra/<commit>/``); if none has them,
they are downloaded from Lyra's public repository (sha256-verified). Offline
with no copy, the demo stops and says where to put them.
"""

from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

from audiolm_t5x.pipelines import options as options_lib


# The speech tasks, in the order of the stages (registered in tasks.audiolm).
SPEECH_TASKS = ("audiolm_semantic_v001", "audiolm_coarse_v001",
                "audiolm_fine_v001", "audiolm_semantic_prompt_v001")


MODULE = "audiolm_t5x.demo"

def _find_lyra(flag: Optional[str]) -> tuple[Optional[str], str]:
  from audiolm_t5x.pipelines.tokenizers import lyra  # pylint: disable=g-import-not-at-top

  here = os.path.dirname(os.path.abspath(__file__))
  team_copy = os.path.join(here, "..", "..", "shared", "assets",
                           "lyra_soundstream")
  for where, path in (("--lyra_dir", flag),
                      ("$" + lyra.ENV_VAR, os.environ.get(lyra.ENV_VAR)),
                      ("team assets", os.path.normpath(team_copy)),
                      ("download cache", lyra.default_cache_dir())):
    if path and os.path.isfile(os.path.join(path,
                                            "soundstream_encoder.tflite")):
      return path, where
  return None, ""


def make_parser() -> options_lib.CommandParser:
  parser = options_lib.CommandParser(
      prog=options_lib.invocation(MODULE), description=__doc__.split("\n\n")[0])
  parser.add_argument("--output_dir", default="/tmp/audiolm_demo",
                      help="where the sample, codebook and records go")
  parser.add_argument("--input_dir", default=None,
                      help="a LibriSpeech tree to use instead of the sample")
  parser.add_argument("--lyra_dir", default=None,
                      help="folder with Lyra's .tflite files (default: "
                      "$AUDIOLM_LYRA_DIR, team assets, the download cache)")
  parser.add_argument("--k", type=int, default=64,
                      help="semantic codebook size for the demo")
  return parser


def run(argv: Optional[Sequence[str]] = None) -> dict:
  """Runs the demo; returns ``{task: statistics}`` of the printed tasks."""
  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines import fit_kmeans
  from audiolm_t5x.pipelines import sample_data
  from audiolm_t5x.pipelines import tokenize_corpus

  args, beam_args = options_lib.parse_args(make_parser(), argv)
  passed = beam_args + (["--verbose"] if args.verbose else [])
  out = args.output_dir
  corpus_dir = args.input_dir
  print("== 1. corpus")
  if corpus_dir is None:
    corpus_dir = os.path.join(out, "LibriSpeech-synthetic")
    files = sample_data.make_sample(corpus_dir)
    print(f"wrote {len(files)} SYNTHETIC utterances (vowel-like tones and "
          f"noise, not speech) in LibriSpeech's layout under {corpus_dir}")
  else:
    print(f"using {corpus_dir}")

  lyra_dir, where = _find_lyra(args.lyra_dir)
  lyra_flags = [f"--lyra_dir={lyra_dir}"] if lyra_dir else ["--lyra_download"]
  print(f"acoustic tokenizer: Lyra v2 SoundStream, "
        f"{'from ' + where + ': ' + lyra_dir if lyra_dir else 'downloading'}")
  print("semantic tokenizer: log-mel features (weight-free) + k-means")

  print("\n== 2. fit the semantic codebook (pipelines.fit_kmeans)")
  codebook = os.path.join(out, f"kmeans_logmel_{args.k}.npz")
  fit_kmeans.run([f"--input_dir={corpus_dir}", "--splits=train-clean-100",
                  f"--output={codebook}", f"--k={args.k}", "--seed=0",
                  *passed])

  print("\n== 3. tokenize (pipelines.tokenize_corpus)")
  tokens = os.path.join(out, "tokens")
  tokenize_corpus.run([f"--input_dir={corpus_dir}", f"--output_dir={tokens}",
                       f"--kmeans={codebook}", "--num_shards=2", *lyra_flags,
                       *passed])

  print("\n== 4. SeqIO tasks over the records (tasks.inspect_task)")
  from audiolm_t5x.tasks import inspect_task

  stats = {}
  for task in SPEECH_TASKS:
    print(f"\n-- {task}")
    stats[task] = inspect_task.run([
        f"--task={task}", "--split=validation", "--num_examples=1",
        "--stats_examples=0", f"--data_dir={tokens}", "--max_tokens=12"])
  print(f"\nprinted the {len(SPEECH_TASKS)} speech tasks; the piano tasks "
        "read a piano dataset through $AUDIOLM_PIANO_DATA_DIR")

  print("\n== 5. data report (pipelines.report)")
  from audiolm_t5x.pipelines import data_report
  data_report.run([f"--data_dir={tokens}", *beam_args])
  print(f"done: records in {tokens}; next: point the SeqIO tasks at them "
        "with AUDIOLM_DATA_DIR and train with t5x (BUILD.md section 5)")
  return stats


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Console entry: runs the demo; exit status (2: a user error)."""
  return options_lib.main(run, MODULE, argv)


if __name__ == "__main__":
  sys.exit(main())
