"""The recipes, run as users run them (bash), and the rendered piano corpus.

The LibriSpeech recipe's first run is the session fixture ``speech_recipe``
(tests/t5x_fixtures.py): stages 0-4 over released-style archives packed from
the team's clips, and where T5X is installed stages 5-7, the tiny training
that tests/test_generation_t5x.py and the others consume. Here stage 8
continues the dev-clean prompts with those checkpoints, then the recipe runs
again: the second run must skip every done stage. Stage 9's command lines
are parsed by the real commands' parsers. The piano recipe runs stages 0-3 on
a few rendered seconds, and where T5X is installed trains its two tiny stages
and generates a continuation (4-6).
"""

import importlib.util
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from audiolm_t5x import contract
from tests import t5x_fixtures
from tests.conftest import REPO_ROOT

LIBRISPEECH_RECIPE = t5x_fixtures.LIBRISPEECH_RECIPE
HAS_T5X = importlib.util.find_spec("t5x") is not None
NO_EVAL_GIN = t5x_fixtures.NO_EVAL_GIN


def run_recipe(config: pathlib.Path, *args, timeout=1800):
  return t5x_fixtures.run_recipe(LIBRISPEECH_RECIPE, config, *args,
                                 timeout=timeout)


@pytest.fixture(scope="module")
def recipe_run(speech_recipe):
  config, work = speech_recipe["config"], speech_recipe["work"]
  first = speech_recipe["proc"]
  last = 8 if HAS_T5X else 4
  generate = None
  if last == 8:  # stage 8 with the checkpoints of stages 5-7
    generate = run_recipe(config, "--stage", "8", "--stop_stage", "8")
    assert generate.returncode == 0, (generate.stdout[-5000:] +
                                      generate.stderr[-5000:])
  markers = {p.name: p.stat().st_mtime_ns for p in (work / "done").iterdir()}
  second = run_recipe(config, "--stop_stage", str(last))
  return dict(work=work, data=work / "data", config=config, first=first,
              generate=generate, second=second, markers=markers, last=last)


def test_stages_leave_their_outputs(recipe_run):
  data = recipe_run["data"]
  out = recipe_run["first"].stdout
  for n, name in enumerate(("data", "codebook", "tokenize", "report",
                            "cache")):
    assert f"== stage {n} ({name}):" in out
    assert f"stage {n} {name} done in" in out
  assert "train-clean-100.tar.gz: OK" in out and "dev-clean.tar.gz: OK" in out
  assert (data / "kmeans_logmel_16.npz").is_file()
  info = contract.DatasetInfo.load(str(data / "tokens"))
  # Stage 2 read the archives, not the extracted tree.
  assert info.options["archives"] is True
  assert {s: v["records"] for s, v in info.splits.items()} == {
      "train-clean-100": 4, "dev-clean": 2}
  assert (data / "report" / "report.md").is_file()
  assert (data / "report" / "semantic.png").read_bytes()[:4] == b"\x89PNG"
  cache = data / "seqio_cache" / "audiolm_semantic_v001"
  assert list(cache.glob("train.tfrecord-*")), sorted(cache.iterdir())
  assert list(cache.glob("validation.tfrecord-*")), sorted(cache.iterdir())
  if recipe_run["last"] < 8:
    return
  for n, stage in ((5, "semantic"), (6, "coarse"), (7, "fine")):
    assert f"stage {n} {stage} done in" in out
    assert (data / "models" / stage / "checkpoint_2").is_dir()
  # Stage 5 read stage 4's cache of its task; 6 and 7 (tasks not cached by
  # this config) read the records.
  assert "reads stage 4's cache of audiolm_semantic_v001" in out
  assert "audiolm_coarse_v001 is not in CACHE_TASKS" in out
  log = (recipe_run["work"] / "logs" / "stage5.semantic.log").read_text()
  assert f"Using cache directory {cache}" in log


