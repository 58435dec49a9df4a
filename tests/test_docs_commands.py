"""README.md's and BUILD.md's command lines are true.

Every ``python -m`` line of the docs names a module that exists, and every
flag it passes is accepted by that command's parser (flags it does not know
would be errors). BUILD.md section 5's CPU smoke test (train with a middle
checkpoint, then sample) runs as written where T5X is installed.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

from audiolm_t5x import demo
from audiolm_t5x.pipelines import fit_kmeans
from audiolm_t5x.pipelines import options as options_lib
from audiolm_t5x.pipelines import tokenize_corpus
from audiolm_t5x.tasks import inspect_task

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ("README.md", "BUILD.md")

PARSERS = {
    "pipelines.tokenize_corpus": tokenize_corpus.make_parser,
    "pipelines.fit_kmeans": fit_kmeans.make_parser,
    "tasks.inspect_task": inspect_task.make_parser,
    "audiolm_t5x.demo": demo.make_parser,
}


def _blocks(doc: str) -> list[str]:
  """Code blocks of a Markdown file that hold shell (sh, bash or unnamed)."""
  blocks, current, lang = [], None, ""
  for line in (ROOT / doc).read_text().splitlines():
    if line.startswith("```"):
      if current is None:
        current, lang = [], line[3:].strip()
      else:
        if lang in ("", "sh", "bash"):
          blocks.append("\n".join(current) + "\n")
        current = None
    elif current is not None:
      current.append(line)
  return blocks


def _commands(block: str) -> list[list[str]]:
  """Shell lines of a block (continuations joined), as argv lists."""
  joined = re.sub(r"\\\n\s*", " ", block)
  out = []
  for line in joined.splitlines():
    line = line.split(" #", 1)[0].strip()
    if not line or line.startswith("#"):
      continue
    for part in line.split("&&"):
      try:
        words = shlex.split(part.strip())
      except ValueError:  # not a shell line (gin, python, Dockerfile)
        continue
      while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value cmd
        words = words[1:]
      if words:
        out.append(words)
  return out


def _python_m(doc: str) -> list[tuple[str, list[str]]]:
  out = []
  for block in _blocks(doc):
    for words in _commands(block):
      if len(words) >= 3 and words[0] in ("python", "python3") and (
          words[1] == "-m"):
        out.append((words[2], words[3:]))
  return out


@pytest.mark.parametrize("doc", DOCS)
def test_documented_modules_exist_and_accept_their_flags(doc):
  seen = set()
  for module, argv in _python_m(doc):
    if module.split(".")[0] in ("t5x", "pytest", "pip", "seqio"):
      continue
    assert importlib.util.find_spec(module) is not None, (doc, module)
    short = module.removeprefix("audiolm_t5x.") if module not in PARSERS \
        else module
    parser = PARSERS.get(module) or PARSERS.get(short)
    if parser is None:
      continue
    argv = [a for a in argv if "$(" not in a]
    options_lib.parse_args(parser(), argv)  # raises UserError on a bad flag
    seen.add(short)
  if doc == "README.md":
    assert seen == {"pipelines.tokenize_corpus", "pipelines.fit_kmeans",
                    "tasks.inspect_task", "audiolm_t5x.demo"}


def test_the_check_catches_a_wrong_flag():
  with pytest.raises(options_lib.UserError, match="unknown flag --num-shards"):
    options_lib.parse_args(tokenize_corpus.make_parser(), [
        "--input_dir=i", "--output_dir=o", "--kmeans=k", "--num-shards=4"])


def _section5_block(marker: str) -> str:
  for block in _blocks("BUILD.md"):
    if marker in block:
      return block
  raise AssertionError(f"no BUILD.md block with {marker!r}")


def _have_t5x() -> bool:
  return importlib.util.find_spec("t5x") is not None


@pytest.mark.skipif(not _have_t5x(), reason="T5X is not installed "
                    "(BUILD.md section 5 says how)")
def test_build_md_cpu_smoke_test_runs_as_written(tokenized_dataset,
                                                 tmp_path):
  """The smoke-test train command (checkpoints 5 and 10), then sampling."""
  from audiolm_t5x import t5x_configs  # pylint: disable=g-import-not-at-top

  def substitute(text: str) -> str:
    return (text.replace("$(python3 -m audiolm_t5x.t5x_configs)",
                         t5x_configs.CONFIG_DIR)
            .replace("/tmp/audiolm_demo/tokens", str(tokenized_dataset))
            .replace("/tmp/audiolm_smoke", str(tmp_path)))

  train_block = substitute(_section5_block("SaveCheckpointConfig.period=5"))
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env["PYTHONPATH"] = str(ROOT)
  env["CUDA_VISIBLE_DEVICES"] = ""
  (export,) = [w for w in _commands(train_block.split("\n", 1)[0])]
  assert export[0] == "export"
  for assignment in export[1:]:
    key, value = assignment.split("=", 1)
    env[key] = value
  (train,) = _commands(train_block.split("\n", 1)[1])
  infer_block = substitute(_section5_block("checkpoint_10'"))
  (infer,) = _commands(infer_block)

  for argv in (train, infer):
    assert argv[0] == "python3"
    proc = subprocess.run([sys.executable, *argv[1:]], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=900,
                          check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
  model_dir = tmp_path / "semantic"
  assert (model_dir / "checkpoint_5").is_dir()  # the middle checkpoint
  assert (model_dir / "checkpoint_10").is_dir()
  samples = [p for p in (model_dir / "samples").glob("*.jsonl-*")
             if not p.name.endswith(".COMPLETED")]
  assert samples and samples[0].read_text().strip()
