"""Model files on any Beam filesystem, staged to local disk once per worker.

Tokenizers load models with libraries that want local paths (TFLite
interpreters, ``np.load``). On Dataflow the files live in ``gs://``; a
worker copies each one once, through Beam's ``FileSystems``, into
``$AUDIOLM_STAGING_DIR`` (default ``<tmp>/audiolm_t5x_staging``), and every
later load in that process or another process of the same worker reuses the
copy while the source is unchanged: same path, size, modification time and
the filesystem's checksum (GCS: the object's CRC32C or MD5), recorded beside
the copy. A model rewritten in place (a refitted codebook has the same size)
is copied again. Local paths are returned unchanged.

Example::

  staging.local_path("gs://bucket/kmeans.npz")
  # -> "/tmp/audiolm_t5x_staging/3f2a.../kmeans.npz"
  staging.local_dir("gs://bucket/lyra", ["quantizer.tflite", ...])
  # -> "/tmp/audiolm_t5x_staging/9c01.../" holding those files
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import tempfile
import threading
import uuid
from typing import Sequence

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

ENV_VAR = "AUDIOLM_STAGING_DIR"
_LOCK = threading.Lock()
_STAGED: dict = {}  # source path -> (its stamp, local path) (this process)


def is_local(path: str) -> bool:
  return "://" not in path


def staging_root() -> str:
  return os.environ.get(ENV_VAR) or os.path.join(tempfile.gettempdir(),
                                                 "audiolm_t5x_staging")


def _folder_of(source_dir: str) -> str:
  key = hashlib.sha256(source_dir.encode("utf-8")).hexdigest()[:24]
  return os.path.join(staging_root(), key)


def _stamp(source: str) -> dict:
  """What identifies this version of ``source``, without reading its data."""
  found = FileSystems.match([source])[0].metadata_list
  if not found:
    raise FileNotFoundError(f"{source}: not found")
  try:
    checksum = FileSystems.checksum(source)
  except (NotImplementedError, BeamIOError):
    checksum = ""
  return {"size": found[0].size_in_bytes,
          "updated": found[0].last_updated_in_seconds, "checksum": checksum}


def _stamp_path(dest: str) -> str:
  return os.path.join(os.path.dirname(dest),
                      f".{os.path.basename(dest)}.source")


def _staged_stamp(dest: str):
  """The stamp recorded beside a staged copy, or None."""
  try:
    with open(_stamp_path(dest), encoding="utf-8") as f:
      return json.load(f)
  except (FileNotFoundError, ValueError):
    return None


def _copy(source: str, dest: str, stamp: dict) -> None:
  expected = stamp["size"]
  if (os.path.isfile(dest) and os.path.getsize(dest) == expected
      and _staged_stamp(dest) == stamp):
    return  # staged by another process of this worker
  os.makedirs(os.path.dirname(dest), exist_ok=True)
  tmp = f"{dest}.tmp-{uuid.uuid4().hex}"
  try:
    with FileSystems.open(source) as src, open(tmp, "wb") as dst:
      while True:
        chunk = src.read(1 << 22)
        if not chunk:
          break
        dst.write(chunk)
    if os.path.getsize(tmp) != expected:
      raise IOError(f"{source}: copied {os.path.getsize(tmp)} of {expected} "
                    "bytes")
    # The copy first, its stamp second: a stamp that matches always describes
    # the file in place (a reader between the two sees a mismatch and copies).
    os.replace(tmp, dest)
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump(stamp, f)
    os.replace(tmp, _stamp_path(dest))
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def local_path(path: str) -> str:
  """A local copy of the file ``path`` (``path`` itself when local)."""
  if is_local(path):
    return path
  stamp = _stamp(path)
  with _LOCK:
    if _STAGED.get(path, (None,))[0] != stamp:
      dest = os.path.join(_folder_of(posixpath.dirname(path)),
                          posixpath.basename(path))
      _copy(path, dest, stamp)
      _STAGED[path] = (stamp, dest)
    return _STAGED[path][1]


def local_dir(path: str, names: Sequence[str]) -> str:
  """A local folder holding ``names`` from the folder ``path``."""
  if is_local(path):
    return path
  for name in names:
    local_path(posixpath.join(path.rstrip("/"), name))
  return _folder_of(path.rstrip("/"))
