"""SeqIO tasks over the token TFRecords. Importable as ``audiolm_t5x.tasks``.

``import audiolm_t5x.tasks.audiolm`` registers the tasks and mixtures.
"""
