r"""Generation as a Beam job: prompts in, continuations (WAV + tokens) out.

Locally (DirectRunner, the default)::

  python -m pipelines.generate --prompts=/data/LibriSpeech/test-clean \
    --output_dir=/data/continuations --kmeans=/data/kmeans.npz \
    --lyra_dir=/models/lyra --acoustic_option=levels=24 \
    --acoustic_option=pack=2 \
    --semantic_checkpoint=/ckpt/semantic/checkpoint_1000000 \
    --coarse_checkpoint=/ckpt/coarse/checkpoint_1000000 \
    --fine_checkpoint=/ckpt/fine/checkpoint_1000000 \
    --prompt_seconds=3 --seconds=10 --num_samples=3 --seed=0

On Dataflow (any Beam option passes through unchanged; GPU workers through a
container image with T5X)::

  python -m pipelines.generate ... --runner=DataflowRunner --project=P \
    --region=R --temp_location=gs://B/tmp --sdk_container_image=IMAGE

Steps: list the prompts (sorted) -> tokenize each audio prompt (tokenizers
loaded once per worker; too-short or unreadable prompts go to a "skipped"
output with the reason) -> group into fixed batches by prompt index (so the
batches, and with them the samples, are the same on every run) -> generate
each batch through the stages (models loaded once per worker in ``setup``)
-> write each sample (:mod:`.outputs`) -> ``generation.json``.

Three stages for speech; two for a codec layout whose levels stage 2 all
predicts (the piano: ``--semantic_gin=infer/piano_semantic.gin
--coarse_gin=infer/piano_acoustic.gin``, no ``--fine_checkpoint``). Which
chain runs follows from the layout and the task ``--coarse_gin`` samples
(:func:`_coarse_levels`), never from a flag name.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np

from audiolm_t5x import constants
from audiolm_t5x import contract
from audiolm_t5x.pipelines import options as options_lib
from audiolm_t5x.pipelines import tokenize_audio
from audiolm_t5x.pipelines.generation import chain as chain_lib
from audiolm_t5x.pipelines.generation import outputs
from audiolm_t5x.pipelines.generation import prompts as prompts_lib
from audiolm_t5x.pipelines.generation import stage_model as stage_model_lib
from audiolm_t5x.tasks import vocabulary as vocabulary_lib

NAMESPACE = "audiolm_generate"
SKIPPED = "skipped"
STAGES = ("semantic", "coarse", "fine")
DEFAULT_GIN = {s: f"infer/{s}.gin" for s in STAGES}
DEFAULT_TEMPERATURE = {"semantic": constants.SEMANTIC_TEMPERATURE,
                       "coarse": constants.COARSE_TEMPERATURE,
                       "fine": constants.FINE_TEMPERATURE}
#: ``--<stage>_checkpoint=stand-in:<seed>`` selects the untrained stand-in.
STAND_IN = "stand-in"


def _counter(name: str):
  return beam.metrics.Metrics.counter(NAMESPACE, name)


@dataclasses.dataclass(frozen=True)
class StageSpec:
  """Picklable description of one stage model (built on workers)."""

  stage: str
  checkpoint: str
  gin_files: Tuple[str, ...] = ()
  gin_bindings: Tuple[str, ...] = ()
  batch_size: int = 16

  @property
  def is_stand_in(self) -> bool:
    return self.checkpoint.startswith(STAND_IN)

  def build(self, layout: vocabulary_lib.VocabularyLayout
            ) -> stage_model_lib.StageModel:
    if self.is_stand_in:
      seed = int(self.checkpoint.partition(":")[2] or 0)
      return stage_model_lib.StandInModel(
          layout.padded_size, model_seed=seed + STAGES.index(self.stage),
          bidirectional_inputs=self.stage != "semantic",
          name=f"{STAND_IN} {self.stage}")
    from audiolm_t5x.pipelines.generation import t5x_model  # pylint: disable=g-import-not-at-top
    return t5x_model.T5XStageModel.from_checkpoint(
        self.checkpoint, gin_files=self.gin_files,
        gin_bindings=self.gin_bindings, batch_size=self.batch_size)


@dataclasses.dataclass(frozen=True)
class JobSpec:
  """Everything a worker needs (picklable)."""

  mode: str
  settings: chain_lib.GenerationSettings
  stages: Tuple[StageSpec, ...]
  tokenizers: tokenize_audio.TokenizerSpec
  layout: vocabulary_lib.VocabularyLayout
  coarse_levels: int
  output_dir: str
  codec_info: Tuple[Tuple[str, Any], ...] = ()

  @property
  def checkpoints(self) -> Dict[str, str]:
    return {s.stage: s.checkpoint for s in self.stages}


# --- Beam steps -----------------------------------------------------------------
class PreparePromptFn(beam.DoFn):
  """(index, source) -> (index, Prompt); too short / unreadable -> SKIPPED.

  A source is an audio path (tokenized here), a serialized token record, or
  None (an unconditional row).
  """

  def __init__(self, spec: JobSpec, dataset_dir: str = ""):
    self._spec = spec
    self._dataset_dir = dataset_dir
    self._prepared = _counter("prompts_prepared")
    self._skipped = _counter("prompts_skipped")

  def setup(self):
    self._tokenizer = prompts_lib.PromptTokenizer(self._spec.tokenizers)

  def process(self, element):
    index, source = element
    s = self._spec
    if s.mode == chain_lib.UNCONDITIONAL:
      item = chain_lib.unconditional_prompt(
          index, acoustic_levels=s.layout.acoustic_levels)
    elif isinstance(source, bytes):
      record = contract.TokenRecord.from_example_bytes(
          source, acoustic_levels=s.layout.acoustic_levels)
      item = prompts_lib.prompt_from_record(
          record, mode=s.mode, settings=s.settings,
          dataset_dir=self._dataset_dir)
    else:
      try:
        item = prompts_lib.prompt_from_audio(
            source, self._tokenizer, mode=s.mode, settings=s.settings)
      except Exception as e:  # pylint: disable=broad-except
        item = prompts_lib.Skipped(prompts_lib.prompt_id_of(source), source,
                                   f"tokenize: {type(e).__name__}: {e}")
    if isinstance(item, prompts_lib.Skipped):
      self._skipped.inc()
      yield beam.pvalue.TaggedOutput(SKIPPED, item.to_dict())
      return
    self._prepared.inc()
    yield index, item


class GenerateBatchFn(beam.DoFn):
  """(batch number, [(index, Prompt)]) -> written samples' metadata.

  Loads the three stages and the codec once per worker (``setup``).
  """

  def __init__(self, spec: JobSpec):
    self._spec = spec
    self._c = {n: _counter(n) for n in ("samples_written", "batches",
                                        "audio_seconds_x1000", "failed")}

  def setup(self):
    s = self._spec
    models = {st.stage: st.build(s.layout) for st in s.stages}
    tok = prompts_lib.PromptTokenizer(s.tokenizers).load()
    self._generator = chain_lib.Generator(
        semantic_model=models["semantic"], coarse_model=models["coarse"],
        fine_model=models.get("fine"), layout=s.layout,
        coarse_levels=s.coarse_levels, codec=tok.acoustic)

  def process(self, element):
    batch_key, items = element
    items = sorted(items, key=lambda x: x[0])
    s = self._spec
    prompts = [p for _, p in items]
    start = time.monotonic()
    try:
      samples = self._generator.generate(prompts, mode=s.mode,
                                         settings=s.settings)
    except chain_lib.GenerationError as e:
      self._c["failed"].inc(len(prompts))
      for p in prompts:
        yield beam.pvalue.TaggedOutput(SKIPPED, prompts_lib.Skipped(
            p.prompt_id, p.path, f"generate: {e}").to_dict())
      return
    wall = time.monotonic() - start
    self._c["batches"].inc()
    for sample in samples:
      outputs.write_sample(s.output_dir, sample, settings=s.settings,
                           checkpoints=s.checkpoints,
                           codec=dict(s.codec_info))
      self._c["samples_written"].inc()
      self._c["audio_seconds_x1000"].inc(int(1000 * s.settings.seconds))
      yield {"prompt_id": sample.prompt_id,
             "sample_index": sample.sample_index,
             "batch": batch_key, "batch_wall_seconds": wall}


class GenerateContinuations(beam.PTransform):
  """(index, source) -> (written samples, skipped prompts)."""

  def __init__(self, *, spec: JobSpec, batch_size: int, dataset_dir: str = ""):
    super().__init__()
    self._spec = spec
    self._batch_size = batch_size
    self._dataset_dir = dataset_dir

  def expand(self, sources):
    n = self._batch_size
    prepared = (
        sources
        | "Spread" >> beam.Reshuffle()
        | "Prepare" >> beam.ParDo(PreparePromptFn(
            self._spec, self._dataset_dir)).with_outputs(SKIPPED,
                                                         main="prompts"))
    generated = (
        prepared.prompts
        | "FixedBatches" >> beam.Map(lambda kv: (kv[0] // n, kv))
        | "Group" >> beam.GroupByKey()
        | "Generate" >> beam.ParDo(GenerateBatchFn(self._spec)).with_outputs(
            SKIPPED, main="written"))
    skipped = ((prepared[SKIPPED], generated[SKIPPED])
               | "AllSkipped" >> beam.Flatten())
    return generated.written, skipped


class _WriteSummaryFn(beam.DoFn):

  def __init__(self, output_dir: str, summary: dict):
    self._output_dir = output_dir
    self._summary = summary

  def process(self, unused, written, skipped):
    summary = dict(self._summary)
    summary["counts"] = {
        "prompts": self._summary["counts"]["prompts"],
        "prompts_generated": len({w["prompt_id"] for w in written}),
        "prompts_skipped": len(skipped),
        "samples_written": len(written),
        "audio_seconds": len(written) * self._summary["settings"]["seconds"],
    }
    summary["skipped"] = sorted(skipped, key=lambda d: d["prompt_id"])
    walls = {w["batch"]: w["batch_wall_seconds"] for w in written}
    summary["generation_wall_seconds"] = round(sum(walls.values()), 3)
    outputs.write_summary(self._output_dir, summary)
    yield summary


# --- launcher ---------------------------------------------------------------------
MODULE = "audiolm_t5x.pipelines.generate"


def make_parser() -> options_lib.CommandParser:
  p = options_lib.CommandParser(
      prog=options_lib.invocation(MODULE),
      description=("Generate AudioLM continuations (or unconditional samples, "
                   "or acoustic resyntheses) with the trained T5X stages "
                   "(speech: three; piano: two, stage 2 predicting all "
                   "levels); a Beam job (DirectRunner unless --runner is "
                   "given)."))
  p.add_argument("--prompts", default="",
                 help="a folder of audio files (recursive), comma-separated "
                 "audio files, or a token dataset folder (the tokenization "
                 "job's output, with dataset_info.json); not for "
                 "--mode=unconditional")
  p.add_argument("--output_dir", required=True,
                 help="where <prompt_id>/sample-<k>.{wav,npz,json} and "
                 "generation.json go (any Beam filesystem)")
  p.add_argument("--mode", default=chain_lib.CONTINUATION,
                 choices=chain_lib.MODES,
                 help="continuation of prompts; unconditional (no prompt); "
                 "resynthesis (real semantic tokens -> stages 2 and 3)")
  for s in STAGES:
    p.add_argument(f"--{s}_checkpoint", required=s != "fine",
                   default="" if s == "fine" else None,
                   help=f"T5X checkpoint directory of stage "
                   f"{STAGES.index(s) + 1} ({s}), e.g. .../checkpoint_N; "
                   f"'{STAND_IN}:SEED' runs an untrained stand-in (plumbing "
                   "tests only)" + (
                       "; required exactly when the codec layout has levels "
                       "left after those the --coarse_gin's task predicts "
                       "(speech: Q > 4), and refused otherwise (the piano's "
                       "acoustic stage predicts all levels)"
                       if s == "fine" else
                       "; the piano's acoustic stage (--coarse_gin="
                       "infer/piano_acoustic.gin) goes here"
                       if s == "coarse" else ""))
    p.add_argument(f"--{s}_gin", default=DEFAULT_GIN[s],
                   help=f"the {s} stage's gin file (relative to the project's "
                   "t5x_configs or a path); it names the model and network")
  p.add_argument("--gin_file", action="append", default=[],
                 help="extra gin file for all three stages, after the stage "
                 "gin (e.g. models/tiny.gin); repeatable")
  p.add_argument("--gin", action="append", default=[], dest="gin_bindings",
                 metavar="BINDING",
                 help="gin binding for all three stages, repeatable")
  p.add_argument("--prompt_seconds", type=float,
                 default=constants.PROMPT_SECONDS,
                 help="prompt length (a multiple of 0.04 s); continuation "
                 "and resynthesis force the prompt's acoustic frames; 0 in "
                 "resynthesis forces none")
  p.add_argument("--seconds", type=float,
                 default=constants.CONTINUATION_SECONDS,
                 help="length of each output, prompt included")
  p.add_argument("--num_samples", type=int, default=1,
                 help="samples per prompt (unconditional: number of samples)")
  p.add_argument("--seed", type=int, default=0, help="sampling seed")
  for s in STAGES:
    p.add_argument(f"--{s}_temperature", type=float, default=None,
                   help=f"stage {STAGES.index(s) + 1} temperature (default: "
                   f"the stage gin's TEMPERATURE, the paper's "
                   f"{DEFAULT_TEMPERATURE[s]})")
  p.add_argument("--top_k", type=int, default=None,
                 help="top-k truncation for all stages, 0 = off (default: "
                 "decoding.temperature_sample.topk of the gins)")
  p.add_argument("--top_p", type=float, default=0.0,
                 help="top-p (nucleus) truncation for all stages, 0 = off")
  p.add_argument("--fine_window_seconds", type=float,
                 default=constants.FINE_CROP_SECONDS,
                 help="stage 3 window length (its training crop)")
  p.add_argument("--batch_size", type=int, default=8,
                 help="prompts per generation batch (x num_samples rows)")
  p.add_argument("--split", default="",
                 help="token dataset prompts: the split to read (default all)")
  p.add_argument("--kmeans", default="",
                 help="semantic codebook .npz (pipelines.fit_kmeans) used for "
                 "the training tokens; needed for audio prompts")
  options_lib.add_tokenizer_flags(p)
  return p


UserError = options_lib.UserError


def _gin_defaults(spec: StageSpec) -> Dict[str, Any]:
  if spec.is_stand_in:
    return {"temperature": DEFAULT_TEMPERATURE[spec.stage], "top_k": 0}
  from audiolm_t5x.pipelines.generation import t5x_model  # pylint: disable=g-import-not-at-top
  parsed = t5x_model.parse_stage_gin(spec.gin_files, spec.gin_bindings,
                                     checkpoint=spec.checkpoint)
  return {"temperature": parsed["temperature"], "top_k": parsed["top_k"]}


def _check_checkpoint(path: str, stage: str) -> None:
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
  if path.startswith(STAND_IN):
    return
  if not FileSystems.exists(path):
    raise UserError(f"--{stage}_checkpoint: {path} does not exist (expected a "
                    "T5X checkpoint directory such as MODEL_DIR/checkpoint_N)")


def _stage_task(stage: str, gin_files: Sequence[str],
                bindings: Sequence[str]) -> Tuple[str, str, str]:
  """(task, corpus, task stage) that a stage's gin files sample."""
  from audiolm_t5x import t5x_configs  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.tasks import audiolm  # pylint: disable=g-import-not-at-top
  task = t5x_configs.macro_value(gin_files, "MIXTURE_OR_TASK_NAME", bindings)
  if task not in audiolm.TASK_STAGES:
    raise UserError(
        f"--{stage}_gin: {gin_files[0]} names task {task!r} "
        "(MIXTURE_OR_TASK_NAME); expected one of the project's tasks: "
        f"{', '.join(sorted(audiolm.TASK_STAGES))}")
  return (task,) + tuple(audiolm.TASK_STAGES[task])


