"""SeqIO tasks over the token TFRecords. Importable as ``audiolm_t5x.tasks``.

``import audiolm_t5x.tasks.audiolm`` registers the tasks and mixtures.
"""

if __name__ == "tasks":  # top-level name: one module
  import audiolm_t5x  # pylint: disable=g-import-not-at-top

  audiolm_t5x.alias_top_level(__name__, __file__)
