r"""Write an offline piano corpus, RENDERED from generated MIDI (not recorded).

::

  python -m pipelines.make_piano_corpus --output_dir=/data/piano_rendered \
    --train_pieces=40 --dev_pieces=8 --seconds=30 --seed=0

The work is in :mod:`audiolm_t5x.pipelines.piano_corpus` (generators, the
FluidSynth rendering and the layout).
"""

import sys

from audiolm_t5x.pipelines import piano_corpus

if __name__ == "__main__":
  sys.exit(piano_corpus.main())
