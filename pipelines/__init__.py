"""Apache Beam jobs: corpus audio in, TFRecords of semantic and acoustic tokens out.

Importable as ``audiolm_t5x.pipelines``; run from the repository root as
``python -m pipelines.tokenize`` / ``python -m pipelines.fit_kmeans``, or
anywhere once installed as ``python -m audiolm_t5x.pipelines.tokenize``.
"""
