r"""Evaluation of generated continuations: a Beam job over the generation output.

Reads the generation job's folder::

  <generated>/generation.json
  <generated>/<prompt_id>/sample-<k>.wav   16 kHz mono, prompt + continuation
  <generated>/<prompt_id>/sample-<k>.npz   semantic [Ts], coarse, fine, codes
  <generated>/<prompt_id>/sample-<k>.json  prompt_id, prompt_path, speaker_id,
                                           transcript, mode, prompt_seconds, ...

and writes ``<output_dir>/evaluation.json`` (per sample and summary),
``evaluation.md`` (a table with the paper's figures beside) and PNG plots.

Per sample (a DoFn that loads the recogniser and the speaker embedder once
per worker):

* **Intelligibility** (``--asr``): the recogniser's text of the
  continuation (audio after ``prompt_seconds``) and of the whole sample. For
  ``mode == "resynthesis"`` (real semantic tokens -> stages 2 and 3, the
  paper's ASR setting) the reference is the transcript and the hypothesis is
  the whole sample, since the semantic tokens carry the whole utterance; the
  original audio (``prompt_path``) is transcribed too (the paper's "original"
  row). For ``continuation`` / ``unconditional`` samples the content is new,
  so there is no reference: the text is reported, not a WER.
* **Speaker similarity** (``--speaker_embedder``): cosine similarity of the
  prompt's and the continuation's embeddings; the control is the similarity
  of the prompt with the continuations of samples of *other* speakers
  (computed after all samples are in).
* **Acoustic consistency**: :mod:`audiolm_t5x.pipelines.evaluation.acoustic`
  (level, silence ratio, repetition of the prompt), plus the longest run of
  prompt semantic tokens copied into the continuation from the ``.npz``.

Samples that cannot be read or evaluated go to ``dead_letter.jsonl`` with the
reason; the job never stops on one bad sample.
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
import time
from typing import Iterable, Optional, Sequence

import apache_beam as beam
import numpy as np

from audiolm_t5x import constants
from audiolm_t5x.pipelines import options as options_lib
from audiolm_t5x.pipelines.evaluation import acoustic
from audiolm_t5x.pipelines.evaluation import asr as asr_lib
from audiolm_t5x.pipelines.evaluation import speaker as speaker_lib

NAMESPACE = "evaluate_continuations"
MODULE = "audiolm_t5x.pipelines.evaluate_continuations"
DEAD = "dead"
MODES = ("continuation", "unconditional", "resynthesis")
REQUIRED_KEYS = ("prompt_id", "speaker_id", "mode", "prompt_seconds",
                 "sample_rate", "sample_index")


class UserError(ValueError):
  """A problem with the command's inputs; the message says what to change."""


# --- Reading the generation layout ---------------------------------------------
def list_samples(generated_dir: str) -> list[str]:
  """Sorted ``sample-<k>.json`` paths; raises UserError if not the layout."""
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top

  if not FileSystems.exists(posixpath.join(generated_dir, "generation.json")):
    raise UserError(
        f"--generated={generated_dir} has no generation.json: point it at the "
        "output folder of the generation job (<dir>/<prompt_id>/sample-<k>.*)")
  pattern = posixpath.join(generated_dir, "*", "sample-*.json")
  paths = sorted(m.path for r in FileSystems.match([pattern])
                 for m in r.metadata_list)
  if not paths:
    raise UserError(f"--generated={generated_dir} has no "
                    "<prompt_id>/sample-<k>.json files")
  return paths


def read_bytes(path: str) -> bytes:
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top

  with FileSystems.open(path) as f:
    return f.read()


@dataclasses.dataclass
class Sample:
  """One generated sample: metadata, audio and tokens."""

  json_path: str
  meta: dict
  waveform: np.ndarray
  tokens: Optional[dict]

  @property
  def key(self) -> str:
    return f"{self.meta['prompt_id']}/sample-{self.meta['sample_index']}"

  @property
  def prompt_samples(self) -> int:
    return int(round(float(self.meta["prompt_seconds"]) *
                     constants.SAMPLE_RATE))

  @property
  def prompt(self) -> np.ndarray:
    return self.waveform[:self.prompt_samples]

  @property
  def continuation(self) -> np.ndarray:
    return self.waveform[self.prompt_samples:]


