"""The wheel installs one top-level package, audiolm_t5x, with its gin files."""

import importlib.metadata
import json
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
  out = tmp_path_factory.mktemp("wheel")
  build = tmp_path_factory.mktemp("build")
  proc = subprocess.run(
      [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
       "-w", str(out), str(ROOT)], capture_output=True, text=True,
      cwd=build, check=False)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  (whl,) = out.glob("audiolm_t5x-*.whl")
  return whl


def test_wheel_has_only_a_unique_top_level_package(wheel):
  names = zipfile.ZipFile(wheel).namelist()
  top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(
      (".dist-info", ".data"))}
  assert top == {"audiolm_t5x"}
  for module in ("audiolm_t5x/pipelines/tokenize_corpus.py",
                 "audiolm_t5x/pipelines/tokenizers/lyra.py",
                 "audiolm_t5x/tasks/audiolm.py",
                 "audiolm_t5x/contract.py"):
    assert module in names
  gins = [n for n in names if n.endswith(".gin")]
  assert gins and all(n.startswith("audiolm_t5x/t5x_configs/") for n in gins)


def test_no_other_distribution_provides_our_package():
  owners = importlib.metadata.packages_distributions().get("audiolm_t5x", [])
  assert set(owners) <= {"audiolm-t5x"}, owners


def test_source_tree_resolves_subpackages_to_the_root_folders():
  import audiolm_t5x.pipelines
  import audiolm_t5x.tasks

  assert pathlib.Path(audiolm_t5x.pipelines.__file__).parent == ROOT / "pipelines"
  assert pathlib.Path(audiolm_t5x.tasks.__file__).parent == ROOT / "tasks"


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> pathlib.Path:
  """A venv over this interpreter's packages with only our wheel added."""
  env_dir = tmp_path_factory.mktemp("venv")
  subprocess.run([sys.executable, "-m", "venv", "--system-site-packages",
                  str(env_dir)], check=True)
  proc = subprocess.run(
      [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--no-deps",
       "--no-index", str(wheel)], capture_output=True, text=True, check=False)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  return env_dir


def _script(venv, name, *args, cwd):
  env = {k: v for k, v in os.environ.items()
         if k not in ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL")}
  return subprocess.run([str(venv / "bin" / name), *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=600,
                        check=False)


def test_console_scripts_exit_0_on_success_and_2_on_user_errors(venv,
                                                                tmp_path):
  corpus = tmp_path / "LibriSpeech"
  subprocess.run([sys.executable, "-c",
                  "import sys; from audiolm_t5x.pipelines import sample_data; "
                  "sample_data.make_sample(sys.argv[1])", str(corpus)],
                 cwd=ROOT, check=True)
  ok = _script(venv, "audiolm-fit-kmeans", f"--input_dir={corpus}",
               f"--output={tmp_path / 'k.npz'}", "--k=4",
               "--splits=dev-clean", cwd=tmp_path)
  assert ok.returncode == 0, ok.stderr[-3000:]
  assert ok.stdout.splitlines()[0].startswith(
      f"codebook: {tmp_path / 'k.npz'} (K=4, ")
  assert "{" not in ok.stdout  # no repr of a return value
  prov = json.loads((tmp_path / "k.npz.json").read_text())
  assert prov["command"].startswith("audiolm-fit-kmeans --input_dir=")
  bad = _script(venv, "audiolm-tokenize", f"--input_dir={corpus}",
                f"--output_dir={tmp_path / 'o'}", "--kmeans=k.npz",
                "--num-shards=4", cwd=tmp_path)
  assert bad.returncode == 2
  assert bad.stderr.strip().splitlines() == [
      "audiolm-tokenize: error: unknown flag --num-shards=4 (did you mean "
      "--num_shards?): neither this command nor Beam's PipelineOptions knows "
      "it (see --help)"]
  assert bad.stdout == ""
