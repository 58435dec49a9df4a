"""Tests of the T5X gin files (``audiolm_t5x.t5x_configs``).

Without T5X (CI on a fresh machine): every gin file's syntax, its includes,
that every macro the run files require is set, and that feature lengths,
vocabulary sizes, model sizes and temperatures agree with the tasks' and the
paper's constants. With T5X installed: every experiment parses and binds
under T5X's own binaries, and T5X's real ``train`` / ``infer`` binaries train
the tiny model of each stage on records written by the tokenization job,
resume from the checkpoint and sample from it.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List, NamedTuple, Tuple

import pytest
from gin import config_parser

from audiolm_t5x import constants
from audiolm_t5x import t5x_configs

CONFIG_DIR = pathlib.Path(t5x_configs.CONFIG_DIR)
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
HAVE_T5X = importlib.util.find_spec("t5x") is not None
NO_T5X = ("T5X is not installed (install it from github.com/google-research/"
          "t5x at the pinned commit; see BUILD.md section 5)")
T5X_ROOT = (pathlib.Path(importlib.util.find_spec("t5x").origin).parent.parent
            if HAVE_T5X else None)

ALL_GIN = sorted(p.relative_to(CONFIG_DIR).as_posix()
                 for p in CONFIG_DIR.rglob("*.gin"))
TRAIN_GIN = [f"train/{s}.gin" for s in t5x_configs.STAGES]
INFER_GIN = [f"infer/{s}.gin" for s in t5x_configs.STAGES]
# Stage 1 samples by continuing prompts: its infer gin reads a prompt task.
PROMPT_TASK_OF_STAGE = {
    "semantic": "audiolm_semantic_prompt_v001",
    "piano_semantic": "audiolm_piano_semantic_prompt_v001",
}
PROMPT_STAGES = tuple(PROMPT_TASK_OF_STAGE)
TASK_OF_STAGE = {
    "semantic": "audiolm_semantic_v001",
    "coarse": "audiolm_coarse_v001",
    "fine": "audiolm_fine_v001",
    "piano_semantic": "audiolm_piano_semantic_v001",
    "piano_acoustic": "audiolm_piano_acoustic_v001",
}
TEMPERATURE_OF_STAGE = {
    "semantic": constants.SEMANTIC_TEMPERATURE,
    "coarse": constants.COARSE_TEMPERATURE,
    "fine": constants.FINE_TEMPERATURE,
    "piano_semantic": constants.SEMANTIC_TEMPERATURE,
    "piano_acoustic": constants.COARSE_TEMPERATURE,
}


# --- A gin reader that needs neither T5X nor the configured modules ---------
class Ref(NamedTuple):
  name: str
  evaluate: bool


class Macro(NamedTuple):
  name: str


class _Delegate(config_parser.ParserDelegate):

  def configurable_reference(self, scoped_configurable_name, evaluate):
    return Ref(scoped_configurable_name, evaluate)

  def macro(self, macro_name):
    return Macro(macro_name)


REQUIRED = Macro("gin.REQUIRED")


def statements(path: pathlib.Path) -> List[Any]:
  with open(path) as f:
    return list(config_parser.ConfigParser(f, _Delegate()))


def _find_include(name: str) -> pathlib.Path | None:
  for root in (CONFIG_DIR, T5X_ROOT):
    if root is not None and (root / name).is_file():
      return root / name
  return None


def expand(relative: str) -> Tuple[List[Any], List[str]]:
  """Statements of a gin file with its includes expanded, in gin's order.

  Returns the statements and the includes that could not be read (T5X's run
  gins, where T5X is not installed).
  """
  out, missing = [], []
  for st in statements(CONFIG_DIR / relative):
    if isinstance(st, config_parser.IncludeStatement):
      path = _find_include(st.filename)
      if path is None:
        missing.append(st.filename)
        continue
      if path.is_relative_to(CONFIG_DIR):
        sub, sub_missing = expand(path.relative_to(CONFIG_DIR).as_posix())
      else:  # a T5X file: read it, do not follow further
        sub, sub_missing = [s for s in statements(path) if isinstance(
            s, config_parser.BindingStatement)], []
      out += sub
      missing += sub_missing
    else:
      out.append(st)
  return out, missing


def bindings(relative: str) -> Dict[Tuple[str, str], Any]:
  """Final value of each (selector, arg) binding; macros have arg ''."""
  result = {}
  for st in expand(relative)[0]:
    if isinstance(st, config_parser.BindingStatement):
      result[(st.selector, st.arg_name)] = st.value
  return result


def macros_used(value) -> set:
  if isinstance(value, Macro):
    return {value.name}
  if isinstance(value, dict):
    return set().union(*(macros_used(v) for v in value.values())) if value else set()
  if isinstance(value, (list, tuple)) and not isinstance(value, (Ref, Macro)):
    return set().union(*(macros_used(v) for v in value)) if value else set()
  return set()


# --- Without T5X --------------------------------------------------------------
def test_the_config_tree_is_complete():
  for stage in t5x_configs.STAGES:
    for kind in ("stages", "train", "infer"):
      assert f"{kind}/{stage}.gin" in ALL_GIN
  for name in ("models/audiolm_decoder.gin", "models/tiny.gin",
               "runs/pretrain.gin", "runs/infer.gin", "runs/eval.gin",
               "partitioning/tpu_v4_32.gin", "partitioning/gpu.gin"):
    assert name in ALL_GIN
  with pytest.raises(FileNotFoundError, match="no gin file"):
    t5x_configs.gin_path("train/nonexistent.gin")


@pytest.mark.parametrize("relative", ALL_GIN)
def test_gin_syntax_and_includes(relative):
  sts = statements(CONFIG_DIR / relative)
  assert sts, f"{relative} is empty"
  for st in sts:
    if isinstance(st, config_parser.IncludeStatement):
      ours = (CONFIG_DIR / st.filename).is_file()
      assert ours or st.filename.startswith("t5x/configs/runs/"), (
          f"{relative}: include {st.filename!r} is neither under "
          f"{CONFIG_DIR} nor one of T5X's run gins")


@pytest.mark.parametrize("relative", TRAIN_GIN + INFER_GIN)
def test_required_macros_are_set(relative):
  sts, missing = expand(relative)
  if HAVE_T5X:
    assert not missing, missing
  final = bindings(relative)
  required = {sel for (sel, arg), v in final.items() if not arg and v == REQUIRED}
  stage = pathlib.Path(relative).stem
  if relative.startswith("train/"):
    expected = {"MODEL_DIR"}  # the user's, on the command line
  else:
    expected = {"CHECKPOINT_PATH", "INFER_OUTPUT_DIR"}
  if HAVE_T5X:
    assert required == expected
  else:  # T5X's run gins are not readable: what ours leave open
    assert required <= expected
  used = set()
  for st in sts:
    if isinstance(st, config_parser.BindingStatement):
      used |= macros_used(st.value)
  bound = {sel for (sel, arg) in final if not arg}
  assert used - {"gin.REQUIRED"} <= bound, (
      f"{relative}: macros used but never bound: {used - bound}")


def _task_constants():
  from audiolm_t5x.tasks import audiolm  # pylint: disable=g-import-not-at-top
  return audiolm


@pytest.mark.parametrize("stage", t5x_configs.STAGES)
def test_stage_lengths_and_vocabulary_match_the_tasks(stage):
  audiolm = _task_constants()
  final = bindings(f"stages/{stage}.gin")
  task = final[("MIXTURE_OR_TASK_NAME", "")]
  assert task == TASK_OF_STAGE[stage]
  assert final[("TASK_FEATURE_LENGTHS", "")] == audiolm.TASK_FEATURE_LENGTHS[task]
  assert final[("VOCAB_SIZE", "")] == audiolm.VOCAB_SIZES[task]
  assert final[("VOCAB_SIZE", "")] % constants.VOCAB_PAD_MULTIPLE == 0
  prefix_lm = "inputs" in audiolm.TASK_FEATURE_LENGTHS[task]
  assert final.get(("models.DecoderOnlyModel",
                    "inputs_bidirectional_attention"), False) is prefix_lm
  if prefix_lm:
    assert final[("models.DecoderOnlyModel", "feature_converter_cls")] == Ref(
        "seqio.PrefixLMFeatureConverter", False)
    assert final[("seqio.PrefixLMFeatureConverter",
                  "loss_on_targets_only")] is True


@pytest.mark.parametrize("stage", t5x_configs.STAGES)
def test_macro_value_reads_the_task_through_includes(stage):
  """t5x_configs.macro_value (what pipelines.generate reads) agrees with the
  expansion above, and a binding given after the files wins."""
  for kind in ("train", "infer"):
    relative = f"{kind}/{stage}.gin"
    path = t5x_configs.gin_path(relative)
    assert t5x_configs.macro_value([path], "MIXTURE_OR_TASK_NAME") == bindings(
        relative)[("MIXTURE_OR_TASK_NAME", "")]
  assert t5x_configs.macro_value(
      [path], "MIXTURE_OR_TASK_NAME", ["MIXTURE_OR_TASK_NAME = 'x'"]) == "x"
  assert t5x_configs.macro_value([path], "NO_SUCH_MACRO") is None


@pytest.mark.parametrize("relative", TRAIN_GIN)
def test_training_follows_the_paper(relative):
  final = bindings(relative)
  net = lambda arg: final[("network.TransformerConfig", arg)]
  assert net("num_layers") == constants.NUM_LAYERS
  assert net("num_heads") == constants.NUM_HEADS
  assert net("emb_dim") == constants.D_MODEL
  assert net("head_dim") == constants.HEAD_DIM
  assert net("num_heads") * net("head_dim") == net("emb_dim")
  assert net("mlp_dim") == constants.D_FF
  assert net("vocab_size") == Macro("VOCAB_SIZE")
  assert net("dropout_rate") == Macro("DROPOUT_RATE")
  assert final[("DROPOUT_RATE", "")] == constants.DROPOUT_RATE
  assert final[("BATCH_SIZE", "")] == constants.BATCH_SIZE
  assert final[("TRAIN_STEPS", "")] == constants.TRAIN_STEPS
  assert constants.BATCH_SIZE % constants.TPU_V4_CHIPS == 0


def test_tiny_overrides_the_network_only():
  sts = statements(CONFIG_DIR / "models/tiny.gin")
  selectors = {st.selector for st in sts
               if isinstance(st, config_parser.BindingStatement)}
  assert selectors == {"network.TransformerConfig"}
  final = {st.arg_name: st.value for st in sts
           if isinstance(st, config_parser.BindingStatement)}
  assert final["num_heads"] * final["head_dim"] == final["emb_dim"]
  assert final["num_layers"] < constants.NUM_LAYERS


@pytest.mark.parametrize("stage", t5x_configs.STAGES)
def test_infer_temperatures_and_lengths(stage):
  final = bindings(f"infer/{stage}.gin")
  assert final[("TEMPERATURE", "")] == TEMPERATURE_OF_STAGE[stage]
  assert final[("decoding.temperature_sample", "temperature")] == Macro(
      "TEMPERATURE")
  assert final[("decoding.temperature_sample", "topk")] == 0
  lengths = final[("TASK_FEATURE_LENGTHS", "")]
  task = final[("MIXTURE_OR_TASK_NAME", "")]
  bidirectional = final.get(
      ("models.DecoderOnlyModel", "inputs_bidirectional_attention"), False)
  trained = bindings(f"train/{stage}.gin")
  if stage in PROMPT_STAGES:
    assert task == PROMPT_TASK_OF_STAGE[stage]
    rate = constants.SEMANTIC_RATE_HZ
    assert lengths == {
        "inputs": int(constants.PROMPT_SECONDS * rate),
        "targets": int((constants.CONTINUATION_SECONDS
                        - constants.PROMPT_SECONDS) * rate) + 1}
    # Stage 1 trains as a plain causal LM; it samples the same way.
    assert ("models.DecoderOnlyModel",
            "inputs_bidirectional_attention") not in trained
    assert bidirectional is False
  else:
    assert task == TASK_OF_STAGE[stage]
    assert bidirectional is trained[("models.DecoderOnlyModel",
                                     "inputs_bidirectional_attention")]
  assert lengths == _task_constants().TASK_FEATURE_LENGTHS[task]


def test_partitioning_is_data_parallel():
  for name in ("partitioning/tpu_v4_32.gin", "partitioning/gpu.gin"):
    final = {(st.selector, st.arg_name): st.value
             for st in statements(CONFIG_DIR / name)
             if isinstance(st, config_parser.BindingStatement)}
    assert final[("partitioning.PjitPartitioner", "num_partitions")] == 1


def test_benchmark_reads_the_stage_gins():
  sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
  try:
    import train_bench  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.pop(0)
  for stage in t5x_configs.STAGES:
    shape = train_bench.read_stage_gin(stage)
    final = bindings(f"stages/{stage}.gin")
    lengths = final[("TASK_FEATURE_LENGTHS", "")]
    assert shape.length == lengths.get("inputs", 0) + lengths["targets"]
    assert shape.vocab_size == final[("VOCAB_SIZE", "")]
  runs = train_bench.parse_runs(
      "fine/ours/256/mb=2/remat=names:query,key/prefix=xla; semantic/stock/120")
  assert [(stage, b) for stage, _, b in runs] == [("fine", 256),
                                                  ("semantic", 120)]
  assert runs[0][1] == train_bench.Variant(
      "ours", remat="names:query,key", microbatches=2, prefix="xla")
  assert runs[1][1] == train_bench.Variant()
  with pytest.raises(SystemExit, match="unknown key 'steps'"):
    train_bench.parse_runs("fine/ours/256/steps=3")


# --- With T5X -----------------------------------------------------------------
needs_t5x = pytest.mark.skipif(not HAVE_T5X, reason=NO_T5X)

USER_BINDINGS = {
    "train": ["MODEL_DIR='/tmp/unused'"],
    "infer": ["CHECKPOINT_PATH='/tmp/unused'", "INFER_OUTPUT_DIR='/tmp/unused'"],
}


@pytest.fixture
def t5x_gin():
  """Parses gin files as T5X's binaries do; restores gin and __main__ after."""
  import gin  # pylint: disable=g-import-not-at-top
  from t5x import gin_utils  # pylint: disable=g-import-not-at-top

  saved_main = sys.modules["__main__"]

  def parse(binary: str, files: List[str], extra: List[str] = ()):
    module = importlib.import_module(f"t5x.{binary}")
    sys.modules["__main__"] = module
    gin.clear_config()
    gin_utils.parse_gin_flags([str(CONFIG_DIR)], files,
                              USER_BINDINGS[binary] + list(extra),
                              finalize_config=False)
    return gin

  yield parse
  sys.modules["__main__"] = saved_main
  import gin  # pylint: disable=g-import-not-at-top,reimported
  gin.clear_config()


