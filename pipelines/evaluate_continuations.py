"""Evaluate generated continuations (a Beam job; DirectRunner by default).

  python -m pipelines.evaluate_continuations --generated=/data/generated \
    --output_dir=/data/generated/evaluation

Writes evaluation.json, evaluation.md and PNG plots; see
:mod:`audiolm_t5x.pipelines.evaluation.continuations` for the metrics.
"""

from audiolm_t5x.pipelines.evaluation import continuations

if __name__ == "__main__":
  continuations.run()
