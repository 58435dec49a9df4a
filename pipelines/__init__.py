"""Apache Beam jobs: corpus audio in, TFRecords of semantic and acoustic tokens out.

Importable as ``audiolm_t5x.pipelines``; run from the repository root as
``python -m pipelines.tokenize_corpus`` / ``python -m pipelines.fit_kmeans``,
or anywhere once installed as ``python -m audiolm_t5x.pipelines.tokenize_corpus``.
Both names are one module (see ``audiolm_t5x/__init__.py``).

The tokenization job's steps: :mod:`read_corpus` (list and join the corpus),
:mod:`tokenize_audio` (decode and tokenize), :mod:`write_shards` (commit
shards, manifests and ``dataset_info.json``); :mod:`reporting` holds their
counter namespace and dead-letter tag.
"""

if __name__ == "pipelines":  # top-level name: one module
  import audiolm_t5x  # pylint: disable=g-import-not-at-top

  audiolm_t5x.alias_top_level(__name__, __file__)
