"""Writing a file so that no reader ever sees half of it.

Every file a run leaves (reports, chunks, weights, stored programs) goes
through `atomic_write`: the content goes to a fresh temporary name in the
same folder and is renamed over the target, which POSIX makes atomic. A run
killed mid-write leaves the old file whole (and at most a stray ``*.tmp``);
two processes writing the same file each rename a complete one of their own,
the last one winning — which the stored programs rely on when two pinned
processes trace the same program at once.
"""

from __future__ import annotations

from collections.abc import Callable
import os
import secrets


def atomic_write(path: str, write: Callable[[str], object]) -> None:
  """Calls `write(tmp)` on a fresh temporary path beside `path`, then renames it to `path`.

  The temporary name is unique to the call (process id and a random tag), so
  concurrent writers never share one; it is removed if `write` or the rename
  fails, and the error propagates. The folder must exist.

  >>> import tempfile
  >>> folder = tempfile.mkdtemp()
  >>> def write(tmp):
  ...   with open(tmp, 'w') as f:
  ...     f.write('whole')
  >>> atomic_write(os.path.join(folder, 'a.txt'), write)
  >>> sorted(os.listdir(folder)), open(os.path.join(folder, 'a.txt')).read()
  (['a.txt'], 'whole')
  """
  tmp = f'{path}.{os.getpid()}-{secrets.token_hex(4)}.tmp'
  try:
    write(tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