@needs_t5x
@pytest.mark.parametrize("relative", TRAIN_GIN + INFER_GIN)
@pytest.mark.parametrize("hardware", ["partitioning/gpu.gin",
                                      "partitioning/tpu_v4_32.gin"])
def test_experiment_binds_under_t5x(t5x_gin, relative, hardware):
  binary = relative.split("/")[0]
  stage = pathlib.Path(relative).stem
  gin = t5x_gin(binary, [relative, hardware])
  model = gin.query_parameter("%MODEL").scoped_configurable_fn()
  cfg = model.module.config
  assert cfg.num_layers == constants.NUM_LAYERS
  assert cfg.emb_dim == constants.D_MODEL
  assert cfg.vocab_size == _task_constants().VOCAB_SIZES[
      TASK_OF_STAGE[stage]]
  assert model.output_vocabulary.vocab_size == cfg.vocab_size
  assert model.output_vocabulary.eos_id == constants.EOS_ID
  partitioner = gin.query_parameter(
      f"{binary}_script.{binary}.partitioner").scoped_configurable_fn()
  assert partitioner._num_partitions == 1  # pylint: disable=protected-access


@needs_t5x
def test_model_vocabulary_matches_the_tasks(t5x_gin):
  import seqio  # pylint: disable=g-import-not-at-top
  for binary, stage in ([("train", s) for s in t5x_configs.STAGES] +
                        [("infer", s) for s in PROMPT_STAGES]):
    gin = t5x_gin(binary, [f"{binary}/{stage}.gin"])
    model = gin.query_parameter("%MODEL").scoped_configurable_fn()
    task = seqio.get_mixture_or_task(gin.query_parameter(
        "%MIXTURE_OR_TASK_NAME"))
    assert task.name == (PROMPT_TASK_OF_STAGE if binary == "infer"
                         else TASK_OF_STAGE)[stage]
    for feature in task.output_features.values():
      # What T5X's utils.verify_matching_vocabs checks at train/infer time.
      assert feature.vocabulary == model.output_vocabulary


