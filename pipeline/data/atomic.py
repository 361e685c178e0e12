"""Replace an output directory atomically, and never leave (or delete) what is not ours.

The new content is written into a temporary sibling `.NAME.tmp-XXXXXXXX` that holds a marker
file (MARKER: our pid and host) and is renamed into place only on success. On any exception,
on Ctrl-C (KeyboardInterrupt) and on SIGTERM (turned into `Terminated` while a temporary
directory exists) it is removed before the process ends, marker last.

A run killed outright (SIGKILL, power loss) cannot clean up; the next run for the same output
removes its leftovers, but only a directory whose name matches `.NAME.tmp-<8 hex>` or
`.NAME.old-<8 hex>` AND that holds our marker AND whose process is gone from this host (or
that holds nothing but an empty marker: killed between mkdir and the marker's write).
Anything else beside the output is never touched, whatever its name. One window remains: a
SIGKILL in the microseconds between removing the marker and the final rename leaves a
temporary directory that is not provably ours, so it is left alone.

What the output may replace is the caller's decision (`check`): this module knows no layout.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import threading
import uuid
from typing import Callable, Iterator, Optional

MARKER = ".towergraph-temporary"
MARKER_LIMIT = 4096  # bytes; a bigger "marker" is not one we wrote


class Terminated(SystemExit):
    """SIGTERM arrived while a temporary directory existed; exits with status 128 + 15."""


def _write_marker(directory: str) -> None:
    content = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                          "tool": "towergraph"}).encode("utf-8")
    handle = os.open(os.path.join(directory, MARKER), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                     0o644)
    try:
        os.write(handle, content)  # one small write: the marker is whole or empty
    finally:
        os.close(handle)


def _abandoned(directory: str) -> bool:
    """True when removing `directory` (named like ours) can only remove what we wrote.

    That is: our marker names a process no longer running on this host, or the directory
    holds nothing but, at most, an empty marker (a run killed between its mkdir and the
    marker's one write): deleting it deletes no data.
    """
    marker = os.path.join(directory, MARKER)
    try:
        entries = os.listdir(directory)
        if os.path.islink(marker) or (entries and not os.path.isfile(marker)):
            return False
        if entries in ([], [MARKER]) and (not entries or os.path.getsize(marker) == 0):
            return True
        with open(marker, encoding="utf-8") as handle:
            content = json.loads(handle.read(MARKER_LIMIT + 1)[:MARKER_LIMIT])
        pid, host = content["pid"], content["host"]
    except (OSError, ValueError, TypeError, KeyError):
        return False
    if not isinstance(pid, int) or pid <= 0 or host != socket.gethostname() or \
            pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def _remove_ours(directory: str) -> None:
    """Deletes a directory we created, its marker last, so an interrupted removal is retried."""
    if not os.path.isdir(directory):
        return
    for entry in os.scandir(directory):
        if entry.name == MARKER:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(directory, MARKER))
    os.rmdir(directory)


def remove_stale(path: str) -> None:
    """Removes leftovers of killed runs for output `path` (name pattern + marker + dead pid)."""
    parent, name = os.path.split(os.path.abspath(path))
    pattern = re.compile(rf"\.{re.escape(name)}\.(tmp|old)-[0-9a-f]{{8}}")
    if not os.path.isdir(parent):
        return
    for entry in os.scandir(parent):
        if pattern.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False) and \
                _abandoned(entry.path):
            with contextlib.suppress(OSError):
                _remove_ours(entry.path)


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While active, SIGTERM raises Terminated so that `finally` blocks clean up."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def handle(signum: int, frame: object) -> None:
        signal.signal(signum, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup
        raise Terminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


@contextlib.contextmanager
def atomic_directory(path: str,
                     check: Optional[Callable[[str], None]] = None) -> Iterator[str]:
    """Yields a temporary directory beside `path` that replaces `path` only on success.

    `check(path)` runs first and raises if `path` must not be replaced. On any error or
    interruption the temporary directory is removed and an existing `path` is untouched. The
    swap is two renames on the same filesystem (a directory cannot be atomically replaced).
    """
    path = os.path.abspath(path)
    if check is not None:
        check(path)
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    remove_stale(path)
    tag = uuid.uuid4().hex[:8]
    temporary = os.path.join(parent, f".{name}.tmp-{tag}")
    with _sigterm_raises():
        os.mkdir(temporary)  # not tempfile.mkdtemp: its 0700 mode would survive the rename
        try:
            _write_marker(temporary)
            yield temporary
            os.unlink(os.path.join(temporary, MARKER))
            if os.path.exists(path):
                old = os.path.join(parent, f".{name}.old-{tag}")
                os.rename(path, old)
                try:
                    os.rename(temporary, path)
                except BaseException:
                    os.rename(old, path)
                    raise
                with contextlib.suppress(OSError):  # the new output is in place already
                    _write_marker(old)
                    _remove_ours(old)
            else:
                os.rename(temporary, path)
        finally:
            _remove_ours(temporary)
