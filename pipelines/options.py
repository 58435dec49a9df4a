"""Command-line plumbing shared by the commands (flags, errors, runner, logs).

Every command builds its flags on :class:`CommandParser` and runs through
:func:`main`:

- ``--help`` describes every flag with its default; ``--verbose`` is added;
- a flag that neither the command nor Beam's ``PipelineOptions`` knows is an
  error (:func:`parse_args`); real Beam options (``--runner``, ``--project``,
  ``--region``, ``--temp_location``, ``--setup_file``,
  ``--direct_running_mode``, ...) pass through unchanged;
- a :class:`UserError` (bad flag, missing input, unusable output, ...) is one
  short message on stderr and exit status 2, before any compute; the
  traceback only with ``--verbose``;
- with no ``--runner`` (or ``--runner=DirectRunner``) the job runs on Beam's
  in-process FnApiRunner (:func:`make_pipeline`), which is what the
  DirectRunner runs batch jobs on after first trying to download and start
  the Prism runner binary (no network unless asked: ``--runner=PrismRunner``);
- logs are quiet by default (:func:`setup_logging`): no apitools or CUDA
  noise, no Beam worker INFO lines.

Flags of the tokenizers (backend choice and ``KEY=VALUE`` options) are here
too (:func:`add_tokenizer_flags`).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import logging
import os
import shlex
import sys
import traceback
from typing import Any, Callable, Optional, Sequence

from audiolm_t5x import constants


class UserError(ValueError):
  """A mistake the user can fix: reported as one message, exit status 2."""


EXIT_USER_ERROR = 2

# Exceptions that, raised while a command checks its flags and inputs, mean
# "the user asked for something that cannot work".
INPUT_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError)


@contextlib.contextmanager
def user_errors(kinds: tuple = INPUT_ERRORS):
  """Inside the block, ``kinds`` raised by library code become ``UserError``.

  For the checks a command makes before any compute (flag values, inputs that
  are missing or malformed), where library functions raise ``ValueError`` or
  ``FileNotFoundError`` with a message already meant for the user.
  """
  try:
    yield
  except UserError:
    raise
  except kinds as e:
    raise UserError(str(e)) from e

# Backend options users type as flags by mistake (``--levels=24``).
_BACKEND_OPTION_HINTS = {
    "levels": "--acoustic_option=levels=N",
    "pack": "--acoustic_option=pack=P",
    "resolver": "--acoustic_option=resolver=NAME",
    "layer": "--semantic_option=layer=L",
    "model": "--semantic_option=model=PATH (or --acoustic_option=model=PATH)",
    "device": "--semantic_option=device=cuda",
}


class CommandParser(argparse.ArgumentParser):
  """``argparse`` with defaults in ``--help``, ``--verbose`` and short errors.

  Flags are never abbreviated (``--num_shard`` is unknown, not
  ``--num_shards``): Beam's own options would make prefixes ambiguous.
  """

  def __init__(self, *, prog: Optional[str] = None, description: str = "",
               epilog: Optional[str] = None, beam: bool = True):
    super().__init__(
        prog=prog, description=description, epilog=epilog,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False)
    self.beam = beam
    self.add_argument(
        "--verbose", action="store_true",
        help="show every log line (Beam workers, TensorFlow) and the "
        "traceback of an error")

  def error(self, message: str):
    raise UserError(message)


def _beam_parser() -> argparse.ArgumentParser:
  """A parser of every flag of Beam's ``PipelineOptions`` subclasses.

  Built as ``PipelineOptions.get_all_options`` builds it, which itself only
  logs a warning ("Discarding unparseable args") for the flags it does not
  know; here they are an error instead.
  """
  # pylint: disable=g-import-not-at-top,protected-access
  from apache_beam.options import pipeline_options as po

  parser = po._BeamArgumentParser(allow_abbrev=False)
  seen = {}
  stack = list(po.PipelineOptions.__subclasses__())
  while stack:
    cls = stack.pop()
    if str(cls) in seen:
      continue
    seen[str(cls)] = cls
    stack.extend(cls.__subclasses__())
  for cls in seen.values():
    try:
      cls._add_argparse_args(parser)
    except argparse.ArgumentError:  # a subclass re-adding a parent's flag
      pass
  return parser


def _flag_names(parser: argparse.ArgumentParser) -> list[str]:
  return sorted(s for a in parser._actions for s in a.option_strings  # pylint: disable=protected-access
                if s.startswith("--"))


def _suggest(flag: str, known: Sequence[str]) -> str:
  name = flag.split("=", 1)[0]
  bare = name.lstrip("-")
  if bare in _BACKEND_OPTION_HINTS:
    return f" (a backend option: {_BACKEND_OPTION_HINTS[bare]})"
  close = difflib.get_close_matches(name.replace("-", "_").replace(
      "__", "--", 1), known, n=1, cutoff=0.75)
  if not close:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
  return f" (did you mean {close[0]}?)" if close else ""


def parse_args(parser: CommandParser, argv: Optional[Sequence[str]] = None
               ) -> tuple[argparse.Namespace, list[str]]:
  """Parses the command's flags; returns them and the Beam flags.

  Raises:
    UserError: for a flag that neither the command nor Beam knows, or a bad
      value of a known flag.
  """
  argv = list(sys.argv[1:] if argv is None else argv)
  args, rest = parser.parse_known_args(argv)
  if not parser.beam:
    if rest:
      raise UserError(f"unknown flag {rest[0]}"
                      f"{_suggest(rest[0], _flag_names(parser))}")
    return args, []
  beam_parser = _beam_parser()
  _, unknown = beam_parser.parse_known_args(rest)
  if unknown:
    known = _flag_names(parser) + _flag_names(beam_parser)
    flag = unknown[0]
    raise UserError(
        f"unknown flag {flag}{_suggest(flag, known)}: neither this command "
        "nor Beam's PipelineOptions knows it (see --help)")
  return args, rest


def invocation(module: str) -> str:
  """How the running command was invoked: console script or ``python -m``.

  Args:
    module: the command's canonical module, used when it was called from
      Python rather than from a shell.
  """
  main_mod = sys.modules.get("__main__")
  spec = getattr(main_mod, "__spec__", None)
  if spec is not None and spec.name and spec.name.split(".")[-1] == (
      module.split(".")[-1]):
    return f"python -m {spec.name}"
  script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
  if script.startswith("audiolm-"):
    return script
  return f"python -m {module}"


def command_line(module: str, argv: Sequence[str]) -> str:
  """The command as run, for provenance (``dataset_info.json``)."""
  return " ".join([invocation(module), shlex.join(list(argv))]).strip()


# --- Beam pipelines --------------------------------------------------------------


_IN_PROCESS = ("directrunner", "switchingdirectrunner", "direct")


def pipeline_options(beam_args: Sequence[str], *, verbose: bool = False):
  """``PipelineOptions`` of the Beam flags; quiet SDK workers unless verbose."""
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=g-import-not-at-top

  beam_args = list(beam_args)
  if not verbose and not any(a.startswith("--default_sdk_harness_log_level")
                             for a in beam_args):
    beam_args.append("--default_sdk_harness_log_level=WARNING")
  return PipelineOptions(beam_args)


def runs_in_process(options) -> bool:
  """True when no runner or the DirectRunner was named (a local run)."""
  from apache_beam.options.pipeline_options import StandardOptions  # pylint: disable=g-import-not-at-top

  runner = options.view_as(StandardOptions).runner
  return runner is None or str(runner).lower() in _IN_PROCESS


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "TF_NUM_INTRAOP_THREADS")


@contextlib.contextmanager
def worker_threads(options, cpu_count: Optional[int] = None):
  """Local multi-process runs: each worker process computes on
  ``cores // workers`` threads (BLAS, OpenMP and so torch, TensorFlow's
  intra-op pool), so N workers do not each start a pool of every core and
  oversubscribe them. Only variables the user left unset are set, for the
  run (worker processes inherit them at their start)."""
  from apache_beam.options.pipeline_options import DirectOptions  # pylint: disable=g-import-not-at-top

  direct = options.view_as(DirectOptions)
  cores = cpu_count or os.cpu_count() or 1
  workers = int(direct.direct_num_workers)
  workers = cores if workers == 0 else workers  # Beam's 0: one per core
  if (not runs_in_process(options) or workers <= 1 or
      direct.direct_running_mode != "multi_processing"):
    yield {}
    return
  per = str(max(1, cores // workers))
  added = {v: per for v in _THREAD_VARS if v not in os.environ}
  os.environ.update(added)
  try:
    yield added
  finally:
    for v in added:
      os.environ.pop(v, None)


def make_pipeline(options):
  """A ``beam.Pipeline``; local runs on the in-process FnApiRunner.

  Beam's DirectRunner runs a batch job on the FnApiRunner too, but first
  tries the Prism runner, whose binary it downloads (offline: a failed
  download, a traceback in the logs and a fallback). Naming a runner
  (``--runner=DataflowRunner``, ``--runner=PrismRunner``) uses that one.
  """
  # pylint: disable=g-import-not-at-top
  import apache_beam as beam

  if not runs_in_process(options):
    return beam.Pipeline(options=options)
  from apache_beam.portability.api import beam_provision_api_pb2
  from apache_beam.runners.portability.fn_api_runner import fn_runner
  from apache_beam.runners.portability.portable_runner import JobServiceHandle

  # As SwitchingDirectRunner builds it: workers see the pipeline options.
  encoded = JobServiceHandle.encode_pipeline_options(
      options.get_all_options())
  runner = fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(
      beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)))
  return beam.Pipeline(runner=runner, options=options)


def counters(result, namespace: str = "audiolm") -> dict:
  """``{name: committed value}`` of a finished pipeline's counters."""
  out = {}
  for c in result.metrics().query()["counters"]:
    if c.key.metric.namespace == namespace:  # summed over steps
      name = c.key.metric.name
      out[name] = out.get(name, 0) + (c.committed or 0)
  return out