def load_sample(json_path: str) -> Sample:
  """Reads a sample's json, wav and (if present) npz; ValueError if unusable."""
  import io  # pylint: disable=g-import-not-at-top

  from audiolm_t5x.pipelines import audio  # pylint: disable=g-import-not-at-top

  meta = json.loads(read_bytes(json_path))
  missing = [k for k in REQUIRED_KEYS if k not in meta]
  if missing:
    raise ValueError(f"{json_path}: missing keys {missing}")
  if meta["mode"] not in MODES:
    raise ValueError(f"{json_path}: mode {meta['mode']!r} is not one of "
                     f"{MODES}")
  stem = json_path[:-len(".json")]
  waveform = audio.decode(read_bytes(stem + ".wav"))
  tokens = None
  try:
    with np.load(io.BytesIO(read_bytes(stem + ".npz"))) as z:
      tokens = {k: z[k] for k in z.files}
  except (OSError, FileNotFoundError):
    tokens = None
  sample = Sample(json_path, meta, waveform, tokens)
  if len(sample.continuation) < constants.SAMPLE_RATE // 2:
    raise ValueError(
        f"{json_path}: continuation is {len(sample.continuation)} samples "
        f"(< 0.5 s) after prompt_seconds={meta['prompt_seconds']}")
  return sample


# --- Per-sample evaluation -------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class EvalSettings:
  """Picklable settings of the per-sample step."""

  asr: str = "pocketsphinx"
  asr_model: str = ""
  speaker_embedder: str = "resemblyzer"
  speaker_model: str = ""
  transcribe_originals: bool = True

  def recognizer(self):
    return asr_lib.make_recognizer(self.asr, model=self.asr_model or None)

  def embedder(self):
    return speaker_lib.make_embedder(self.speaker_embedder,
                                     model=self.speaker_model or None)


def evaluate_sample(sample: Sample, *, recognizer=None, embedder=None,
                    transcribe_originals: bool = True) -> dict:
  """All per-sample metrics of one sample (a JSON-able dict)."""
  from audiolm_t5x.pipelines import audio  # pylint: disable=g-import-not-at-top

  m = sample.meta
  out = {"key": sample.key, "prompt_id": m["prompt_id"],
         "sample_index": int(m["sample_index"]),
         "speaker_id": str(m["speaker_id"]), "mode": m["mode"],
         "transcript": m.get("transcript", ""),
         "prompt_seconds": float(m["prompt_seconds"]),
         "seconds": len(sample.waveform) / constants.SAMPLE_RATE}
  out.update(acoustic.consistency(sample.prompt, sample.continuation))
  if sample.tokens is not None and "semantic" in sample.tokens:
    sem = np.asarray(sample.tokens["semantic"]).ravel()
    n = int(round(out["prompt_seconds"] * constants.SEMANTIC_RATE_HZ))
    out["token_copy_seconds"] = acoustic.longest_token_copy_seconds(
        sem[:n], sem[n:])
  if recognizer is not None:
    out["asr_continuation"] = recognizer.transcribe(sample.continuation)
    out["asr_whole"] = recognizer.transcribe(sample.waveform)
    if m["mode"] == "resynthesis" and out["transcript"]:
      rates = asr_lib.error_rates([out["transcript"]], [out["asr_whole"]])
      out["wer"], out["cer"] = rates["wer"], rates["cer"]
      if transcribe_originals and m.get("prompt_path"):
        original = audio.decode(read_bytes(m["prompt_path"]))
        out["asr_original"] = recognizer.transcribe(original)
        rates = asr_lib.error_rates([out["transcript"]], [out["asr_original"]])
        out["wer_original"], out["cer_original"] = rates["wer"], rates["cer"]
  if embedder is not None:
    p_emb = embedder.embed(sample.prompt)
    c_emb = embedder.embed(sample.continuation)
    out["speaker_similarity"] = speaker_lib.cosine(p_emb, c_emb)
    out["prompt_embedding"] = [float(x) for x in p_emb]
    out["continuation_embedding"] = [float(x) for x in c_emb]
  return out


