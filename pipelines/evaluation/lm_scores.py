r"""sWUGGY / sBLIMP-style scores: does the stage-1 model prefer the real item?

Each pair is two utterances, a real word and a non-word (lexical, sWUGGY) or
a grammatical and an ungrammatical sentence (syntactic, sBLIMP). Each
utterance is tokenized into semantic tokens with the project's semantic
tokenizer (embedder + k-means codebook), deduplicated as stage 1 was trained,
mapped to LM ids (:mod:`audiolm_t5x.tasks.vocabulary`), followed by EOS (the
recording ends there, as in training), and scored by the stage-1 model's
log-likelihood. A pair counts 1 when the real item scores higher, 0.5 on a
tie, 0 otherwise (ZeroSpeech 2021's rule); scores are averaged over the
voices of a pair, then over pairs. Both the summed log-likelihood and the
length-normalised one (sum / number of scored tokens) are reported.

Inputs:

* the ZeroSpeech 2021 layout: ``<root>/lexical/<split>/gold.csv`` + wavs
  (columns ``filename, word, phones, length, frequency, correct, id,
  voice``) and ``<root>/syntactic/<split>/gold.csv`` + wavs (``filename,
  type, subtype, transcription, correct, id, voice``). "In-vocabulary"
  sWUGGY pairs are those whose word occurs in LibriSpeech (frequency > 0, the
  challenge's bands other than ``oov``). Only the dev split has a released
  gold file.
* the offline **smoke set** (:func:`write_smoke_set`): a few dozen words /
  non-words and sentence pairs with and without an agreement error,
  synthesized with espeak-ng in the same layout, marked ``smoke`` in every
  result. It checks the machinery; its numbers are not sWUGGY or sBLIMP.

Scorers (:class:`SequenceScorer`): :class:`T5XScorer` restores a stage-1
checkpoint as T5X's infer binary does (``TrainStateInitializer`` +
``utils.create_checkpoint_manager_and_restore``), builds the model from the
project's gin files, and calls T5X's scoring API
(``DecoderOnlyModel.score_batch``) on padded batches; tests set likelihoods
with a table.
"""

from __future__ import annotations

import abc
import csv
import dataclasses
import json
import os
import subprocess
import time
from typing import Callable, Optional, Sequence

import numpy as np

from audiolm_t5x import constants
from audiolm_t5x.pipelines import options as options_lib

MODULE = "audiolm_t5x.pipelines.score_lm_pairs"

LEXICAL = "lexical"
SYNTACTIC = "syntactic"
SMOKE_MARKER = "SMOKE_SET.txt"


# --- Items and pairs ----------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Item:
  """One utterance of the test set."""

  filename: str  # stem, as in gold.csv
  path: str  # the wav file
  text: str  # word or transcription
  correct: bool
  pair_id: str
  voice: str
  frequency: Optional[int] = None  # lexical: occurrences in LibriSpeech
  kind: str = ""  # syntactic: type


def read_gold(root: str, task: str, split: str = "dev") -> list[Item]:
  """Items of ``<root>/<task>/<split>/gold.csv`` (ZeroSpeech 2021 layout)."""
  folder = os.path.join(root, task, split)
  gold = os.path.join(folder, "gold.csv")
  if not os.path.isfile(gold):
    raise FileNotFoundError(
        f"{gold} not found: expected the ZeroSpeech 2021 layout "
        f"<root>/{task}/{split}/gold.csv with the wav files beside it")
  items = []
  with open(gold, newline="") as f:
    for row in csv.DictReader(f):
      text = row.get("word") if task == LEXICAL else row.get("transcription")
      freq = row.get("frequency")
      items.append(Item(
          filename=row["filename"],
          path=os.path.join(folder, row["filename"] + ".wav"),
          text=text or "", correct=row["correct"].strip() == "1",
          pair_id=str(row["id"]), voice=str(row["voice"]),
          frequency=int(float(freq)) if freq not in (None, "") else None,
          kind=row.get("type", "") or ""))
  return items