# --- Running a command -----------------------------------------------------------


class _DropNoise(logging.Filter):
  """Drops log lines that say nothing to a user of these commands."""

  _NOISE = (
      "apitools not found",  # Beam's GCP extras, absent on purpose
      "Discarding unparseable args",  # parse_args already refused them
  )

  def filter(self, record: logging.LogRecord) -> bool:
    try:
      message = record.getMessage()
    except Exception:  # pylint: disable=broad-except
      return True
    return not any(n in message for n in self._NOISE)


# Installed on import: commands import this module before Beam, whose import
# logs the apitools warning (a filter on the root logger drops only the lines
# above).
logging.getLogger().addFilter(_DropNoise())


def setup_logging(verbose: bool) -> None:
  """Quiet logs for a command (before Beam or TensorFlow are imported).

  Default: warnings and errors of our code and Beam, without Beam's
  "apitools not found" warning, TensorFlow's C++ logs (the ``failed call to
  cuInit`` error on machines without a GPU) and absl's INFO lines. With
  ``verbose``: everything at INFO.
  """
  root = logging.getLogger()
  if not any(isinstance(f, _DropNoise) for f in root.filters):
    root.addFilter(_DropNoise())
  if verbose:
    logging.basicConfig(level=logging.INFO, force=True,
                        format="%(levelname)s %(name)s: %(message)s")
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  logging.basicConfig(level=logging.WARNING, force=True,
                      format="%(levelname)s %(name)s: %(message)s")
  for name in ("apache_beam", "absl"):
    logging.getLogger(name).setLevel(logging.WARNING)
  import_tensorflow_quietly()


