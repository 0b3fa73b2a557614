"""Downloads with checksums, retries and a partial-download guard.

A file is fetched to ``NAME.part``, its checksum verified, and only then renamed to ``NAME``; a
wrong checksum deletes the partial file and names both checksums. Tests and CI never download:
they point the datasets at a local copy (``--data-dir`` or ``METALEARN_DATA_DIR``).
"""
from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from ..errors import MetalearnError

DATA_DIR_ENV = "METALEARN_DATA_DIR"
Fetch = Callable[[str], BinaryIO]


class DownloadError(MetalearnError):
    """A download failed or its checksum did not match."""


def default_data_dir() -> Path:
    """``$METALEARN_DATA_DIR`` if set, else ``~/.cache/metalearn/data``."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else Path.home() / ".cache" / "metalearn" / "data"


def file_digest(path: Path | str, algorithm: str = "md5") -> str:
    """The hex digest of a file's bytes (``md5`` by default, any ``hashlib`` name), read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _urlopen(url: str) -> BinaryIO:
    req = urllib.request.Request(url, headers={"User-Agent": "metalearn"})
    return urllib.request.urlopen(req, timeout=60)


def download(urls: str | Sequence[str], dest: Path | str, md5: str | None = None, *,
             retries: int = 3, fetch: Fetch = _urlopen, backoff: float = 1.0) -> Path:
    """Download the first URL that works to ``dest``, verifying ``md5``; return ``dest``.

    Each URL is tried ``retries`` times with exponential backoff. An existing ``dest`` with the
    right checksum is kept as is.
    """
    dest = Path(dest)
    urls = [urls] if isinstance(urls, str) else list(urls)
    if dest.is_file() and (md5 is None or file_digest(dest) == md5):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    errors: list[str] = []
    for url in urls:
        for attempt in range(retries):
            try:
                h = hashlib.md5()
                with fetch(url) as response, open(part, "wb") as out:
                    for chunk in iter(lambda: response.read(1 << 20), b""):
                        out.write(chunk)
                        h.update(chunk)
                got = h.hexdigest()
                if md5 is not None and got != md5:
                    part.unlink(missing_ok=True)
                    raise DownloadError(f"{url} downloaded with md5 {got}, expected {md5}; the file "
                                        f"was deleted. The server may serve a changed file: place a "
                                        f"good copy at {dest} or set {DATA_DIR_ENV}")
                os.replace(part, dest)
                return dest
            except DownloadError:
                raise
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                part.unlink(missing_ok=True)
                errors.append(f"{url} (try {attempt + 1}): {exc}")
                if attempt + 1 < retries:
                    time.sleep(backoff * 2 ** attempt)
    raise DownloadError(f"could not download {dest.name}: " + "; ".join(errors[-3:])
                        + f". Download it by hand into {dest.parent} or set {DATA_DIR_ENV} to a local copy")
