"""Evaluation: token quality, continuations, language-model scores and the detector."""