def import_tensorflow_quietly(verbose: bool = False) -> None:
  """Imports TensorFlow (if installed) with the process's stderr muted.

  TensorFlow's C++ runtime logs "Could not find cuda drivers" through absl
  before absl is initialised, which ignores ``TF_CPP_MIN_LOG_LEVEL``; on a
  machine without a GPU every command would start with those lines. The
  tokenizers and tasks import TensorFlow anyway; an import error is raised
  after stderr is restored.
  """
  if verbose or "tensorflow" in sys.modules:
    return
  # Read by TensorFlow's C++ runtime when it loads (e.g. "failed call to
  # cuInit" on machines without a GPU is an error-level line).
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  import importlib.util  # pylint: disable=g-import-not-at-top

  if importlib.util.find_spec("tensorflow") is None:
    return
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(os.devnull, "w") as devnull:
      os.dup2(devnull.fileno(), 2)
      try:
        import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
      finally:
        os.dup2(saved, 2)
  finally:
    os.close(saved)


def main(run: Callable[[Sequence[str]], Any], module: str,
         argv: Optional[Sequence[str]] = None) -> int:
  """Runs a command's ``run(argv)``; returns the process exit status.

  ``module`` is the command's canonical module name (for :func:`invocation`).
  A :class:`UserError` prints ``<command>: error: <message>`` and returns 2 (the
  traceback too with ``--verbose``); success returns 0. Console scripts and
  ``python -m`` both ``sys.exit`` with the result, so no return value is
  printed.
  """
  argv = list(sys.argv[1:] if argv is None else argv)
  prog = invocation(module)
  verbose = "--verbose" in argv
  setup_logging(verbose)
  try:
    run(argv)
  except UserError as e:
    if verbose:
      traceback.print_exc()
    print(f"{prog}: error: {e}", file=sys.stderr)
    return EXIT_USER_ERROR
  except KeyboardInterrupt:
    print(f"{prog}: interrupted", file=sys.stderr)
    return 130
  return 0


# --- Tokenizer flags -------------------------------------------------------------


def _value(text: str) -> Any:
  try:
    return json.loads(text)
  except json.JSONDecodeError:
    return text


def parse_options(pairs: Sequence[str]) -> dict:
  """``["levels=24", "model=/x"]`` -> ``{"levels": 24, "model": "/x"}``."""
  out = {}
  for pair in pairs or ():
    key, sep, value = pair.partition("=")
    if not sep or not key:
      raise UserError(f"backend option {pair!r} is not KEY=VALUE")
    out[key] = _value(value)
  return out


