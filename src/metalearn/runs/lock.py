"""One writer per run folder: an exclusive ``flock`` on ``RUN/.lock``."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from .._util.files import _UMASK
from ..errors import RunError


class RunLock:
    """One writer per run folder: an exclusive ``flock`` on ``RUN/.lock`` for as long as a training
    writes into the folder. The kernel drops the lock when its process dies, however it dies, so a
    lock left by a killed process never blocks a resume; the file records who holds it (pid, host,
    start time) for the message a second writer gets."""

    NAME = ".lock"

    def __init__(self, folder: Path | str, advice: str = "wait for it to finish (or stop it)") -> None:
        self.path = Path(folder) / self.NAME
        self.advice = advice   # what the refused writer can do (the command's own options)
        self._fd: int | None = None

    def holder(self) -> str:
        try:
            info = json.loads(self.path.read_text())
            return (f"process {info['pid']} on {info['host']}, started "
                    f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(info['started']))}")
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def _busy(self) -> RunError:
        return RunError(f"{self.path.parent} is in use by {self.holder()}: one process writes to a run at "
                        f"a time; {self.advice}")

    def check_free(self) -> None:
        """A ``RunError`` naming the holder if another process holds the lock now."""
        import fcntl
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return  # no lock file: nobody holds it
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise self._busy() from None
            raise
        finally:
            os.close(fd)

    def acquire(self) -> RunLock:
        import fcntl
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise self._busy() from None
            try:  # the holder may have removed the file between our open and our lock: lock the new one
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
