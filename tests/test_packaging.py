"""The wheel installs one top-level package, audiolm_t5x, with its gin files."""

import importlib.metadata
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
