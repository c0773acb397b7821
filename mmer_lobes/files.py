"""Crash-safe file writing: write to a temporary file beside the target, then rename.

A reader (or a resumed run) never sees a half-written manifest, score file, report or
folder (:func:`swap_in_folder`).
"""
import json
import os
import shutil
import tempfile
from contextlib import contextmanager


@contextmanager
def atomic_open(path, mode="w", encoding="utf-8"):
    """Opens a temporary file beside ``path`` and renames it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.

    Example
    -------
    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> with atomic_open(target) as f:
    ...     _ = f.write("hello")
    >>> open(target).read()
    'hello'
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(
        dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp"
    )
    kwargs = {} if "b" in mode else {"encoding": encoding}
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; give the output the permissions of a normal open().
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def atomic_write_json(path, obj, indent=2):
    """Writes ``obj`` as JSON to ``path`` atomically.

    Example
    -------
    >>> import os, tempfile, json
    >>> target = os.path.join(tempfile.mkdtemp(), "m.json")
    >>> atomic_write_json(target, {"a": 1})
    >>> json.load(open(target))
    {'a': 1}
    """
    with atomic_open(path) as handle:
        json.dump(obj, handle, indent=indent, ensure_ascii=False)
        handle.write("\n")


def atomic_write_text(path, text):
    """Writes a string to ``path`` atomically.

    Example
    -------
    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "r.md")
    >>> atomic_write_text(target, "# report")
    >>> open(target).read()
    '# report'
    """
    with atomic_open(path) as handle:
        handle.write(text)


def swap_in_folder(staging, target):
    """Puts the folder ``staging`` at ``target``: an existing ``target`` is moved aside until
    the new one is in place, then removed, so ``target`` is never half written.

    Example
    -------
    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> for name in ("old", "new"):
    ...     os.mkdir(os.path.join(root, name))
    ...     atomic_write_text(os.path.join(root, name, "f.txt"), name)
    >>> swap_in_folder(os.path.join(root, "new"), os.path.join(root, "old"))
    >>> open(os.path.join(root, "old", "f.txt")).read(), sorted(os.listdir(root))
    ('new', ['old'])
    """
    target = os.path.abspath(target)
    previous = None
    if os.path.exists(target):
        previous = tempfile.mkdtemp(dir=os.path.dirname(target), prefix=f".{os.path.basename(target)}.old.")
        os.rmdir(previous)
        os.replace(target, previous)
    os.replace(staging, target)
    if previous:
        shutil.rmtree(previous, ignore_errors=True)
