"""The shared tokenized dataset fixture obeys the contract."""

import glob
import os

import tensorflow as tf

from audiolm_t5x import contract


def test_tokenized_dataset_follows_contract(tokenized_dataset):
  info = contract.DatasetInfo.load(str(tokenized_dataset))
  assert set(info.splits) == {"train-clean-100", "dev-clean"}
  assert info.acoustic_levels == 12 and info.acoustic_codebook_size == 256
  assert info.semantic_codebook_size == 16
  n = 0
  for path in sorted(glob.glob(os.path.join(tokenized_dataset, "*", "*.tfrecord"))):
    for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
      rec = contract.TokenRecord.from_example_bytes(
          raw, acoustic_levels=info.acoustic_levels)
      rec.validate(semantic_codebook_size=16, acoustic_levels=12,
                   acoustic_codebook_size=256)
      assert rec.transcript.startswith("PLACEHOLDER")
      n += 1
  assert n == 6
