"""The commands behave like the tools users know.

Every flag has help text and its default in ``--help``; unknown flags are
errors (real Beam options pass through); a user error is one short line on
stderr with exit status 2, raised before any compute (the tests make
:func:`options.make_pipeline` fail if reached); success exits 0 with a
summary and records the command as run; logs are quiet.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tarfile

import pytest

from audiolm_t5x import demo
from audiolm_t5x.pipelines import fit_kmeans
from audiolm_t5x.pipelines import options as options_lib
from audiolm_t5x.pipelines import preflight
from audiolm_t5x.pipelines import tokenize_corpus
from audiolm_t5x.tasks import inspect_task

ROOT = pathlib.Path(__file__).resolve().parent.parent

PARSERS = {
    "tokenize_corpus": tokenize_corpus.make_parser,
    "fit_kmeans": fit_kmeans.make_parser,
    "inspect_task": inspect_task.make_parser,
    "demo": demo.make_parser,
}


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_flag_has_help_and_its_default(name):
  parser = PARSERS[name]()
  flags = [a for a in parser._actions if a.option_strings and a.dest != "help"]  # pylint: disable=protected-access
  assert flags
  for action in flags:
    assert action.help and len(action.help) > 8, action.option_strings
  text = parser.format_help()
  assert text.startswith(f"usage: python -m ")
  # argparse's ArgumentDefaultsHelpFormatter: each flag's default is shown
  assert "(default: " in text
  for action in flags:
    if action.default not in (None, False, [], "") and not action.required:
      assert f"(default: {action.default})" in " ".join(text.split()), (
          action.option_strings)


@pytest.fixture(autouse=True)
def no_compute(monkeypatch):
  """A user error must be found before any pipeline is built."""
  def refuse(*args, **kwargs):
    raise AssertionError("compute started before the user error was found")

  monkeypatch.setattr(options_lib, "make_pipeline", refuse)


def _error(main, argv, capsys) -> str:
  status = main(argv)
  err = capsys.readouterr().err.strip()
  assert status == 2, err
  lines = err.splitlines()
  assert len(lines) == 1, err  # one short message, no traceback
  return lines[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> pathlib.Path:
  from audiolm_t5x.pipelines import sample_data  # pylint: disable=g-import-not-at-top

  root = tmp_path_factory.mktemp("corpus") / "LibriSpeech"
  sample_data.make_sample(str(root))
  return root


@pytest.fixture(scope="module")
def archives(tmp_path_factory, corpus) -> pathlib.Path:
  folder = tmp_path_factory.mktemp("archives")
  with tarfile.open(folder / "dev-clean.tar.gz", "w:gz") as tar:
    tar.add(corpus / "dev-clean", arcname="LibriSpeech/dev-clean")
  return folder


def test_unknown_flags_are_errors_with_a_suggestion(capsys, tmp_path):
  base = [f"--input_dir={tmp_path}", f"--output_dir={tmp_path / 'o'}",
          "--kmeans=k.npz"]
  msg = _error(tokenize_corpus.main, base + ["--levels=24"], capsys)
  assert msg == (
      "python -m audiolm_t5x.pipelines.tokenize_corpus: error: unknown flag "
      "--levels=24 (a backend option: --acoustic_option=levels=N): neither this command nor "
      "Beam's PipelineOptions knows it (see --help)")
  msg = _error(tokenize_corpus.main, base + ["--num-shards=4"], capsys)
  assert "unknown flag --num-shards=4 (did you mean --num_shards?)" in msg
  msg = _error(fit_kmeans.main, ["--input_dir=x", "--output=y", "--runnr=x"],
               capsys)
  assert "(did you mean --runner?)" in msg
  msg = _error(inspect_task.main, ["--task=audiolm_fine_v001", "--seeds=1"],
               capsys)
  assert "unknown flag --seeds=1 (did you mean --seed?)" in msg


def test_real_beam_options_pass_through():
  args, beam_args = options_lib.parse_args(tokenize_corpus.make_parser(), [
      "--input_dir=i", "--output_dir=o", "--kmeans=k", "--num_shards=3",
      "--runner=DataflowRunner", "--project=p", "--region=us-central1",
      "--temp_location=gs://b/tmp", "--setup_file=./setup.py",
      "--direct_running_mode=multi_processing", "--direct_num_workers", "4",
      "--experiments=use_runner_v2"])
  assert args.num_shards == 3
  assert beam_args == [
      "--runner=DataflowRunner", "--project=p", "--region=us-central1",
      "--temp_location=gs://b/tmp", "--setup_file=./setup.py",
      "--direct_running_mode=multi_processing", "--direct_num_workers", "4",
      "--experiments=use_runner_v2"]


def test_local_runs_use_the_in_process_runner(monkeypatch):
  monkeypatch.undo()  # the real make_pipeline
  from apache_beam.runners.portability.fn_api_runner import fn_runner  # pylint: disable=g-import-not-at-top

  for flags in ([], ["--runner=DirectRunner"]):
    p = options_lib.make_pipeline(options_lib.pipeline_options(flags))
    assert isinstance(p.runner, fn_runner.FnApiRunner), flags
  p = options_lib.make_pipeline(options_lib.pipeline_options(
      ["--runner=PrismRunner"]))
  assert type(p.runner).__name__ == "PrismRunner"
  quiet = options_lib.pipeline_options([]).get_all_options()
  assert quiet["default_sdk_harness_log_level"] == "WARNING"
  loud = options_lib.pipeline_options([], verbose=True).get_all_options()
  assert loud["default_sdk_harness_log_level"] is None


def test_multi_process_workers_split_the_cores(monkeypatch):
  """N local worker processes compute on cores // N threads each (unset
  variables only, for the run); other runs are left alone."""
  for v in options_lib._THREAD_VARS:  # pylint: disable=protected-access
    monkeypatch.delenv(v, raising=False)
  monkeypatch.setenv("MKL_NUM_THREADS", "3")  # the user's choice stays
  opts = options_lib.pipeline_options([
      "--direct_running_mode=multi_processing", "--direct_num_workers=2"])
  with options_lib.worker_threads(opts, cpu_count=8) as added:
    assert os.environ["OMP_NUM_THREADS"] == "4"
    assert os.environ["TF_NUM_INTRAOP_THREADS"] == "4"
    assert os.environ["MKL_NUM_THREADS"] == "3"
  assert "MKL_NUM_THREADS" not in added and "OMP_NUM_THREADS" not in os.environ
  for flags in ([], ["--direct_num_workers=2"],
                ["--runner=DataflowRunner", "--direct_num_workers=2",
                 "--direct_running_mode=multi_processing"]):
    with options_lib.worker_threads(options_lib.pipeline_options(flags),
                                    cpu_count=8) as added:
      assert added == {} and "OMP_NUM_THREADS" not in os.environ, flags


def test_input_errors_say_what_to_change(capsys, tmp_path, corpus, archives):
  out = f"--output={tmp_path / 'k.npz'}"
  msg = _error(fit_kmeans.main, [f"--input_dir={tmp_path / 'nope'}", out],
               capsys)
  assert msg.endswith(f"error: --input_dir {tmp_path / 'nope'} does not exist")
  msg = _error(fit_kmeans.main, [f"--input_dir={corpus}", out,
                                 "--splits=dev-clean,test-clean"], capsys)
  assert msg.endswith(
      f"error: --splits: no folder test-clean in {corpus}; splits found: "
      "dev-clean, train-clean-100")
  msg = _error(fit_kmeans.main, [f"--input_dir={archives}", out], capsys)
  assert msg.endswith(
      f"error: no audio files (flac/wav) under {archives}; it holds "
      "archives: add --archives to read them")
  msg = _error(fit_kmeans.main, [f"--input_dir={corpus}", out, "--archives"],
               capsys)
  assert "--archives: no .tar.gz / .tgz / .tar archives in" in msg


def test_sample_too_small_says_which_flags(capsys, tmp_path, corpus):
  out = f"--output={tmp_path / 'k.npz'}"
  msg = _error(fit_kmeans.main, [f"--input_dir={corpus}", out,
                                 "--file_fraction=0.01", "--k=8"], capsys)
  assert msg.endswith(
      "error: the sample keeps 0 of 14 audio files, at most 0 frames, fewer "
      "than --k=8 frames to fit: raise --file_fraction (now 0.01) or "
      "--frames_per_file (now 100), or lower --k")
  msg = _error(fit_kmeans.main, [f"--input_dir={corpus}", out,
                                 "--splits=dev-clean", "--k=1024"], capsys)
  assert "the sample keeps 3 of 3 audio files, at most 300 frames" in msg


def test_output_paths_are_checked(capsys, tmp_path, corpus):
  a_file = tmp_path / "file"
  a_file.write_text("x")
  msg = _error(tokenize_corpus.main, [
      f"--input_dir={corpus}", f"--output_dir={a_file}", "--kmeans=k.npz"],
      capsys)
  assert msg.endswith(f"error: --output_dir {a_file} is a file, not a folder")
  msg = _error(tokenize_corpus.main, [
      f"--input_dir={corpus}", f"--output_dir={a_file / 'sub'}",
      "--kmeans=k.npz"], capsys)
  assert msg.endswith(f"{a_file} is a file, not a folder")
  msg = _error(fit_kmeans.main, [f"--input_dir={corpus}",
                                 f"--output={tmp_path}"], capsys)
  assert msg.endswith(f"error: --output {tmp_path} is a folder; give a file "
                      "path (.npz)")


def test_model_and_codebook_files_are_checked(capsys, tmp_path, corpus,
                                              kmeans_codebook, monkeypatch):
  base = [f"--input_dir={corpus}", f"--output_dir={tmp_path / 'out'}"]
  msg = _error(tokenize_corpus.main,
               base + [f"--kmeans={tmp_path / 'missing.npz'}"], capsys)
  assert msg.endswith(f"error: --kmeans {tmp_path / 'missing.npz'}: no such "
                      "file")
  monkeypatch.delenv("AUDIOLM_LYRA_DIR", raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  empty = tmp_path / "no_lyra"
  empty.mkdir()
  msg = _error(tokenize_corpus.main, base + [
      f"--kmeans={kmeans_codebook}", f"--lyra_dir={empty}"], capsys)
  assert "Lyra SoundStream model files not found" in msg
  assert not (tmp_path / "out" / "dataset_info.json").exists()


def test_a_layout_the_vocabulary_refuses_stops_the_job(capsys, tmp_path,
                                                       corpus, kmeans_codebook,
                                                       lyra_dir):
  msg = _error(tokenize_corpus.main, [
      f"--input_dir={corpus}", f"--output_dir={tmp_path / 'out'}",
      f"--kmeans={kmeans_codebook}", f"--lyra_dir={lyra_dir}",
      "--acoustic_option=levels=36", "--acoustic_option=pack=3"], capsys)
  assert msg.endswith(
      "error: acoustic layout Q=12 levels x N=4096 codes with K=16 needs "
      "2 + K + Q*N = 49170 LM ids, more than the speech tasks' vocabulary of "
      "13440 (the gin files' VOCAB_SIZE); choose a smaller layout, e.g. Lyra "
      "--acoustic_option=levels=24 --acoustic_option=pack=2 (12 x 256)")


def test_a_layout_longer_than_the_gins_warns_with_the_numbers(capsys):
  warnings = preflight.check_layout(semantic_codebook_size=1024,
                                    acoustic_levels=30,
                                    acoustic_codebook_size=16)
  assert warnings == [
      "audiolm_fine_v001 targets: up to 3901 ids with Q=30 acoustic levels, "
      "but t5x_configs/stages/*.gin feeds 1201 (made for Q=12); set "
      "TASK_FEATURE_LENGTHS or the feature converter trims them"]
  assert capsys.readouterr().err.startswith("WARNING: audiolm_fine_v001")
  # the job's default layout fits the gin files: no warning
  assert preflight.check_layout(semantic_codebook_size=1024,
                                acoustic_levels=12,
                                acoustic_codebook_size=256) == []


def test_a_piano_layout_without_fine_levels_warns_and_is_not_refused(capsys):
  # Lyra levels=9 pack=3: 3 levels x 4096 codes, the piano recipe's layout.
  warnings = preflight.check_layout(semantic_codebook_size=16,
                                    acoustic_levels=3,
                                    acoustic_codebook_size=4096)
  assert warnings == [
      "acoustic layout Q=3 levels leaves no fine levels after the 4 coarse "
      "ones: only the piano tasks (audiolm_piano_*) can train on it; the "
      "speech tasks need more levels"]
  assert capsys.readouterr().err.startswith("WARNING: acoustic layout Q=3")


def test_default_lyra_layout_is_the_gins_layout():
  args, _ = options_lib.parse_args(tokenize_corpus.make_parser(), [
      "--input_dir=i", "--output_dir=o", "--kmeans=k"])
  assert options_lib.acoustic_options(args) == {"levels": 24, "pack": 2}
  args, _ = options_lib.parse_args(tokenize_corpus.make_parser(), [
      "--input_dir=i", "--output_dir=o", "--kmeans=k",
      "--acoustic_option=levels=30"])
  assert options_lib.acoustic_options(args) == {"levels": 30}


def test_inspect_without_data_is_one_line(capsys, tmp_path, monkeypatch):
  monkeypatch.delenv("AUDIOLM_DATA_DIR", raising=False)
  msg = _error(inspect_task.main, ["--task=audiolm_fine_v001"], capsys)
  assert "no data directory for the speech tasks" in msg
  msg = _error(inspect_task.main, ["--task=audiolm_fine_v001",
                                   f"--data_dir={tmp_path}"], capsys)
  assert "expected the tokenization job's dataset_info.json there" in msg


def test_verbose_shows_the_traceback(capsys, tmp_path):
  assert fit_kmeans.main([f"--input_dir={tmp_path / 'nope'}",
                          f"--output={tmp_path / 'k.npz'}", "--verbose"]) == 2
  err = capsys.readouterr().err
  assert "Traceback (most recent call last)" in err
  assert err.rstrip().endswith("does not exist")


def test_invocation_names_the_console_script(monkeypatch):
  monkeypatch.setattr(sys, "argv", ["/venv/bin/audiolm-tokenize", "--x"])
  assert options_lib.command_line(
      "audiolm_t5x.pipelines.tokenize_corpus", ["--input_dir=a b"]) == (
          "audiolm-tokenize '--input_dir=a b'")


def _clean_env() -> dict:
  env = dict(os.environ)
  for var in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH"):
    env.pop(var, None)
  return env


NOISE = ("apitools", "cuInit", "cudart", "absl::InitializeLog",
         "Discarding unparseable", "Traceback",
         "Created TensorFlow Lite XNNPACK delegate")  # TFLite's C++ INFO


def test_job_from_the_shell_exits_0_with_a_summary_and_records_itself(
    tmp_path, corpus, kmeans_codebook, lyra_dir):
  out = tmp_path / "tokens"
  argv = [f"--input_dir={corpus}", "--splits=dev-clean",
          f"--output_dir={out}", f"--kmeans={kmeans_codebook}",
          f"--lyra_dir={lyra_dir}", "--num_shards=1"]
  proc = subprocess.run(
      [sys.executable, "-m", "pipelines.tokenize_corpus", *argv], cwd=ROOT,
      env=_clean_env(), capture_output=True, text=True, timeout=600,
      check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.splitlines()
  # 3 audio files and their transcript file
  assert lines[0] == "4 candidates listed; 0 committed shards kept, 0 redone"
  assert lines[1].startswith("done in ") and (
      "3 records (0.006 h of audio, " in lines[1]) and lines[1].endswith(
          "h audio per hour), 0 failed, this run")
  assert f"dataset_info: {out}/dataset_info.json" in lines
  assert not [n for n in NOISE if n in proc.stderr + proc.stdout], proc.stderr
  info = json.loads((out / "dataset_info.json").read_text())
  assert info["command"] == ("python -m pipelines.tokenize_corpus " +
                             " ".join(argv))


def test_help_is_quiet_and_fast_to_read():
  proc = subprocess.run(
      [sys.executable, "-m", "pipelines.fit_kmeans", "--help"], cwd=ROOT,
      env=_clean_env(), capture_output=True, text=True, timeout=300,
      check=False)
  assert proc.returncode == 0 and proc.stderr == "", proc.stderr
  assert proc.stdout.startswith("usage: python -m pipelines.fit_kmeans ")


def test_progress_line_and_worker_totals(tmp_path):
  from audiolm_t5x.pipelines import progress  # pylint: disable=g-import-not-at-top

  assert progress.describe(1200, 16000 * 3600 * 3, total=5000,
                           elapsed=1800.0) == (
      "progress: 1200/5000 inputs (24%), 3.00 h audio, 6.0 h audio per hour,"
      " ETA 1:35:00")
  assert progress.describe(0, 0, total=None, elapsed=5.0) == (
      "progress: 0 inputs, 0.00 h audio")

  class Rec:
    num_samples = 16000

  fn = progress.NoteProgressFn(str(tmp_path), flush_seconds=1e9)
  fn.setup()
  for _ in range(3):
    assert len(list(fn.process(Rec()))) == 1
  fn.finish_bundle()
  other = progress.NoteProgressFn(str(tmp_path))
  other.setup()
  list(other.process("a dead letter"))
  other.finish_bundle()
  assert progress.totals(str(tmp_path)) == (4, 48000)