class EvaluateSampleFn(beam.DoFn):
  """sample json path -> per-sample metrics; failures to the DEAD output."""

  def __init__(self, settings: EvalSettings):
    self._settings = settings
    self._evaluated = beam.metrics.Metrics.counter(NAMESPACE, "evaluated")
    self._failed = beam.metrics.Metrics.counter(NAMESPACE, "failed")
    self._ms = beam.metrics.Metrics.counter(NAMESPACE, "audio_ms")

  def setup(self):
    self._recognizer = self._settings.recognizer()
    self._embedder = self._settings.embedder()
    for model in (self._recognizer, self._embedder):
      if model is not None:
        model.load()

  def process(self, json_path: str):
    try:
      sample = load_sample(json_path)
      result = evaluate_sample(
          sample, recognizer=self._recognizer, embedder=self._embedder,
          transcribe_originals=self._settings.transcribe_originals)
    except Exception as e:  # pylint: disable=broad-except
      self._failed.inc()
      yield beam.pvalue.TaggedOutput(DEAD, {
          "path": json_path, "reason": f"{type(e).__name__}: {e}"})
      return
    self._evaluated.inc()
    self._ms.inc(int(result["seconds"] * 1000))
    yield result


# --- Summary over all samples ----------------------------------------------------
def _mean(values: Iterable) -> Optional[float]:
  vals = [float(v) for v in values if v is not None and np.isfinite(v)]
  return float(np.mean(vals)) if vals else None


def add_speaker_control(results: list[dict]) -> None:
  """Per sample: mean similarity of its prompt with other speakers' output."""
  with_emb = [r for r in results if "prompt_embedding" in r]
  for r in with_emb:
    others = [o for o in with_emb if o["speaker_id"] != r["speaker_id"]]
    if others:
      r["speaker_similarity_other"] = _mean(
          speaker_lib.cosine(r["prompt_embedding"], o["continuation_embedding"])
          for o in others)


def summarize(results: list[dict], dead: list[dict]) -> dict:
  """Means per mode and overall; corpus-level WER / CER for resynthesis."""
  results = sorted(results, key=lambda r: r["key"])
  add_speaker_control(results)
  summary = {"samples": len(results), "failed": len(dead), "by_mode": {}}
  for mode in sorted({r["mode"] for r in results}):
    rs = [r for r in results if r["mode"] == mode]
    s = {"samples": len(rs),
         "audio_hours": sum(r["seconds"] for r in rs) / 3600.0}
    for key in ("speaker_similarity", "speaker_similarity_other",
                "level_difference_db", "prompt_silence_ratio",
                "continuation_silence_ratio", "repeated_fraction",
                "token_copy_seconds"):
      s[key] = _mean(r.get(key) for r in rs)
    s["repeats_prompt"] = sum(bool(r.get("repeats_prompt")) for r in rs)
    scored = [r for r in rs if "asr_whole" in r and r.get("transcript")]
    if mode == "resynthesis" and scored:
      refs = [r["transcript"] for r in scored]
      s.update({f"asr_{k}": v for k, v in asr_lib.error_rates(
          refs, [r["asr_whole"] for r in scored]).items()})
      orig = [r for r in scored if "asr_original" in r]
      if orig:
        s.update({f"asr_original_{k}": v for k, v in asr_lib.error_rates(
            [r["transcript"] for r in orig],
            [r["asr_original"] for r in orig]).items()})
    summary["by_mode"][mode] = s
  for r in results:  # embeddings stay out of the report
    r.pop("prompt_embedding", None)
    r.pop("continuation_embedding", None)
  return {"summary": summary, "samples": results, "dead_letters": dead}


def _fmt(value, pct: bool = False) -> str:
  if value is None:
    return "-"
  if isinstance(value, bool) or isinstance(value, int):
    return str(value)
  return f"{100 * value:.1f}" if pct else f"{value:.3f}"


