"""Where decoded data and data checks are cached, and the key that says when to read again.

`cache_dir()` is ``$NASFORGE_CACHE`` or ``~/.cache/nasforge``; `source_key(path)` digests what
reading a folder or file depends on (every file's relative name, size and modification time), so
a changed data set gets a new key and is read again. No torch here: the sweep-file check
(`coco_format.check_path`) uses it before Lightning is imported.
"""
from __future__ import annotations

import hashlib
import os


def cache_dir() -> str:
    d = os.environ.get("NASFORGE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "nasforge")
    os.makedirs(d, exist_ok=True)
    return d


def source_key(path: str) -> str:
    """A digest of what reading ``path`` depends on: every file under a folder (relative name,
    size, modification time in ns), or the file itself (a zip)."""
    path = os.path.abspath(path)
    h = hashlib.sha1(path.encode())
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for f in sorted(files):
                st = os.stat(os.path.join(root, f))
                h.update(f"{os.path.relpath(os.path.join(root, f), path)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    else:
        st = os.stat(path)
        h.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]
