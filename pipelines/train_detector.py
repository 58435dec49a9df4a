"""Train and evaluate the synthetic-speech detector.

  python -m pipelines.train_detector --real=/data/LibriSpeech/train-clean-100 \
    --generated=/data/generated --codec_backend=lyra \
    --acoustic_option=model_dir=/models/lyra --output_dir=/tmp/detector

See :mod:`audiolm_t5x.pipelines.evaluation.detector`.
"""

import sys

from audiolm_t5x.pipelines.evaluation import detector

if __name__ == "__main__":
  sys.exit(detector.main())
