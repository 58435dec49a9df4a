r"""Generate AudioLM continuations: ``python -m pipelines.generate``.

Prompts (audio files, or a token dataset) in; per prompt and sample a WAV of
prompt + continuation, the tokens of each stage (.npz) and a JSON of the
settings out, plus ``generation.json``. A Beam job (DirectRunner unless
``--runner`` says otherwise); see
:mod:`audiolm_t5x.pipelines.generation.job` for the steps and a Dataflow
command line, and BUILD.md's "Generate" section.
"""

import sys

from audiolm_t5x.pipelines import options  # noqa: F401  (before Beam: quiets its import-time warning)  pylint: disable=unused-import
from audiolm_t5x.pipelines.generation import job

if __name__ == "__main__":
  sys.exit(job.main())
