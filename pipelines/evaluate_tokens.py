r"""Token and codec quality: ABX of semantic tokens, ViSQOL / PESQ / STOI of
acoustic codecs, with the paper's figures beside (a Beam job).

  python -m pipelines.evaluate_tokens --output_dir=/tmp/token_quality \
    --espeak_set --audio_dir=/data/LibriSpeech/dev-clean --max_files=20 \
    --max_seconds=10 --lyra_dir=/models/lyra

Flags: ``--help``. The job and its report live in
``audiolm_t5x.pipelines.evaluation.token_quality`` and ``.report``.
"""

import sys

from audiolm_t5x.pipelines.evaluation import token_quality

if __name__ == "__main__":
  sys.exit(token_quality.main())
