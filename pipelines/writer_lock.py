"""One writer per output directory: a lock file held by the job's launcher.

``<output_dir>/_WRITER_LOCK.json`` names the job holding the directory (host,
pid, command, start time) and carries a heartbeat the launcher refreshes
every ``heartbeat_seconds`` while the job runs. A second job on the same
directory refuses to start with a message naming the holder.

A lock left behind by a job killed without cleaning up (``kill -9``, a lost
VM) is recovered by this rule, checked at start:

* the holder ran on this host and its pid is gone: taken over at once;
* otherwise, its heartbeat is older than ``stale_seconds`` (default 15
  minutes): taken over;
* ``--break_lock`` takes the lock whatever its state (for a holder on
  another machine that is known to be dead).

Every takeover is printed. On the local filesystem the lock is created with
``O_CREAT | O_EXCL`` (atomic); on object stores (``gs://``) Beam's
FileSystems offers no create-if-absent, so the lock is written and read back
(a window of a few milliseconds in which two launchers started at the same
instant could both pass).
"""

from __future__ import annotations

import json
import os
import posixpath
import socket
import threading
import time
import uuid
from typing import Optional

from apache_beam.io.filesystems import FileSystems

from .options import UserError

LOCK_FILENAME = "_WRITER_LOCK.json"
DEFAULT_STALE_SECONDS = 900.0
DEFAULT_HEARTBEAT_SECONDS = 60.0


class LockHeldError(UserError):
  """Another live job holds the output directory."""


def lock_path(output_dir: str) -> str:
  return posixpath.join(output_dir.rstrip("/"), LOCK_FILENAME)


def _is_local(path: str) -> bool:
  return "://" not in path


def _read(path: str) -> Optional[dict]:
  try:
    with FileSystems.open(path) as f:
      return json.loads(f.read().decode("utf-8"))
  except Exception:  # pylint: disable=broad-except
    if FileSystems.exists(path):
      return {}  # present but unreadable (torn write): treat as stale
    return None


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def stale_reason(holder: dict, *, stale_seconds: float,
                 now: Optional[float] = None) -> Optional[str]:
  """Why a lock's holder is considered dead, or None if it may be alive."""
  now = time.time() if now is None else now
  if not holder:
    return "the lock file is unreadable"
  if holder.get("host") == socket.gethostname() and not _pid_alive(
      int(holder.get("pid", -1))):
    return f"its process {holder.get('pid')} on this host is gone"
  age = now - float(holder.get("heartbeat_unix", 0))
  if age > stale_seconds:
    return (f"its heartbeat is {age:.0f} s old (over --lock_stale_seconds="
            f"{stale_seconds:.0f})")
  return None


class WriterLock:
  """The lock of one output directory; use as a context manager.

  Args:
    output_dir: the job's output directory (any Beam filesystem).
    command: the job's command line (shown to a refused second job).
    break_lock: take the lock whatever its state.
    stale_seconds: heartbeat age after which a lock counts as abandoned.
    heartbeat_seconds: how often the holder refreshes its heartbeat.
    log: where takeover notices go (``print`` by default).
  """

  def __init__(self, output_dir: str, *, command: str = "",
               break_lock: bool = False,
               stale_seconds: float = DEFAULT_STALE_SECONDS,
               heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS,
               log=print):
    self.path = lock_path(output_dir)
    self._dir = output_dir.rstrip("/")
    self._break = break_lock
    self._stale = stale_seconds
    self._beat = heartbeat_seconds
    self._log = log
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None
    self.token = uuid.uuid4().hex
    self.holder = {
        "token": self.token, "host": socket.gethostname(), "pid": os.getpid(),
        "command": command, "started_unix": time.time()}

  def _payload(self) -> bytes:
    return json.dumps({**self.holder, "heartbeat_unix": time.time()},
                      sort_keys=True).encode("utf-8")

  def _create(self) -> bool:
    """Creates the lock if absent; False if someone else holds it."""
    if _is_local(self.path):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        return False
      with os.fdopen(fd, "wb") as f:
        f.write(self._payload())
      return True
    if FileSystems.exists(self.path):
      return False
    with FileSystems.create(self.path) as f:
      f.write(self._payload())
    time.sleep(0.05)
    return (_read(self.path) or {}).get("token") == self.token

  def acquire(self) -> "WriterLock":
    if not FileSystems.exists(self._dir):
      FileSystems.mkdirs(self._dir)
    for _ in range(3):
      if self._create():
        break
      holder = _read(self.path)
      if holder is None:  # released meanwhile
        continue
      reason = ("--break_lock was given" if self._break else
                stale_reason(holder, stale_seconds=self._stale))
      if reason is None:
        started = time.strftime(
            "%Y-%m-%d %H:%M:%S UTC",
            time.gmtime(float(holder.get("started_unix", 0))))
        raise LockHeldError(
            f"{self._dir} is being written by another job (host "
            f"{holder.get('host')}, pid {holder.get('pid')}, started "
            f"{started}: {holder.get('command', '')!r}). Wait for it to "
            "finish or use another --output_dir; if that job is dead, "
            "rerun with --break_lock")
      self._log(f"taking over the writer lock {self.path}: {reason} (was "
                f"host {holder.get('host')}, pid {holder.get('pid')})")
      FileSystems.delete([self.path])
    else:
      raise LockHeldError(f"could not take the writer lock {self.path}")
    self._thread = threading.Thread(target=self._heartbeat, daemon=True,
                                    name="writer-lock-heartbeat")
    self._thread.start()
    return self

  def _heartbeat(self) -> None:
    while not self._stop.wait(self._beat):
      try:
        if (_read(self.path) or {}).get("token") != self.token:
          return  # taken over (--break_lock elsewhere): stop refreshing
        tmp = f"{self.path}.tmp-{uuid.uuid4().hex}"
        with FileSystems.create(tmp) as f:
          f.write(self._payload())
        if not _is_local(self.path):  # object stores: no rename-over
          FileSystems.delete([self.path])
        FileSystems.rename([tmp], [self.path])
      except Exception:  # pylint: disable=broad-except
        pass  # a missed beat only makes the lock look older

  def release(self) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=5)
    if (_read(self.path) or {}).get("token") == self.token:
      FileSystems.delete([self.path])

  def __enter__(self) -> "WriterLock":
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()
