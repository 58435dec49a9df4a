r"""Check a tokenized dataset against its manifests.

  python -m pipelines.verify --output_dir=/data/tokens
  python -m pipelines.verify --output_dir=gs://BUCKET/tokens --check=size

Reports missing, corrupt, orphan (never committed), temporary and extra
files (see ``audiolm_t5x.pipelines.integrity``). Exit status: 0 when the
dataset is intact, 1 when problems were found, 2 on a usage error. A rerun of
the tokenization job on the same output repairs missing and corrupt shards
and removes orphans and temporaries.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence

from . import integrity


def make_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="python -m pipelines.verify",
      description=__doc__.split("\n\n")[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  p.add_argument("--output_dir", required=True,
                 help="the tokenization job's output (any Beam filesystem)")
  p.add_argument("--check", default=integrity.SHA256, choices=integrity.CHECKS,
                 help="sha256 reads every shard; size compares sizes only")
  p.add_argument("--verbose", action="store_true",
                 help="show tracebacks of errors")
  return p


def main(argv: Optional[Sequence[str]] = None, out=sys.stdout) -> int:
  args = make_parser().parse_args(argv)
  start = time.time()
  try:
    report = integrity.run_verify(args.output_dir, check=args.check, out=out)
  except integrity.UsageError as e:
    if args.verbose:
      raise
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"{time.time() - start:.1f} s", file=out)
  return 0 if report.ok else 1


if __name__ == "__main__":
  sys.exit(main())