def test_stage_8_continues_the_prompts_with_the_trained_stages(recipe_run):
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  if recipe_run["last"] < 8:
    pytest.skip(t5x_fixtures.NO_T5X)
  assert "stage 8 generate done in" in recipe_run["generate"].stdout
  data = recipe_run["data"]
  gen = data / "generated"
  summary = json.loads((gen / "generation.json").read_text())
  assert summary["counts"]["prompts"] == 2
  assert summary["counts"]["samples_written"] == 2
  assert summary["checkpoints"] == {
      s: str(data / "models" / s / "checkpoint_2") for s in
      t5x_fixtures.STAGES}
  for clip in ("2412-153948-0000", "2412-153948-0001"):
    audio, rate = sf.read(gen / clip / "sample-0.wav", dtype="float32")
    assert (rate, audio.shape) == (16000, (32000,))  # CONTINUATION_SECONDS=2
    codes = np.load(gen / clip / "sample-0.npz")["codes"]
    assert codes.shape == (100, 12) and codes.max() < 256


def test_rerun_skips_every_done_stage(recipe_run):
  second = recipe_run["second"]
  assert second.returncode == 0, second.stderr[-3000:]
  assert len(recipe_run["markers"]) == recipe_run["last"] + 1
  last = recipe_run["last"]
  for n in range(last + 1):
    assert f"== stage {n} " in second.stdout
  assert second.stdout.count("done before") == last + 1
  assert " done in " not in second.stdout
  assert {p.name: p.stat().st_mtime_ns
          for p in (recipe_run["work"] / "done").iterdir()
          } == recipe_run["markers"]


# Stage 9's evaluations (ViSQOL, the detector's training, the LM smoke set)
# take longer than this test may: here a stand-in $PYTHON records the command
# lines of stages 8-9 instead of running them, and each is parsed by the real
# command's own parser (flag names, required flags, Beam flags), with its
# paths checked against the earlier stages' outputs. (Stage 8 also ran for
# real above; tests/test_end_to_end_tiny.py runs the evaluations on the same
# checkpoints.)
RECORDING_PYTHON = """#!/usr/bin/env bash
if [[ "$1" == -m && "$2" == audiolm_t5x.pipelines.* ]]; then
  exec {python} -c 'import json, sys; open(sys.argv[1], "a").write(json.dumps(sys.argv[2:]) + "\\n")' {record} "${{@:2}}"
fi
exec {python} "$@"
"""


def _stage_parsers():
  from audiolm_t5x.pipelines.evaluation import continuations  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines.evaluation import detector  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines.evaluation import lm_scores  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines.evaluation import token_quality  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines.generation import job  # pylint: disable=g-import-not-at-top
  # module -> (its parser, whether it is a Beam job taking Beam's flags)
  return {"generate": (job.make_parser(), True),
          "evaluate_tokens": (token_quality.make_parser(), True),
          "evaluate_continuations": (continuations.make_parser(), True),
          "score_lm_pairs": (lm_scores.make_parser(), False),
          "train_detector": (detector.make_parser(), False)}


def test_stages_8_and_9_call_the_real_commands_with_their_flags(recipe_run,
                                                                tmp_path):
  work = tmp_path / "work"  # markers apart from recipe_run's
  work.mkdir()
  (work / "corpus.env").write_bytes(
      (recipe_run["work"] / "corpus.env").read_bytes())
  record = tmp_path / "commands.jsonl"
  wrapper = tmp_path / "python"
  wrapper.write_text(RECORDING_PYTHON.format(python=sys.executable,
                                             record=record))
  wrapper.chmod(0o755)
  config = tmp_path / "stages89.sh"
  config.write_text(f"source {recipe_run['config']}\nWORK_DIR={work}\n"
                    f"DATA_ROOT={recipe_run['data']}\nPYTHON={wrapper}\n")
  proc = run_recipe(config, "--stage", "8")
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert "not in this installation" not in proc.stdout
  calls = [json.loads(line) for line in record.read_text().splitlines()]
  modules = [c[0].rsplit(".", 1)[1] for c in calls]
  assert modules == ["generate", "evaluate_tokens", "evaluate_continuations",
                     "score_lm_pairs", "train_detector"]
  data = recipe_run["data"]
  parsers, parsed = _stage_parsers(), {}
  for module, call in zip(modules, calls):
    parser, beam = parsers[module]
    args, unknown = parser.parse_known_args(call[1:])  # exits 2 on a bad flag
    assert unknown == (["--runner=DirectRunner"] if beam else []), module
    parsed[module] = args
  g = parsed["generate"]
  for s in ("semantic", "coarse", "fine"):
    assert getattr(g, f"{s}_checkpoint") == str(
        data / "models" / s / "checkpoint_2")
  assert pathlib.Path(g.kmeans).is_file() and pathlib.Path(g.prompts).is_dir()
  assert pathlib.Path(g.lyra_dir).is_dir() and g.gin_file == ["models/tiny.gin"]
  # The tiny config's PROMPT_SECONDS=1.
  assert (g.mode, g.prompt_seconds, g.num_samples) == ("continuation", 1.0, 1)
  t = parsed["evaluate_tokens"]
  assert t.codec == ["lyra:levels=24,pack=2"] and pathlib.Path(
      t.audio_dir).is_dir()
  assert parsed["evaluate_continuations"].generated == g.output_dir
  lm = parsed["score_lm_pairs"]
  assert lm.make_smoke_set and lm.kmeans == g.kmeans
  assert lm.checkpoint == g.semantic_checkpoint
  assert lm.gin_file == ["models/audiolm_decoder.gin", "stages/semantic.gin",
                         "models/tiny.gin"]
  d = parsed["train_detector"]
  assert (d.generated, d.real, d.codec_backend) == (g.output_dir, g.prompts,
                                                    "lyra")
  assert f"model_dir={g.lyra_dir}" in d.acoustic_option
  done = sorted(p.name for p in (work / "done").iterdir())
  assert done == ["stage8.generate.done", "stage9.evaluate.done"]


