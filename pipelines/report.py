r"""Data report of a token dataset: statistics, PNG plots and report.md.

::

  python -m pipelines.report --data_dir=/data/tokens [--output_dir=DIR]

A Beam job (DirectRunner unless ``--runner`` is given; every Beam option
passes through); the work is in :mod:`audiolm_t5x.pipelines.data_report`
(statistics) and :mod:`audiolm_t5x.pipelines.report_render` (plots, text).
"""

import sys

from audiolm_t5x.pipelines import options  # noqa: F401  (before Beam: quiets its import-time warning)  pylint: disable=unused-import
from audiolm_t5x.pipelines import data_report

if __name__ == "__main__":
  sys.exit(data_report.main())