def add_corpus_flags(parser: argparse.ArgumentParser) -> None:
  """Where the corpus is and how it is laid out (fit_kmeans, tokenize_corpus)."""
  from audiolm_t5x.pipelines import corpus as corpus_lib  # pylint: disable=g-import-not-at-top

  parser.add_argument("--input_dir", required=True,
                      help="corpus root with <split>/ folders (or, with "
                      "--archives, a folder of .tar.gz); any Beam filesystem")
  parser.add_argument("--corpus", default=corpus_lib.LIBRISPEECH,
                      choices=corpus_lib.CORPORA,
                      help="layout of the corpus (librilight: no transcripts)")
  parser.add_argument("--splits", default="",
                      help="comma-separated split names (empty: all found)")
  parser.add_argument("--archives", action="store_true",
                      help="read the released .tar.gz archives, streamed")


def add_tokenizer_flags(parser: argparse.ArgumentParser, *,
                        acoustic: bool = True) -> None:
  """Flags that choose and configure the tokenizers."""
  parser.add_argument(
      "--semantic_backend", default="logmel",
      help="semantic embedder: logmel (weight-free), w2v_bert, hubert, "
      "wav2vec2, saved_model")
  parser.add_argument(
      "--semantic_option", action="append", default=[], metavar="KEY=VALUE",
      help="option of the semantic backend, repeatable (e.g. model=PATH, "
      "layer=7, device=cuda)")
  if not acoustic:
    return
  offered = _offered_acoustic_backends()
  parser.add_argument(
      "--acoustic_backend", default="lyra", type=_acoustic_backend,
      help="acoustic tokenizer at the data contract's "
      f"{constants.ACOUSTIC_RATE_HZ} Hz: {', '.join(offered)} (lyra: Lyra v2 "
      "SoundStream)")
  parser.add_argument(
      "--acoustic_option", action="append", default=[], metavar="KEY=VALUE",
      help="option of the acoustic backend, repeatable (lyra: levels=N, "
      "pack=P, resolver=xnnpack|builtin; dac: model=PATH, levels=12). "
      "Without levels/pack, Lyra runs at "
      f"levels={constants.LYRA_JOB_LEVELS} pack={constants.LYRA_JOB_PACK}: "
      f"{constants.LYRA_JOB_LEVELS // constants.LYRA_JOB_PACK} tokens of "
      f"{16 ** constants.LYRA_JOB_PACK} codes per frame, the layout the gin "
      "files are sized for")
  parser.add_argument(
      "--lyra_dir", default=None,
      help="folder with Lyra's soundstream_encoder/quantizer/lyragan .tflite "
      "files (default: $AUDIOLM_LYRA_DIR, then the download cache)")
  parser.add_argument(
      "--lyra_download", action="store_true",
      help="download Lyra's files from github.com/google/lyra when not found "
      "(sha256-verified, cached)")


def _offered_acoustic_backends() -> list[str]:
  from .tokenizers import base  # pylint: disable=g-import-not-at-top

  return base.contract_acoustic_backends()


def _acoustic_backend(name: str) -> str:
  """``--acoustic_backend``'s type: a backend at the contract's frame rate."""
  from .tokenizers import base  # pylint: disable=g-import-not-at-top

  offered = _offered_acoustic_backends()
  if name in offered:
    return name
  if name in base.acoustic_backends():
    cls = base.registry_class(base.ACOUSTIC, name)
    raise argparse.ArgumentTypeError(
        f"{name} is not offered: it gives {cls.nominal_rate_hz:g} Hz frames "
        f"and the data contract needs {constants.ACOUSTIC_RATE_HZ} Hz "
        "(audiolm_t5x/contract.py); use dac or lyra")
  raise argparse.ArgumentTypeError(
      f"unknown acoustic backend {name!r}; choose from {', '.join(offered)}")


def semantic_options(args: argparse.Namespace) -> dict:
  return parse_options(args.semantic_option)


def acoustic_options(args: argparse.Namespace) -> dict:
  opts = parse_options(args.acoustic_option)
  if args.acoustic_backend == "lyra":
    if "levels" not in opts and "pack" not in opts:
      opts.update(levels=constants.LYRA_JOB_LEVELS,
                  pack=constants.LYRA_JOB_PACK)
    if args.lyra_dir:
      opts.setdefault("model_dir", args.lyra_dir)
    if args.lyra_download:
      opts.setdefault("download", True)
  return opts


def check_backends(args: argparse.Namespace) -> None:
  """Fails early, in the launcher, on unknown backends or options."""
  from .tokenizers import base  # pylint: disable=g-import-not-at-top

  try:
    base.make_semantic_embedder(args.semantic_backend,
                                **semantic_options(args))
    if hasattr(args, "acoustic_backend"):
      base.make_acoustic_tokenizer(args.acoustic_backend,
                                   **acoustic_options(args))
  except (base.TokenizerError, TypeError, ValueError) as e:
    if isinstance(e, UserError):
      raise
    raise UserError(str(e)) from e