@pytest.mark.parametrize("args,message", [
    (["--stage", "12"], "must be 0-9"),
    (["--stage", "5", "--stop_stage", "3"], "is after"),
    (["--bogus"], "unknown argument"),
])
def test_recipe_user_errors(tmp_path, args, message):
  proc = subprocess.run(["bash", str(LIBRISPEECH_RECIPE), *args],
                        capture_output=True, text=True, cwd=tmp_path,
                        timeout=60)
  assert proc.returncode == 2
  assert message in proc.stderr and len(proc.stderr.splitlines()) == 1


# --- Piano -------------------------------------------------------------------
PIANO_RECIPE = REPO_ROOT / "recipes" / "piano" / "run.sh"
PIANO_CONFIG = """
TRAIN_PIECES=4
DEV_PIECES=2
PIECE_SECONDS=4
KMEANS_K=16
LYRA_DIR={lyra_dir}
NUM_SHARDS=1
WORK_DIR={work}
PYTHON={python}
""" + t5x_fixtures.TINY_TRAIN_CONFIG


@pytest.fixture(scope="module")
def renderer():
  from audiolm_t5x.pipelines import piano_corpus  # pylint: disable=g-import-not-at-top
  try:
    piano_corpus.check_renderer()
  except piano_corpus.PianoCorpusError as e:
    pytest.skip(str(e))
  return piano_corpus


def test_piano_pieces_are_deterministic_and_labelled(renderer, tmp_path):
  import soundfile as sf  # pylint: disable=g-import-not-at-top

  pieces = renderer.plan(seed=3, train_pieces=2, dev_pieces=1, seconds=1.5,
                         kinds=["chords", "random_walk"])
  assert [(p.split, p.kind, p.seed) for p in pieces] == [
      ("train-rendered", "chords", 300000),
      ("train-rendered", "random_walk", 300001),
      ("dev-rendered", "chords", 300002)]
  a = renderer.build_corpus(str(tmp_path / "a"), pieces)
  b = renderer.build_corpus(str(tmp_path / "b"), pieces)
  assert [r["audio_sha256"] for r in a] == [r["audio_sha256"] for r in b]
  for row in a:
    assert row["rendered"] is True and row["recorded"] is False
    assert "rendered" in row["id"] and "rendered" in row["split"]
    audio, rate = sf.read(str(tmp_path / "a" / row["audio"]))
    assert rate == 16000 and audio.ndim == 1 and audio.shape[0] == 24000
    assert abs(abs(audio).max() - 0.7) < 1e-3  # scaled to the peak
  assert (tmp_path / "a" / "README.txt").read_text().startswith(
      "RENDERED, NOT RECORDED")
  # The MIDI on disk is the generator's score.
  import pretty_midi  # pylint: disable=g-import-not-at-top
  midi = pretty_midi.PrettyMIDI(str(tmp_path / "a" / a[0]["midi"]))
  assert len(midi.instruments[0].notes) == a[0]["notes"] == len(
      pieces[0].notes())
  assert midi.instruments[0].program == 0
  other = renderer.plan(seed=4, train_pieces=1, dev_pieces=0, seconds=1.5,
                        kinds=["chords"])[0]
  assert other.notes() != pieces[0].notes()