def make_pairs(items: Sequence[Item]) -> list[tuple[Item, Item]]:
  """(real, fake) per (pair id, voice); ValueError where one is missing."""
  groups: dict = {}
  for it in items:
    groups.setdefault((it.pair_id, it.voice), []).append(it)
  pairs = []
  for key in sorted(groups):
    real = [i for i in groups[key] if i.correct]
    fake = [i for i in groups[key] if not i.correct]
    if len(real) != 1 or len(fake) != 1:
      raise ValueError(f"pair id {key[0]}, voice {key[1]}: expected one "
                       f"correct and one incorrect item, found "
                       f"{len(real)} and {len(fake)}")
    pairs.append((real[0], fake[0]))
  return pairs


# --- Scorers ------------------------------------------------------------------
class SequenceScorer(abc.ABC):
  """Summed log-likelihood of LM id sequences under the stage-1 model."""

  @abc.abstractmethod
  def score(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
    """One float per sequence: sum of log p(token | prefix) over the tokens."""


class TableScorer(SequenceScorer):
  """Scores looked up in a table (tests set the likelihoods)."""

  def __init__(self, table: dict):
    self._table = {tuple(int(t) for t in k): float(v) for k, v in table.items()}

  def score(self, sequences):
    return np.array([self._table[tuple(int(t) for t in s)] for s in sequences])


class T5XScorer(SequenceScorer):
  """A T5X stage-1 checkpoint, scored with ``DecoderOnlyModel.score_batch``.

  ``gin_files`` (relative to the project's gin folder or absolute) must bind
  ``MODEL``; the stage-1 defaults are ``models/audiolm_decoder.gin`` and
  ``stages/semantic.gin``, plus ``models/tiny.gin`` for a tiny checkpoint.
  """

  def __init__(self, checkpoint: str, *, gin_files: Sequence[str] = (
      "models/audiolm_decoder.gin", "stages/semantic.gin"),
               gin_bindings: Sequence[str] = (), batch_size: int = 16,
               length_multiple: int = 32):
    self.checkpoint = checkpoint
    self.gin_files = tuple(gin_files)
    self.gin_bindings = tuple(gin_bindings)
    self.batch_size = batch_size
    self.length_multiple = length_multiple
    self._model = self._params = self._score_fn = None

  def load(self) -> None:
    """Builds MODEL from gin and restores the checkpoint as ``t5x.infer`` does.

    The same calls as T5X's infer binary in ``mode='score'``: a
    ``TrainStateInitializer`` without optimizer state, then
    ``utils.create_checkpoint_manager_and_restore`` (Orbax) with a
    ``RestoreCheckpointConfig(mode='specific')``, non-strict because the
    optimizer state is dropped.
    """
    if self._model is not None:
      return
    import gin  # pylint: disable=g-import-not-at-top
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    from t5x import gin_utils  # pylint: disable=g-import-not-at-top
    from t5x import partitioning  # pylint: disable=g-import-not-at-top
    from t5x import utils  # pylint: disable=g-import-not-at-top

    from audiolm_t5x import t5x_configs  # pylint: disable=g-import-not-at-top

    if not os.path.isdir(self.checkpoint):
      raise FileNotFoundError(f"checkpoint {self.checkpoint} not found")
    gin.clear_config()
    gin_utils.parse_gin_flags([t5x_configs.CONFIG_DIR], list(self.gin_files),
                              list(self.gin_bindings), finalize_config=False)
    model = gin.query_parameter("%MODEL").scoped_configurable_fn()
    gin.clear_config()
    partitioner = partitioning.PjitPartitioner(num_partitions=1)
    shape = [self.batch_size, self.length_multiple]
    initializer = utils.TrainStateInitializer(
        optimizer_def=None, init_fn=model.get_initial_variables,
        input_shapes={k: shape for k in (
            "decoder_target_tokens", "decoder_input_tokens",
            "decoder_loss_weights", "decoder_causal_attention")},
        input_types={k: jnp.int32 for k in (
            "decoder_target_tokens", "decoder_input_tokens",
            "decoder_loss_weights", "decoder_causal_attention")},
        partitioner=partitioner)
    cfg = utils.RestoreCheckpointConfig(path=self.checkpoint, mode="specific",
                                        dtype="float32", strict=False)
    state, _ = utils.create_checkpoint_manager_and_restore(
        initializer, partitioner, cfg, cfg.path, None, use_orbax=True)
    if state is None:
      raise FileNotFoundError(f"no T5X checkpoint could be restored from "
                              f"{self.checkpoint}")
    self._model, self._params = model, state.params
    self._score_fn = jax.jit(model.score_batch)

  def _batch(self, sequences: Sequence[np.ndarray]) -> dict:
    longest = max(len(s) for s in sequences)
    length = -(-longest // self.length_multiple) * self.length_multiple
    n = self.batch_size
    targets = np.zeros([n, length], np.int32)
    for i, s in enumerate(sequences):
      targets[i, :len(s)] = s
    inputs = np.zeros_like(targets)  # shifted right, 0 = BOS (as T5X's
    inputs[:, 1:] = targets[:, :-1]  # DecoderFeatureConverter does)
    return {"decoder_target_tokens": targets,
            "decoder_input_tokens": inputs,
            "decoder_loss_weights": (targets > 0).astype(np.int32),
            "decoder_causal_attention": np.zeros_like(targets)}

  def score(self, sequences):
    self.load()
    out = []
    for start in range(0, len(sequences), self.batch_size):
      chunk = list(sequences[start:start + self.batch_size])
      scores = self._score_fn(self._params, self._batch(chunk))
      out.extend(np.asarray(scores)[:len(chunk)].tolist())
    return np.asarray(out, np.float64)


# --- Tokenizing utterances -------------------------------------------------------
def dedup(tokens: np.ndarray) -> np.ndarray:
  """Collapses runs of equal tokens, as stage 1 sees them: [3,3,5,3] -> [3,5,3]."""
  tokens = np.asarray(tokens).ravel()
  if not len(tokens):
    return tokens
  keep = np.concatenate([[True], tokens[1:] != tokens[:-1]])
  return tokens[keep]


def lm_sequence(semantic_ids: np.ndarray, *, deduplicate: bool = True
                ) -> np.ndarray:
  """Raw semantic ids -> LM ids (+ EOS) of stage 1."""
  from audiolm_t5x.tasks import vocabulary  # pylint: disable=g-import-not-at-top

  ids = dedup(semantic_ids) if deduplicate else np.asarray(semantic_ids)
  offset = vocabulary.PAPER_LAYOUT.semantic_offset
  return np.concatenate([ids.astype(np.int64) + offset, [constants.EOS_ID]])


class SemanticTokenizer:
  """Waveform -> raw semantic ids with a project embedder and codebook."""

  def __init__(self, backend: str, codebook: str, options: dict | None = None):
    from audiolm_t5x.pipelines.tokenizers import base  # pylint: disable=g-import-not-at-top
    from audiolm_t5x.pipelines.tokenizers import kmeans  # pylint: disable=g-import-not-at-top

    self._embedder = base.make_semantic_embedder(backend, **(options or {}))
    self._embedder.load()
    self._book = kmeans.KMeansCodebook.load(codebook)
    self.info = {"backend": backend, "codebook": codebook,
                 "k": self._book.size}

  def __call__(self, waveform: np.ndarray) -> np.ndarray:
    return self._book.quantize(self._embedder.embed(waveform))


def tokenize_items(items: Sequence[Item],
                   tokenizer: Callable[[np.ndarray], np.ndarray]) -> dict:
  """filename -> LM id sequence, for every item."""
  from audiolm_t5x.pipelines import audio  # pylint: disable=g-import-not-at-top

  out = {}
  for it in items:
    with open(it.path, "rb") as f:
      wave = audio.decode(f.read())
    out[it.filename] = lm_sequence(tokenizer(wave))
  return out


# --- Scoring pairs ------------------------------------------------------------------
def score_pairs(pairs: Sequence[tuple[Item, Item]], sequences: dict,
                scorer: SequenceScorer) -> list[dict]:
  """Per pair: both log-likelihoods (summed, normalised) and the outcome."""
  names = sorted({i.filename for p in pairs for i in p})
  scores = scorer.score([sequences[n] for n in names])
  by_name = {n: (float(s), len(sequences[n])) for n, s in zip(names, scores)}
  out = []
  for real, fake in pairs:
    (rs, rn), (fs, fn) = by_name[real.filename], by_name[fake.filename]
    row = {"id": real.pair_id, "voice": real.voice, "real": real.text,
           "fake": fake.text, "frequency": real.frequency, "type": real.kind,
           "real_logprob": rs, "fake_logprob": fs, "real_tokens": rn,
           "fake_tokens": fn}
    for name, a, b in (("summed", rs, fs), ("normalised", rs / rn, fs / fn)):
      row[f"score_{name}"] = 1.0 if a > b else (0.5 if a == b else 0.0)
    out.append(row)
  return out


def accuracy(rows: Sequence[dict], key: str) -> Optional[float]:
  """ZeroSpeech's average: over voices within a pair id, then over ids (%)."""
  by_id: dict = {}
  for r in rows:
    by_id.setdefault(r["id"], []).append(r[key])
  if not by_id:
    return None
  return 100.0 * float(np.mean([np.mean(v) for v in by_id.values()]))


def summarize(task: str, rows: Sequence[dict], *, smoke: bool) -> dict:
  s = {"task": task, "smoke_set": smoke, "pairs": len(rows)}
  for name in ("summed", "normalised"):
    s[f"accuracy_{name}"] = accuracy(rows, f"score_{name}")
    if task == LEXICAL:
      s[f"accuracy_{name}_in_vocab"] = accuracy(
          [r for r in rows if (r["frequency"] or 0) > 0], f"score_{name}")
  if task == SYNTACTIC:
    for kind in sorted({r["type"] for r in rows}):
      s[f"accuracy_normalised_{kind}"] = accuracy(
          [r for r in rows if r["type"] == kind], "score_normalised")
  return s


# --- The offline smoke set (espeak-ng) ------------------------------------------
# Real words and pronounceable non-words of similar shape (not sWUGGY's items).
SMOKE_WORDS = (
    ("water", "wuter"), ("garden", "gorden"), ("window", "wendow"),
    ("morning", "marning"), ("little", "lettle"), ("people", "peeple"),
    ("answer", "ansor"), ("yellow", "yallow"), ("mother", "mether"),
    ("sister", "sester"), ("father", "fother"), ("number", "nomber"),
    ("silver", "solver"), ("winter", "wanter"), ("basket", "besket"),
    ("doctor", "dactor"),
)
# Sentences with and without a subject-verb agreement error.
SMOKE_SENTENCES = (
    ("the dog runs in the park", "the dog run in the park"),
    ("the children play outside", "the children plays outside"),
    ("my sister reads a book", "my sister read a book"),
    ("the birds sing every morning", "the birds sings every morning"),
    ("he walks to school", "he walk to school"),
    ("the cats sleep on the bed", "the cats sleeps on the bed"),
    ("she likes green apples", "she like green apples"),
    ("the boys were happy", "the boys was happy"),
)
SMOKE_VOICES = ("en-us", "en-gb")


def _espeak(text: str, voice: str, path: str) -> None:
  subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", path, text],
                 check=True, capture_output=True)


def _to_16k(path: str) -> None:
  import soundfile as sf  # pylint: disable=g-import-not-at-top

  from audiolm_t5x.pipelines import audio  # pylint: disable=g-import-not-at-top

  with open(path, "rb") as f:
    wave = audio.decode(f.read())
  sf.write(path, wave, constants.SAMPLE_RATE, subtype="PCM_16")


def write_smoke_set(root: str, *, voices: Sequence[str] = SMOKE_VOICES
                    ) -> dict:
  """Synthesizes the smoke set in the ZeroSpeech 2021 layout under ``root``.

  Returns counts. Raises FileNotFoundError where espeak-ng is missing.
  """
  import shutil  # pylint: disable=g-import-not-at-top

  if shutil.which("espeak-ng") is None:
    raise FileNotFoundError("espeak-ng not found: install it (apt-get install "
                            "espeak-ng) to synthesize the smoke set")
  counts = {}
  for task, table in ((LEXICAL, SMOKE_WORDS), (SYNTACTIC, SMOKE_SENTENCES)):
    folder = os.path.join(root, task, "dev")
    os.makedirs(folder, exist_ok=True)
    rows = []
    for pair_index, (real, fake) in enumerate(table):
      for voice in voices:
        for correct, text in ((1, real), (0, fake)):
          name = f"smoke_{task[:3]}_{pair_index:02d}_{voice}_{correct}"
          path = os.path.join(folder, name + ".wav")
          _espeak(text, voice, path)
          _to_16k(path)
          if task == LEXICAL:
            rows.append({"filename": name, "word": text, "phones": "",
                         "length": len(text), "frequency": 1 if correct else 0,
                         "correct": correct, "id": pair_index,
                         "voice": voice})
          else:
            rows.append({"filename": name, "type": "agreement",
                         "subtype": "subject_verb", "transcription": text,
                         "correct": correct, "id": pair_index,
                         "voice": voice})
    with open(os.path.join(folder, "gold.csv"), "w", newline="") as f:
      writer = csv.DictWriter(f, fieldnames=list(rows[0]))
      writer.writeheader()
      writer.writerows(rows)
    counts[task] = len(rows)
  with open(os.path.join(root, SMOKE_MARKER), "w") as f:
    f.write("SMOKE SET synthesized with espeak-ng by audiolm_t5x "
            "(pipelines/evaluation/lm_scores.py): a check of the scoring "
            "machinery, NOT sWUGGY or sBLIMP; never report its numbers as "
            "those benchmarks.\n")
  return counts


def is_smoke_set(root: str) -> bool:
  return os.path.isfile(os.path.join(root, SMOKE_MARKER))


# --- The command ------------------------------------------------------------------
def evaluate(root: str, *, scorer: SequenceScorer,
             tokenizer: Callable[[np.ndarray], np.ndarray],
             tasks: Sequence[str] = (LEXICAL, SYNTACTIC), split: str = "dev"
             ) -> dict:
  """Scores every pair of the given tasks; returns per-pair rows and summary."""
  smoke = is_smoke_set(root)
  report = {"root": root, "split": split, "smoke_set": smoke, "tasks": {}}
  for task in tasks:
    items = read_gold(root, task, split)
    pairs = make_pairs(items)
    sequences = tokenize_items(items, tokenizer)
    rows = score_pairs(pairs, sequences, scorer)
    report["tasks"][task] = {"summary": summarize(task, rows, smoke=smoke),
                             "pairs": rows}
  return report


def markdown(report: dict) -> str:
  label = " (SMOKE SET: espeak-ng items, not sWUGGY/sBLIMP)" if report[
      "smoke_set"] else ""
  lines = [f"# Language-model scores{label}", "",
           "| model | sWUGGY all | sWUGGY in-vocab | sBLIMP |",
           "|---|---|---|---|"]
  lex = report["tasks"].get(LEXICAL, {}).get("summary", {})
  syn = report["tasks"].get(SYNTACTIC, {}).get("summary", {})

  def f(v):
    return "-" if v is None else f"{v:.1f}"

  for name in ("summed", "normalised"):
    lines.append(
        f"| this checkpoint ({name} log-likelihood){label} | "
        f"{f(lex.get(f'accuracy_{name}'))} | "
        f"{f(lex.get(f'accuracy_{name}_in_vocab'))} | "
        f"{f(syn.get(f'accuracy_{name}'))} |")
  lines += [
      f"| AudioLM (paper, ZeroSpeech 2021 test) | {constants.PAPER_SWUGGY_ALL}"
      f" | {constants.PAPER_SWUGGY_IN_VOCAB} | {constants.PAPER_SBLIMP} |",
      f"| GSLM, HuBERT-100 units (Lakhotia et al., 2021, as cited by the "
      f"paper) | - | {constants.GSLM_SWUGGY_IN_VOCAB} | "
      f"{constants.GSLM_SBLIMP} |",
      "| CPC + LSTM (van Niekerk et al., 2021) | see the paper's Table 4 | | |",
      ""]
  return "\n".join(lines)


def make_parser() -> options_lib.CommandParser:
  p = options_lib.CommandParser(
      prog=options_lib.invocation(MODULE), beam=False,
      description="sWUGGY / sBLIMP-style scores of a stage-1 T5X checkpoint "
      "on the ZeroSpeech 2021 layout, or on the espeak-ng smoke set.")
  p.add_argument("--data_dir", required=True,
                 help="ZeroSpeech 2021 root (lexical/<split>/gold.csv, "
                 "syntactic/<split>/gold.csv); with --make_smoke_set, where "
                 "the smoke set is written first")
  p.add_argument("--make_smoke_set", action="store_true",
                 help="synthesize the espeak-ng smoke set into --data_dir "
                 "before scoring (labelled as a smoke set in every output)")
  p.add_argument("--split", default="dev", help="ZeroSpeech split")
  p.add_argument("--tasks", default="lexical,syntactic",
                 help="comma-separated: lexical, syntactic")
  p.add_argument("--checkpoint", required=True,
                 help="T5X stage-1 checkpoint directory (checkpoint_<step>)")
  p.add_argument("--gin_file", action="append", default=None,
                 help="gin files binding MODEL (relative to the project's gin "
                 "folder), repeatable; default: models/audiolm_decoder.gin "
                 "stages/semantic.gin")
  p.add_argument("--gin", action="append", default=[],
                 help="extra gin binding, repeatable (e.g. VOCAB_SIZE=13440)")
  p.add_argument("--kmeans", required=True,
                 help="semantic codebook .npz used to tokenize the training "
                 "data of the checkpoint")
  p.add_argument("--semantic_backend", default="logmel",
                 help="semantic embedder of that tokenization")
  p.add_argument("--semantic_option", action="append", default=[],
                 metavar="KEY=VALUE", help="option of the semantic backend")
  p.add_argument("--batch_size", type=int, default=16,
                 help="sequences per score_batch call")
  p.add_argument("--output_dir", required=True,
                 help="where lm_scores.json and lm_scores.md go")
  return p


def run(argv: Optional[Sequence[str]] = None) -> dict:
  args, _ = options_lib.parse_args(make_parser(), argv)
  start = time.monotonic()
  with options_lib.user_errors():
    tasks = [t for t in args.tasks.split(",") if t]
    bad = [t for t in tasks if t not in (LEXICAL, SYNTACTIC)]
    if bad:
      raise ValueError(f"--tasks: unknown {bad}; use lexical, syntactic")
    if not os.path.isdir(args.checkpoint):
      raise FileNotFoundError(f"--checkpoint={args.checkpoint} is not a "
                              "directory (a T5X checkpoint_<step> folder)")
    if args.make_smoke_set:
      counts = write_smoke_set(args.data_dir)
      print(f"smoke set written to {args.data_dir}: {counts}")
    for t in tasks:
      read_gold(args.data_dir, t, args.split)  # fails early on a bad layout
    tokenizer = SemanticTokenizer(
        args.semantic_backend, args.kmeans,
        options_lib.parse_options(args.semantic_option))
    scorer = T5XScorer(
        args.checkpoint, gin_files=args.gin_file or (
            "models/audiolm_decoder.gin", "stages/semantic.gin"),
        gin_bindings=args.gin, batch_size=args.batch_size)
  report = evaluate(args.data_dir, scorer=scorer, tokenizer=tokenizer,
                    tasks=tasks, split=args.split)
  report["checkpoint"] = args.checkpoint
  report["tokenizer"] = tokenizer.info
  os.makedirs(args.output_dir, exist_ok=True)
  with open(os.path.join(args.output_dir, "lm_scores.json"), "w") as f:
    json.dump(report, f, indent=1, sort_keys=True)
  with open(os.path.join(args.output_dir, "lm_scores.md"), "w") as f:
    f.write(markdown(report))
  for task, t in report["tasks"].items():
    s = t["summary"]
    print(f"{task}{' (smoke set)' if s['smoke_set'] else ''}: {s['pairs']} "
          f"pairs, accuracy summed {s['accuracy_summed']:.1f} %, "
          f"normalised {s['accuracy_normalised']:.1f} %")
  print(f"done in {time.monotonic() - start:.1f} s; report: "
        f"{os.path.join(args.output_dir, 'lm_scores.md')}")
  return report


def main(argv: Optional[Sequence[str]] = None) -> int:
  """The command's entry point: exit status 0, or 2 for a user error."""
  return options_lib.main(run, MODULE, argv)
