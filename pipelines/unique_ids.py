"""Ids are unique in a dataset: a second source of an id is a dead letter.

Two sources can claim one record id: ``x.flac`` and ``x.wav`` in one
chapter, one chapter in two archives (both handled inside the chapter by
:func:`corpus.make_items`), or one utterance in two splits (handled here,
across the whole corpus). Rule: the first source in ``(split, path)`` order
is kept; every other one is dead-lettered (step ``duplicate``) with a reason
naming the kept source.
"""

from __future__ import annotations

import apache_beam as beam

from audiolm_t5x import contract
from . import corpus as corpus_lib
from .reporting import DEAD
from .reporting import counter


class _KeepFirstFn(beam.DoFn):

  def __init__(self):
    self._dups = counter("duplicates")
    self._failed = counter("failed")

  def process(self, element):
    item_id, items = element
    items = sorted(items, key=lambda it: (it.split, it.path))
    yield items[0]
    for dup in items[1:]:
      self._dups.inc()
      self._failed.inc()
      yield beam.pvalue.TaggedOutput(DEAD, contract.DeadLetter(
          path=dup.path, id=item_id, split=dup.split, step="duplicate",
          reason=corpus_lib.duplicate_reason(item_id, items[0].path)))


class DropDuplicateIds(beam.PTransform):
  """WorkItems -> (WorkItems with unique ids, dead letters of duplicates)."""

  def expand(self, items):
    out = (items
           | "ById" >> beam.Map(lambda it: (it.id, it))
           | "GroupIds" >> beam.GroupByKey()
           | "KeepFirst" >> beam.ParDo(_KeepFirstFn()).with_outputs(
               DEAD, main="items"))
    return out.items, out[DEAD]