@pytest.fixture(scope="module")
def piano_run(tmp_path_factory, renderer, lyra_dir):
  work = tmp_path_factory.mktemp("piano") / "work"
  work.mkdir()
  (work / "no_eval.gin").write_text(NO_EVAL_GIN)
  config = work.parent / "tiny.sh"
  config.write_text(PIANO_CONFIG.format(lyra_dir=lyra_dir, work=work,
                                        python=sys.executable))
  # Through generation (stages 4-6) where T5X is installed.
  last = "6" if HAS_T5X else "3"
  proc = t5x_fixtures.run_recipe(PIANO_RECIPE, config, "--stop_stage", last)
  assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
  return dict(work=work, proc=proc, last=int(last))


def test_piano_recipe_tokens_have_three_levels(piano_run, monkeypatch):
  import seqio  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.tasks import audiolm  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.tasks import vocabulary  # pylint: disable=g-import-not-at-top

  work = piano_run["work"]
  assert "RENDERED, not recorded" in piano_run["proc"].stdout
  tokens = work / "tokens"
  info = contract.DatasetInfo.load(str(tokens))
  assert (info.acoustic_levels, info.acoustic_codebook_size) == (3, 4096)
  assert {s: v["records"] for s, v in info.splits.items()} == {
      "train-rendered": 4, "dev-rendered": 2}
  assert (work / "report" / "report.md").is_file()
  # The piano task reads them: targets are the 3 levels, frame by frame.
  monkeypatch.setenv("AUDIOLM_PIANO_DATA_DIR", str(tokens))
  layout = vocabulary.VocabularyLayout.from_dataset_info(info)
  task = seqio.get_mixture_or_task(audiolm.PIANO_ACOUSTIC_TASK)
  examples = list(task.get_dataset(
      audiolm.TASK_FEATURE_LENGTHS[audiolm.PIANO_ACOUSTIC_TASK],
      split="validation", shuffle=False, seed=0).as_numpy_iterator())
  assert len(examples) == 2
  for ex in examples:
    targets = [int(i) for i in ex["targets"] if i != 1]
    levels = [layout.describe(i)[1] for i in targets]
    assert levels[:6] == [0, 1, 2, 0, 1, 2], levels[:6]
    # 4 s -> 100 semantic steps -> 200 frames x 3 levels.
    assert len(targets) == 600


def test_piano_recipe_generates_a_continuation_of_a_rendered_piece(piano_run):
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  if piano_run["last"] < 6:
    pytest.skip(t5x_fixtures.NO_T5X)
  work = piano_run["work"]
  models = work / "models"
  for name in ("piano_semantic", "piano_acoustic"):
    assert (models / name / "checkpoint_2").is_dir()
  assert "stage 6 generate done in" in piano_run["proc"].stdout
  gen = work / "generated"
  summary = json.loads((gen / "generation.json").read_text())
  # Two stages: semantic, then all 3 levels; no fine stage.
  assert summary["checkpoints"] == {
      "semantic": str(models / "piano_semantic" / "checkpoint_2"),
      "coarse": str(models / "piano_acoustic" / "checkpoint_2")}
  assert summary["coarse_levels"] == 3
  assert summary["counts"]["samples_written"] == 2  # the two dev pieces
  assert "dev-rendered" in summary["prompts"]
  pieces = sorted(p.name for p in gen.iterdir() if p.is_dir())
  assert len(pieces) == 2 and all(p.startswith("rendered_") for p in pieces)
  for piece in pieces:
    audio, rate = sf.read(gen / piece / "sample-0.wav", dtype="float32")
    assert (rate, audio.shape) == (16000, (32000,))  # CONTINUATION_SECONDS=2
    assert np.all(np.isfinite(audio)) and np.abs(audio[16000:]).max() > 0
    arrays = np.load(gen / piece / "sample-0.npz")
    assert arrays["codes"].shape == (100, 3) and arrays["fine"].shape == (
        100, 0)
    assert arrays["codes"].max() < 4096  # Lyra levels=9 pack=3: 3 x 4096
    meta = json.loads((gen / piece / "sample-0.json").read_text())
    assert (meta["codec"]["levels"], meta["codec"]["codes"]) == (3, 4096)
    assert "rendered" in meta["prompt_path"]
