"""Evaluate generated continuations (a Beam job; DirectRunner by default).

  python -m pipelines.evaluate_continuations --generated=/data/generated \
    --output_dir=/data/generated/evaluation

Writes evaluation.json, evaluation.md and PNG plots; see
:mod:`audiolm_t5x.pipelines.evaluation.continuations` for the metrics.
"""

import sys

from audiolm_t5x.pipelines import options  # noqa: F401  (before Beam: quiets its import-time warning)  pylint: disable=unused-import
from audiolm_t5x.pipelines.evaluation import continuations

if __name__ == "__main__":
  sys.exit(continuations.main())
