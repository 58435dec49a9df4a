"""One file, one module: every documented name and command, in any order.

Each case runs in a fresh interpreter (subprocess) from the repository root,
imports (or runs with ``runpy``, as ``python -m`` does) a sequence of names,
then checks: no two entries of ``sys.modules`` are different module objects
loaded from the same file of this repository, every task and mixture is
registered once, and a generic name and its ``audiolm_t5x.`` name are the same
object.
"""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Every import name the docs give users (README.md, BUILD.md, docstrings).
DOCUMENTED_IMPORTS = (
    "tasks.audiolm",
    "audiolm_t5x.tasks.audiolm",
    "audiolm_t5x.tasks.inspect_task",
    "tasks.inspect_task",
    "pipelines.tokenize_corpus",
    "audiolm_t5x.pipelines.tokenize_corpus",
    "pipelines.tokenizers",
    "audiolm_t5x.pipelines.fit_kmeans",
    "t5x_configs",
    "audiolm_t5x.t5x_configs",
    "audiolm_t5x.demo",
)

# Commands as `python -m` runs them (runpy with run_name="__main__").
COMMANDS = (
    "pipelines.tokenize_corpus",
    "pipelines.fit_kmeans",
    "tasks.inspect_task",
    "audiolm_t5x.pipelines.tokenize_corpus",
    "audiolm_t5x.tasks.inspect_task",
    "audiolm_t5x.demo",
)

_CHECK = r"""
import collections, importlib, json, os, runpy, sys
root = os.path.realpath(sys.argv[1])
steps = json.loads(sys.argv[2])
for kind, name in steps:
  if kind == "import":
    importlib.import_module(name)
  else:  # run as `python -m name --help` would
    sys.argv = [name, "--help"]
    try:
      runpy.run_module(name, run_name="__main__", alter_sys=True)
    except SystemExit as e:
      assert e.code in (0, None), (name, e.code)
import seqio
import audiolm_t5x.tasks.audiolm as audiolm
by_file = collections.defaultdict(set)
for mod_name, mod in list(sys.modules.items()):
  f = getattr(mod, "__file__", None)
  if mod_name in ("__main__", "__mp_main__") or not f:  # runpy's copies
    continue
  f = os.path.realpath(f)
  if f.startswith(root + os.sep):
    by_file[f].add(id(mod))
twice = sorted(f for f, ids in by_file.items() if len(ids) > 1)
same = {}
for generic in ("pipelines", "tasks", "t5x_configs", "tasks.audiolm",
                "pipelines.tokenize_corpus"):
  if generic in sys.modules:
    same[generic] = sys.modules[generic] is sys.modules["audiolm_t5x." + generic]
tasks = [n for n in seqio.TaskRegistry.names() if n.startswith("audiolm_")]
print(json.dumps({"twice": twice, "same": same, "tasks": sorted(tasks),
                  "spec": audiolm.__spec__.name}))
"""


def _run(steps) -> dict:
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  env.pop("PYTHONPATH", None)
  proc = subprocess.run(
      [sys.executable, "-c", _CHECK, str(ROOT), json.dumps(steps)],
      cwd=ROOT, capture_output=True, text=True, env=env, check=False,
      timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


EXPECTED_TASKS = sorted([
    "audiolm_semantic_v001", "audiolm_coarse_v001", "audiolm_fine_v001",
    "audiolm_piano_semantic_v001", "audiolm_piano_acoustic_v001",
    "audiolm_semantic_prompt_v001", "audiolm_piano_semantic_prompt_v001"])


@pytest.mark.parametrize("order", [
    # canonical names first, then the generic ones
    tuple(reversed(DOCUMENTED_IMPORTS)),
    # generic names first (the failing case: tasks.audiolm, then
    # anything that imports audiolm_t5x)
    DOCUMENTED_IMPORTS,
])
def test_any_import_order_loads_each_file_once(order):
  got = _run([["import", n] for n in order])
  assert got["twice"] == []
  assert all(got["same"].values()), got["same"]
  assert got["tasks"] == EXPECTED_TASKS  # registered once: no duplicate error
  assert got["spec"] == "audiolm_t5x.tasks.audiolm"


def test_commands_and_imports_in_one_process():
  steps = [["run", c] for c in COMMANDS]
  steps[2:2] = [["import", "tasks.audiolm"]]
  steps.append(["import", "pipelines.tokenize_corpus"])
  got = _run(steps)
  assert got["twice"] == []
  assert got["same"]["tasks.audiolm"] is True
  assert got["same"]["pipelines.tokenize_corpus"] is True
  assert got["tasks"] == EXPECTED_TASKS


def test_python_dash_m_from_the_root():
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  env.pop("PYTHONPATH", None)
  for command in ("pipelines.tokenize_corpus",):
    proc = subprocess.run([sys.executable, "-m", command, "--help"], cwd=ROOT,
                          capture_output=True, text=True, env=env,
                          check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage: ")


def _module_names(folder: pathlib.Path) -> set:
  names = set()
  for path in folder.rglob("*.py"):
    if "build" in path.relative_to(ROOT).parts[:1]:
      continue
    names.add(path.stem)
    names.update(p.name for p in path.relative_to(ROOT).parents
                 if p.name)
  return names


def test_no_module_shadows_the_standard_library():
  ours = set()
  for top in ("audiolm_t5x", "pipelines", "tasks", "t5x_configs",
              "benchmarks", "tests"):
    ours |= _module_names(ROOT / top)
  ours |= {"audiolm_t5x", "pipelines", "tasks", "t5x_configs"}
  clash = sorted((ours - {"__init__", "__main__"}) &
                 set(sys.stdlib_module_names))
  assert clash == []


def test_the_check_sees_a_shadowing_name():
  # the rule would catch the modules this project used to have
  assert {"tokenize", "inspect"} <= set(sys.stdlib_module_names)

