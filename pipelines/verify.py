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

import sys
import time
from typing import Optional, Sequence

from . import integrity
from . import options

PROG = "python -m pipelines.verify"


def make_parser() -> options.CommandParser:
  p = options.CommandParser(prog=PROG, description=__doc__.split("\n\n")[0],
                            beam=False)
  p.add_argument("--output_dir", required=True,
                 help="the tokenization job's output (any Beam filesystem)")
  p.add_argument("--check", default=integrity.SHA256, choices=integrity.CHECKS,
                 help="sha256 reads every shard; size compares sizes only")
  return p


def run(argv: Optional[Sequence[str]] = None) -> integrity.Report:
  """Checks ``--output_dir``; prints and returns the report."""
  args, _ = options.parse_args(make_parser(), argv)
  start = time.time()
  report = integrity.run_verify(args.output_dir, check=args.check)
  print(f"checked in {time.time() - start:.1f} s")
  return report


def main(argv: Optional[Sequence[str]] = None) -> int:
  reports = []
  status = options.main(lambda a: reports.append(run(a)), PROG, argv)
  if status == 0 and not reports[0].ok:
    return 1
  return status


if __name__ == "__main__":
  sys.exit(main())