@needs_t5x
def test_parameter_count_and_flops_of_the_paper_model(t5x_gin):
  """The benchmark's FLOP count matches the network's parameters."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
  try:
    import train_bench  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.pop(0)
  gin = t5x_gin("train", ["train/semantic.gin"])
  model = gin.query_parameter("%MODEL").scoped_configurable_fn()
  cfg = model.module.config
  shapes = jax.eval_shape(
      lambda: model.module.init(jax.random.PRNGKey(0),
                                jnp.ones((1, 8), jnp.int32),
                                jnp.ones((1, 8), jnp.int32),
                                enable_dropout=False))["params"]
  leaves = jax.tree_util.tree_leaves_with_path(shapes)
  total = sum(x.size for _, x in leaves)
  def is_matmul(path):
    names = "/".join(str(getattr(k, "key", k)) for k in path)
    return ("kernel" in names or "wi" in names or "wo" in names) and (
        "token_embedder" not in names and "relpos" not in names)
  matmul = sum(x.size for p, x in leaves if is_matmul(p) and x.ndim >= 2)
  assert matmul == train_bench.matmul_params(vocab_size=cfg.vocab_size)
  # 228.9M in all (see models/audiolm_decoder.gin): layers, 2 tables, norms.
  assert abs(total - 228.9e6) < 0.1e6, total


# --- End to end: T5X's real binaries on records from the tokenization job ----
def _run_t5x(binary: str, args: List[str], env: Dict[str, str],
             timeout: int = 240) -> str:
  cmd = [sys.executable, "-m", f"t5x.{binary}",
         f"--gin_search_paths={CONFIG_DIR}", *args]
  start = time.monotonic()
  proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                        timeout=timeout, cwd=str(REPO_ROOT))
  print(f"\nt5x.{binary} {args[0]}: {time.monotonic() - start:.0f} s")
  log = proc.stdout + proc.stderr
  assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{log[-6000:]}"
  return log


def _env(data_dir, extra_pythonpath=()) -> Dict[str, str]:
  env = dict(os.environ)
  env.update({
      "AUDIOLM_DATA_DIR": str(data_dir),
      "PYTHONPATH": os.pathsep.join(
          [str(REPO_ROOT), *map(str, extra_pythonpath),
           env.get("PYTHONPATH", "")]),
      "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": "",
      "TF_CPP_MIN_LOG_LEVEL": "3",
  })
  return env


TINY_TRAIN = ["--gin_file=models/tiny.gin", "--gin_file=partitioning/gpu.gin",
              "--gin.partitioning.PjitPartitioner.backend=None",
              "--gin.BATCH_SIZE=2", "--gin.RANDOM_SEED=0"]

# Test-only: a short validation pass (T5X's train binary takes __main__'s
# configurables from a gin file, not from --gin bindings).
TEST_EVAL_GIN = """
from __gin__ import dynamic_registration
import __main__ as train_script
train_script.train.eval_steps = 2  # T5X repeats the validation split
"""

# Decoding the full targets (2001 coarse tokens) on a CPU takes minutes; the
# smoke test samples this many tokens past the inputs.
TEST_DECODE_TOKENS = 48


@needs_t5x
@pytest.mark.parametrize("stage,then", [("semantic", "sample"),
                                        ("coarse", "evaluate"),
                                        ("fine", "sample")])
def test_tiny_stage_checkpoint_evaluates_and_samples(stage, then,
                                                     tokenized_dataset,
                                                     tmp_path, request):
  """T5X's eval and infer binaries on the tokenization job's records.

  Each stage starts from the checkpoint_2 that the speech recipe's stages 5-7
  trained with T5X's train binary (``tiny_checkpoints``; training from
  scratch and resuming are tested there and in test_resume.py, which kills
  and resumes a run). Stage 2 first evaluates a copy of that model dir alone
  with runs/eval.gin on this test's records. Each stage then samples with
  its infer gin as it ships.
  """
  from audiolm_t5x import contract  # pylint: disable=g-import-not-at-top
  audiolm = _task_constants()
  task = TASK_OF_STAGE[stage]
  vocab_size = audiolm.VOCAB_SIZES[task]
  info = contract.DatasetInfo.load(str(tokenized_dataset))
  env = _env(tokenized_dataset, [tmp_path])
  step = 2
  checkpoint = pathlib.Path(request.getfixturevalue("tiny_checkpoints")[stage])
  assert checkpoint.name == f"checkpoint_{step}", checkpoint
  if then == "evaluate":  # restores checkpoint_2, evaluates, trains nothing
    model_dir = tmp_path / "model"
    shutil.copytree(checkpoint.parent, model_dir)
    (tmp_path / "test_eval.gin").write_text(TEST_EVAL_GIN)
    log = _run_t5x("train", [
        f"--gin_file=train/{stage}.gin", *TINY_TRAIN,
        f"--gin.MODEL_DIR='{model_dir}'", "--gin_file=runs/eval.gin",
        f"--gin_file={tmp_path / 'test_eval.gin'}", "--gin.TRAIN_STEPS=2"],
                   env)
    assert f"collection=training_eval/{task}" in log, log[-3000:]
    assert "no training will be done" in log, log[-3000:]
    assert "Initializing parameters from scratch" not in log, log[-3000:]
    assert not list(model_dir.glob("checkpoint_3*"))

  out_dir = tmp_path / "samples"
  infer = [f"--gin_file=infer/{stage}.gin", "--gin_file=models/tiny.gin",
           f"--gin.CHECKPOINT_PATH='{checkpoint}'",
           f"--gin.INFER_OUTPUT_DIR='{out_dir}'",
           "--gin.utils.DatasetConfig.batch_size=2"]
  # Stage 1 continues the registered prompt task's 3 s prompts to 10 s, with
  # the infer gin as it ships; the others sample a shortened target.
  if stage in PROMPT_STAGES:
    lengths = audiolm.TASK_FEATURE_LENGTHS[PROMPT_TASK_OF_STAGE[stage]]
  else:
    lengths = dict(audiolm.TASK_FEATURE_LENGTHS[task],
                   targets=TEST_DECODE_TOKENS)
    infer.append(f"--gin.TASK_FEATURE_LENGTHS={lengths!r}")
  # Stage 1 without `inputs` would fail here: T5X's decoder-only
  # predict_batch needs a prompt (decoder_causal_attention).
  _run_t5x("infer", infer, env)
  files = [f for f in glob.glob(str(out_dir / "*.jsonl-*"))
           if not f.endswith(".COMPLETED")]
  assert files, sorted(p.name for p in out_dir.iterdir())
  rows = [json.loads(line) for f in files for line in open(f) if line.strip()]
  assert len(rows) == info.splits["dev-clean"]["records"]
  for row in rows:
    ids = [i for i in row["prediction"] if i != constants.PAD_ID]
    assert ids, row
    # T5X samples until EOS or until prompt + sample fill inputs + targets.
    assert len(ids) < sum(lengths.values()), row
    assert all(0 < i < vocab_size for i in ids), ids