def _coarse_levels(args: argparse.Namespace, stage_gins: Dict[str, Tuple[str,
                                                                         ...]],
                   layout: vocabulary_lib.VocabularyLayout) -> int:
  """Q', the levels stage 2 predicts: from its gin's task and the layout.

  A layout with levels beyond Q' needs the fine stage's checkpoint; one
  without (the piano's acoustic stage predicts all Q) refuses it.
  """
  from audiolm_t5x.tasks import stages as task_stages  # pylint: disable=g-import-not-at-top
  bindings = tuple(args.gin_bindings)
  _, sem_corpus, sem_stage = _stage_task("semantic", stage_gins["semantic"],
                                         bindings)
  task, corpus, stage = _stage_task("coarse", stage_gins["coarse"], bindings)
  q = layout.acoustic_levels
  piano = ("--semantic_gin=infer/piano_semantic.gin "
           "--coarse_gin=infer/piano_acoustic.gin")
  if (sem_stage not in (task_stages.SEMANTIC, task_stages.SEMANTIC_PROMPT) or
      stage not in (task_stages.COARSE, task_stages.ACOUSTIC)):
    raise UserError(f"--semantic_gin / --coarse_gin: expected a stage-1 "
                    f"(semantic) and a stage-2 (coarse or acoustic) gin, found "
                    f"tasks of stages {sem_stage!r} and {stage!r}")
  if sem_corpus != corpus:
    raise UserError(f"--semantic_gin is a {sem_corpus} gin, --coarse_gin a "
                    f"{corpus} gin: use one corpus's gins (piano: {piano})")
  coarse = task_stages.predicted_levels(corpus, stage, acoustic_levels=q)
  if not 0 < coarse <= q:
    raise UserError(
        f"--coarse_gin: its task {task} predicts Q'={coarse} acoustic levels, "
        f"the codec layout has only Q={q} (N={layout.acoustic_codebook_size}):"
        f" a layout without fine levels takes the piano's gins ({piano}) and "
        "no --fine_checkpoint")
  if coarse < q and not args.fine_checkpoint:
    raise UserError(
        f"--fine_checkpoint: the codec layout has Q={q} levels and --coarse_gin"
        f"'s task {task} predicts Q'={coarse}: levels {coarse + 1}-{q} need "
        "stage 3's checkpoint")
  if coarse == q and args.fine_checkpoint:
    raise UserError(
        f"--fine_checkpoint: --coarse_gin's task {task} predicts all Q={q} "
        "levels of the codec layout; there is no fine stage to run: drop "
        "--fine_checkpoint")
  if coarse < q:
    _, fine_corpus, fine_stage = _stage_task("fine", stage_gins["fine"],
                                             bindings)
    if (fine_corpus, fine_stage) != (corpus, task_stages.FINE):
      raise UserError(f"--fine_gin: expected a {corpus} fine-stage gin, found "
                      f"a {fine_corpus} {fine_stage!r} one")
  return coarse


