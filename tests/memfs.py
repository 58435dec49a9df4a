"""An in-memory Beam filesystem (``memfs://``), a non-local path for tests.

Beam ships no object store usable offline (its GCS and S3 filesystems need
their cloud clients), so tests that must prove a path is read through
``FileSystems`` (not ``open``/``os.path``) use this one. Importing the module
registers the scheme in the importing process (Beam finds ``FileSystem``
subclasses by their ``scheme()``); files live in :data:`FILES`.
"""

from __future__ import annotations

import hashlib
import io
import posixpath

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystem import FileMetadata
from apache_beam.io.filesystem import FileSystem

SCHEME = "memfs"
FILES: dict = {}  # "memfs://bucket/path" -> bytes
OPENED: list = []  # paths opened for reading, in order


class _Writer(io.BytesIO):

  def __init__(self, path: str):
    super().__init__()
    self._path = path

  def close(self):
    FILES[self._path] = self.getvalue()
    super().close()


class MemoryFileSystem(FileSystem):
  """Flat object store: no folders, prefix listing, like gs://."""

  @classmethod
  def scheme(cls):
    return SCHEME

  def join(self, basepath, *paths):
    return posixpath.join(basepath, *paths)

  def split(self, path):
    return posixpath.split(path)

  def mkdirs(self, path):
    pass

  def has_dirs(self):
    return False

  def _list(self, dir_or_prefix):
    for path, data in sorted(FILES.items()):
      if path.startswith(dir_or_prefix):
        yield FileMetadata(path, len(data))

  def create(self, path, mime_type="application/octet-stream",
             compression_type=CompressionTypes.AUTO):
    return _Writer(path)

  def open(self, path, mime_type="application/octet-stream",
           compression_type=CompressionTypes.AUTO):
    if path not in FILES:
      raise BeamIOError("not found", {path: FileNotFoundError(path)})
    OPENED.append(path)
    return io.BytesIO(FILES[path])

  def copy(self, source_file_names, destination_file_names):
    for s, d in zip(source_file_names, destination_file_names):
      FILES[d] = FILES[s]

  def rename(self, source_file_names, destination_file_names):
    for s, d in zip(source_file_names, destination_file_names):
      FILES[d] = FILES.pop(s)

  def exists(self, path):
    return path in FILES or any(p.startswith(path.rstrip("/") + "/")
                                for p in FILES)

  def size(self, path):
    return len(FILES[path])

  def last_updated(self, path):
    return 0.0

  def checksum(self, path):
    # Like GCS, a checksum of the object's bytes (its MD5), read from metadata.
    return hashlib.md5(FILES[path]).hexdigest()

  def metadata(self, path):
    return FileMetadata(path, len(FILES[path]))

  def delete(self, paths):
    for p in paths:
      FILES.pop(p, None)
