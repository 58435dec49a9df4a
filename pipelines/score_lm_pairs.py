"""sWUGGY / sBLIMP-style scores of a stage-1 T5X checkpoint.

  python -m pipelines.score_lm_pairs --data_dir=/data/zerospeech2021 \
    --checkpoint=/models/semantic/checkpoint_1000000 \
    --kmeans=/data/kmeans.npz --semantic_backend=w2v_bert \
    --output_dir=/tmp/lm_scores

See :mod:`audiolm_t5x.pipelines.evaluation.lm_scores`.
"""

import sys

from audiolm_t5x.pipelines.evaluation import lm_scores

if __name__ == "__main__":
  sys.exit(lm_scores.main())
