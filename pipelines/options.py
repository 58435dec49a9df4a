"""Command-line flags shared by the Beam jobs (tokenizer choice and options).

Job flags are parsed here; every other flag passes through unchanged to
Beam's ``PipelineOptions`` (``--runner``, ``--project``, ``--region``,
``--temp_location``, ``--setup_file``, ``--direct_running_mode``, ...).
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Sequence

from .tokenizers import base


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
      raise ValueError(f"backend option {pair!r} is not key=value")
    out[key] = _value(value)
  return out


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
  parser.add_argument(
      "--acoustic_backend", default="lyra",
      help="acoustic tokenizer: lyra (Lyra v2 SoundStream), dac, encodec, "
      "saved_model")
  parser.add_argument(
      "--acoustic_option", action="append", default=[], metavar="KEY=VALUE",
      help="option of the acoustic backend, repeatable (lyra: levels=30, "
      "pack=1, resolver=xnnpack|builtin; dac: model=PATH, levels=12)")
  parser.add_argument(
      "--lyra_dir", default=None,
      help="folder with Lyra's soundstream_encoder/quantizer/lyragan .tflite "
      "files (default: $AUDIOLM_LYRA_DIR, then the download cache)")
  parser.add_argument(
      "--lyra_download", action="store_true",
      help="download Lyra's files from github.com/google/lyra when not found "
      "(sha256-verified, cached)")


def semantic_options(args: argparse.Namespace) -> dict:
  return parse_options(args.semantic_option)


def acoustic_options(args: argparse.Namespace) -> dict:
  opts = parse_options(args.acoustic_option)
  if args.acoustic_backend == "lyra":
    if args.lyra_dir:
      opts.setdefault("model_dir", args.lyra_dir)
    if args.lyra_download:
      opts.setdefault("download", True)
  return opts


def check_backends(args: argparse.Namespace) -> None:
  """Fails early, in the launcher, on unknown backends or options."""
  base.make_semantic_embedder(args.semantic_backend, **semantic_options(args))
  if hasattr(args, "acoustic_backend"):
    base.make_acoustic_tokenizer(args.acoustic_backend,
                                 **acoustic_options(args))