def plan(args: argparse.Namespace) -> Tuple[JobSpec, List[Tuple[int, Any]],
                                            str, dict]:
  """Checks flags and inputs; returns the job spec, sources, dataset dir and
  the summary skeleton. Raises UserError before any compute."""
  from audiolm_t5x import t5x_configs  # pylint: disable=g-import-not-at-top
  mode = args.mode
  for s in STAGES:
    if getattr(args, f"{s}_checkpoint"):
      _check_checkpoint(getattr(args, f"{s}_checkpoint"), s)
  if mode != chain_lib.UNCONDITIONAL and not args.prompts:
    raise UserError(f"--prompts: {mode} needs prompts (a folder, files or a "
                    "token dataset)")
  if args.batch_size < 1:
    raise UserError(f"--batch_size: expected >= 1, found {args.batch_size}")
  try:  # the numbers alone, before anything is loaded
    chain_lib.GenerationSettings(
        seconds=args.seconds, prompt_seconds=(
            0.0 if mode == chain_lib.UNCONDITIONAL else args.prompt_seconds),
        fine_window_seconds=args.fine_window_seconds,
        num_samples=args.num_samples)
    for s in STAGES:
      stage_model_lib.SamplingSettings(
          getattr(args, f"{s}_temperature") or 0.0, args.top_k or 0,
          args.top_p)
  except ValueError as e:
    raise UserError(str(e)) from e
  try:
    options_lib.check_backends(args)
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f"tokenizer flags: {e}") from e

  def gin_path(name: str) -> str:
    try:
      return t5x_configs.gin_path(name)
    except FileNotFoundError:
      import os  # pylint: disable=g-import-not-at-top
      if os.path.isfile(name):
        return name
      raise UserError(f"gin file {name!r} is neither under "
                      f"{t5x_configs.CONFIG_DIR} nor a file") from None

  extra = tuple(gin_path(g) for g in args.gin_file)
  tokenizers = tokenize_audio.TokenizerSpec(
      semantic=args.semantic_backend,
      semantic_options=tuple(sorted(
          options_lib.semantic_options(args).items())),
      codebook=args.kmeans, acoustic=args.acoustic_backend,
      acoustic_options=tuple(sorted(
          options_lib.acoustic_options(args).items())))
  prompt_tok = prompts_lib.PromptTokenizer(tokenizers)
  try:
    acoustic = prompt_tok.load().acoustic
    codec_info = acoustic.info()
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f"codec: {e}") from e

  # The token layout: a token dataset's, else the tokenizers'.
  dataset_dir, sources = "", []
  if mode != chain_lib.UNCONDITIONAL and prompts_lib.is_token_dataset(
      args.prompts):
    dataset_dir = args.prompts
    info = contract.DatasetInfo.load(dataset_dir)
    layout = vocabulary_lib.VocabularyLayout.from_dataset_info(info)
    try:
      prompts_lib.check_tokenizers(dataset_dir, prompt_tok)
      records = list(prompts_lib.read_records(dataset_dir,
                                              split=args.split or None))
    except ValueError as e:
      raise UserError(str(e)) from e
    sources = [(i, r.to_example_bytes()) for i, r in enumerate(records)]
  else:
    if not args.kmeans:
      if mode != chain_lib.UNCONDITIONAL:
        raise UserError("--kmeans: audio prompts are tokenized with the "
                        "training data's semantic codebook; pass its .npz")
    try:
      k = (prompts_lib.kmeans.KMeansCodebook.load(args.kmeans).size
           if args.kmeans else constants.SEMANTIC_CODEBOOK_SIZE)
    except Exception as e:  # pylint: disable=broad-except
      raise UserError(f"--kmeans: {e}") from e
    layout = vocabulary_lib.VocabularyLayout.from_sizes(
        semantic_codebook_size=k, acoustic_levels=acoustic.levels,
        acoustic_codebook_size=acoustic.codebook_size)
    if mode == chain_lib.UNCONDITIONAL:
      sources = [(i, None) for i in range(args.num_samples)]
    else:
      try:
        sources = list(enumerate(prompts_lib.list_audio(args.prompts)))
      except FileNotFoundError as e:
        raise UserError(f"--prompts: {e}") from e
  stage_gins = {s: (gin_path(getattr(args, f"{s}_gin")),) + extra
                for s in STAGES}
  coarse_levels = _coarse_levels(args, stage_gins, layout)
  used = STAGES if coarse_levels < layout.acoustic_levels else STAGES[:2]

  num_samples = 1 if mode == chain_lib.UNCONDITIONAL else args.num_samples
  # The fine model's batch: rows x the windows each row samples.
  windows = chain_lib.GenerationSettings(
      seconds=args.seconds, prompt_seconds=(
          0.0 if mode == chain_lib.UNCONDITIONAL else args.prompt_seconds),
      fine_window_seconds=args.fine_window_seconds).sampled_windows(mode)
  rows = args.batch_size * num_samples
  stages = []
  for s in used:
    stages.append(StageSpec(
        stage=s, checkpoint=getattr(args, f"{s}_checkpoint"),
        gin_files=stage_gins[s],
        gin_bindings=tuple(args.gin_bindings),
        batch_size=rows * windows if s == "fine" else rows))
  try:
    defaults = {st.stage: _gin_defaults(st) for st in stages}
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f"gin: {e}") from e

  def sampling(s: str) -> stage_model_lib.SamplingSettings:
    t = getattr(args, f"{s}_temperature")
    default = defaults.get(s, {"temperature": DEFAULT_TEMPERATURE[s],
                               "top_k": 0})  # no fine stage: unused
    t = default["temperature"] if t is None else t
    top_k = default["top_k"] if args.top_k is None else args.top_k
    return stage_model_lib.SamplingSettings(float(t), int(top_k or 0),
                                            float(args.top_p))
  try:
    settings = chain_lib.GenerationSettings(
        seconds=args.seconds, prompt_seconds=(
            0.0 if mode == chain_lib.UNCONDITIONAL else args.prompt_seconds),
        semantic=sampling("semantic"), coarse=sampling("coarse"),
        fine=sampling("fine"), fine_window_seconds=args.fine_window_seconds,
        num_samples=num_samples, seed=args.seed)
  except ValueError as e:
    raise UserError(str(e)) from e
  if mode == chain_lib.CONTINUATION and settings.prompt_frames == 0:
    raise UserError("--prompt_seconds: continuation needs a prompt > 0 s")
  codec = {"name": codec_info.get("name"), "levels": layout.acoustic_levels,
           "codes": layout.acoustic_codebook_size,
           "fingerprint": codec_info.get("fingerprint")}
  spec = JobSpec(mode=mode, settings=settings, stages=tuple(stages),
                 tokenizers=tokenizers, layout=layout,
                 coarse_levels=coarse_levels, output_dir=args.output_dir,
                 codec_info=tuple(sorted(codec.items())))
  summary = {
      "mode": mode,
      "prompts": args.prompts,
      "settings": {
          "seconds": settings.seconds,
          "prompt_seconds": settings.prompt_seconds,
          "num_samples": settings.num_samples, "seed": settings.seed,
          "fine_window_seconds": settings.fine_window_seconds,
          "batch_size": args.batch_size,
          "sampling": {s: dataclasses.asdict(getattr(settings, s))
                       for s in used},
          "frames": {"semantic": settings.semantic_frames,
                     "acoustic": settings.acoustic_frames,
                     "prompt_semantic": settings.prompt_frames},
      },
      "checkpoints": spec.checkpoints,
      "gin_files": {st.stage: list(st.gin_files) for st in stages},
      "gin_bindings": list(args.gin_bindings),
      "codec": codec,
      "layout": dataclasses.asdict(layout),
      "coarse_levels": coarse_levels,
      "counts": {"prompts": len(sources)},
  }
  return spec, sources, dataset_dir, summary