def markdown(report: dict, settings: dict) -> str:
  """The report's table, the paper's ASR figures beside ours."""
  lines = ["# Continuation evaluation", "",
           f"Recogniser: {settings.get('asr')}; speaker embedder: "
           f"{settings.get('speaker_embedder')}.", "",
           "| mode | samples | speaker sim. | sim. other speakers | level diff. "
           "(dB) | silence prompt / cont. | repeated fraction | repeats | "
           "WER % | CER % | WER % original | CER % original |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for mode, s in report["summary"]["by_mode"].items():
    lines.append(
        f"| {mode} | {s['samples']} | {_fmt(s['speaker_similarity'])} | "
        f"{_fmt(s['speaker_similarity_other'])} | "
        f"{_fmt(s['level_difference_db'])} | "
        f"{_fmt(s['prompt_silence_ratio'])} / "
        f"{_fmt(s['continuation_silence_ratio'])} | "
        f"{_fmt(s['repeated_fraction'])} | {s['repeats_prompt']} | "
        f"{_fmt(s.get('asr_wer'), True)} | {_fmt(s.get('asr_cer'), True)} | "
        f"{_fmt(s.get('asr_original_wer'), True)} | "
        f"{_fmt(s.get('asr_original_cer'), True)} |")
  lines.append(
      f"| AudioLM paper (resynthesis, test-clean, Conformer ASR) | | | | | | "
      f"| | {constants.PAPER_ASR_WER} | {constants.PAPER_ASR_CER} | "
      f"{constants.PAPER_ASR_WER_ORIGINAL} | "
      f"{constants.PAPER_ASR_CER_ORIGINAL} |")
  lines += ["", f"Failed samples: {report['summary']['failed']} (see "
            "dead_letter.jsonl).", ""]
  return "\n".join(lines)


def plot(report: dict, output_dir: str) -> list[str]:
  """PNG plots: speaker similarity (same vs other), level and silence."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  rs = report["samples"]
  written = []
  sims = [r["speaker_similarity"] for r in rs if "speaker_similarity" in r]
  other = [r["speaker_similarity_other"] for r in rs
           if r.get("speaker_similarity_other") is not None]
  if sims:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    bins = np.linspace(min(sims + other + [0.0]), 1.0, 21)
    ax.hist(sims, bins=bins, alpha=0.7, label="prompt vs its continuation")
    if other:
      ax.hist(other, bins=bins, alpha=0.7,
              label="prompt vs other speakers (control)")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("samples")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(output_dir, "speaker_similarity.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
  ld = [r["level_difference_db"] for r in rs
        if r.get("level_difference_db") is not None]
  axes[0].hist(ld, bins=20)
  axes[0].set_xlabel("continuation - prompt level (dB)")
  axes[0].set_ylabel("samples")
  axes[1].scatter([r["prompt_silence_ratio"] for r in rs],
                  [r["continuation_silence_ratio"] for r in rs], s=12)
  axes[1].plot([0, 1], [0, 1], "k:", lw=1)
  axes[1].set_xlabel("silence ratio, prompt")
  axes[1].set_ylabel("silence ratio, continuation")
  fig.tight_layout()
  path = os.path.join(output_dir, "acoustic_consistency.png")
  fig.savefig(path, dpi=100)
  plt.close(fig)
  written.append(path)
  return written


def write_report(results: list[dict], dead: list[dict], *, output_dir: str,
                 settings: dict) -> dict:
  """Writes evaluation.json, evaluation.md, dead_letter.jsonl and plots."""
  os.makedirs(output_dir, exist_ok=True)
  report = summarize(results, dead)
  report["settings"] = settings
  report["plots"] = [os.path.basename(p) for p in plot(report, output_dir)]
  with open(os.path.join(output_dir, "evaluation.json"), "w") as f:
    json.dump(report, f, indent=1, sort_keys=True)
  with open(os.path.join(output_dir, "evaluation.md"), "w") as f:
    f.write(markdown(report, settings))
  with open(os.path.join(output_dir, "dead_letter.jsonl"), "w") as f:
    for d in sorted(dead, key=lambda d: d["path"]):
      f.write(json.dumps(d, sort_keys=True) + "\n")
  return report


class EvaluateContinuations(beam.PTransform):
  """Sample json paths -> the report dict (written to ``output_dir``)."""

  def __init__(self, *, settings: EvalSettings, output_dir: str,
               report_settings: dict):
    super().__init__()
    self._settings = settings
    self._output_dir = output_dir
    self._report_settings = report_settings

  def expand(self, paths):
    results, dead = (
        paths
        | "Reshuffle" >> beam.Reshuffle()
        | "Evaluate" >> beam.ParDo(EvaluateSampleFn(self._settings))
        .with_outputs(DEAD, main="results"))
    all_results = results | "AllResults" >> beam.combiners.ToList()
    all_dead = dead | "AllDead" >> beam.combiners.ToList()
    output_dir, report_settings = self._output_dir, self._report_settings
    return all_results | "WriteReport" >> beam.Map(
        lambda rs, ds: write_report(rs, ds, output_dir=output_dir,
                                    settings=report_settings),
        ds=beam.pvalue.AsSingleton(all_dead))


# --- The command -----------------------------------------------------------------
def make_parser():
  p = options_lib.CommandParser(
      prog=options_lib.invocation(MODULE),
      description="Evaluate generated continuations (intelligibility, speaker "
      "similarity, acoustic consistency); a Beam job, DirectRunner by default. "
      "Other flags are Beam pipeline options.")
  p.add_argument("--generated", required=True,
                 help="output folder of the generation job "
                 "(generation.json, <prompt_id>/sample-<k>.{wav,npz,json})")
  p.add_argument("--output_dir", default=None,
                 help="where evaluation.json / .md and the PNG plots go "
                 "(default: <generated>/evaluation)")
  p.add_argument("--asr", default="pocketsphinx", choices=asr_lib.RECOGNIZERS,
                 help="speech recogniser for WER / CER")
  p.add_argument("--asr_model", default="",
                 help="with --asr=transformers: a local save_pretrained ASR "
                 "checkpoint directory")
  p.add_argument("--speaker_embedder", default="resemblyzer",
                 choices=speaker_lib.EMBEDDERS,
                 help="speaker-embedding model for speaker similarity")
  p.add_argument("--speaker_model", default="",
                 help="with --speaker_embedder=transformers: a local x-vector "
                 "checkpoint directory")
  p.add_argument("--no_originals", action="store_true",
                 help="do not transcribe the original audio (prompt_path) of "
                 "resynthesis samples")
  return p


def run(argv: Optional[Sequence[str]] = None) -> dict:
  """Parses flags, runs the job, prints a summary; returns the report.

  Raises:
    UserError: a flag or input to change (before any compute).
  """
  args, beam_args = options_lib.parse_args(make_parser(), argv)
  with options_lib.user_errors():
    opts = options_lib.pipeline_options(beam_args, verbose=args.verbose)
    settings = EvalSettings(
        asr=args.asr, asr_model=args.asr_model,
        speaker_embedder=args.speaker_embedder,
        speaker_model=args.speaker_model,
        transcribe_originals=not args.no_originals)
    settings.recognizer(), settings.embedder()  # flag errors, before compute
    paths = list_samples(args.generated)
  output_dir = args.output_dir or os.path.join(args.generated, "evaluation")
  report_settings = dict(dataclasses.asdict(settings),
                         generated=args.generated)
  start = time.monotonic()
  print(f"evaluating {len(paths)} samples from {args.generated}", flush=True)
  with options_lib.make_pipeline(opts) as p:
    _ = (p | "Samples" >> beam.Create(paths)
         | "EvaluateContinuations" >> EvaluateContinuations(
             settings=settings, output_dir=output_dir,
             report_settings=report_settings))
  with open(os.path.join(output_dir, "evaluation.json")) as f:
    report = json.load(f)
  counters = options_lib.counters(p.result, NAMESPACE)
  report["counters"] = counters
  print(f"counters: {json.dumps(counters, sort_keys=True)}")
  s = report["summary"]
  print(f"evaluated {s['samples']} samples ({s['failed']} failed) in "
        f"{time.monotonic() - start:.1f} s")
  for mode, m in s["by_mode"].items():
    print(f"  {mode}: speaker similarity {_fmt(m['speaker_similarity'])} "
          f"(other speakers {_fmt(m['speaker_similarity_other'])}), "
          f"WER {_fmt(m.get('asr_wer'), True)} %, repeats "
          f"{m['repeats_prompt']}")
  print(f"report: {os.path.join(output_dir, 'evaluation.md')} (+ "
        f"evaluation.json, {', '.join(report['plots'])})")
  return report


def main(argv: Optional[Sequence[str]] = None) -> int:
  """The command's entry point: exit status 0, or 2 for a user error."""
  return options_lib.main(run, MODULE, argv)
