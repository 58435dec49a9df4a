"""How the tokenization job's steps report: Beam counters and dead letters.

Counters live in one namespace (:data:`NAMESPACE`), so a runner's UI (the
Dataflow job page) and the pipeline result's metrics show them together. A
step that cannot use an input emits a :class:`contract.DeadLetter` on the
tagged output :data:`DEAD` instead of dropping it.
"""

from apache_beam.metrics import Metrics

NAMESPACE = "audiolm"
DEAD = "dead_letter"


def counter(name: str):
  """The job's Beam counter ``name`` (namespace :data:`NAMESPACE`)."""
  return Metrics.counter(NAMESPACE, name)