def build_pipeline(p: beam.Pipeline, spec: JobSpec, sources, *,
                   batch_size: int, dataset_dir: str = "",
                   summary: dict) -> beam.PCollection:
  """Wires the job; returns the PCollection of the final summary."""
  srcs = p | "Prompts" >> beam.Create(sources)
  written, skipped = srcs | "Generate" >> GenerateContinuations(
      spec=spec, batch_size=batch_size, dataset_dir=dataset_dir)
  return (p | "One" >> beam.Create([None])
          | "Summary" >> beam.ParDo(
              _WriteSummaryFn(spec.output_dir, summary),
              beam.pvalue.AsList(written), beam.pvalue.AsList(skipped)))


def run(argv: Optional[Sequence[str]] = None) -> dict:
  """Parses flags, runs the job, prints a summary; returns generation.json."""
  import os  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  argv = list(sys.argv[1:] if argv is None else argv)
  args, beam_args = options_lib.parse_args(make_parser(), argv)
  start = time.monotonic()
  spec, sources, dataset_dir, summary = plan(args)
  opts = options_lib.pipeline_options(beam_args, verbose=args.verbose)
  summary["command"] = options_lib.command_line(MODULE, argv)
  print(f"generating: {len(sources)} "
        f"{'rows' if args.mode == chain_lib.UNCONDITIONAL else 'prompts'}, "
        f"{spec.settings.num_samples} sample(s) each, "
        f"{spec.settings.seconds:g} s, mode {args.mode}", flush=True)
  with options_lib.make_pipeline(opts) as p:
    build_pipeline(p, spec, sources, batch_size=args.batch_size,
                   dataset_dir=dataset_dir, summary=summary)
  result = outputs.read_summary(args.output_dir) or {}
  wall = time.monotonic() - start
  c = result.get("counts", {})
  print(f"done in {wall:.1f} s: {c.get('samples_written', 0)} samples of "
        f"{c.get('prompts_generated', 0)} prompts ({c.get('audio_seconds', 0):g}"
        f" s of audio), {c.get('prompts_skipped', 0)} prompts skipped; "
        f"outputs in {os.path.abspath(args.output_dir) if '://' not in args.output_dir else args.output_dir}, "
        f"summary {outputs.SUMMARY_FILENAME}")
  for s in result.get("skipped", [])[:10]:
    print(f"  skipped {s['prompt_id']}: {s['reason']}")
  return result


def main(argv: Optional[Sequence[str]] = None) -> int:
  """The command's entry point: exit status 0, or 2 for a user error."""
  return options_lib.main(run, MODULE, argv)
