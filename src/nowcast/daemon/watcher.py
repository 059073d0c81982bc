"""Watching the input folder: events queue paths; the step decides when a file is ready.

Contract
--------
- :class:`ScanEventHandler` is a watchdog handler that only queues: a scan file
  (its name matches ``daemon.pattern``, it is not hidden, it is not under one of the
  ``ignore`` folders) goes into the :class:`PathQueue` as ``READY`` on a
  close-after-write event or when moved into place, and as ``SEEN`` when created
  or modified (a writer still at work, or the polling observer, which never sees a
  close); a new (or moved-in) folder is queued as ``FOLDER``, so the step lists it
  (files written before the observer watched it raise no events); any other file
  is queued as ``IGNORED``, so the step can say why it is not taken. Handlers run in
  the observer's thread and touch nothing but the queue.
- :class:`PathQueue` is thread-safe and keeps each ``(path, kind)`` once while
  queued; :meth:`~PathQueue.wait` lets the loop sleep until a ``READY`` path
  arrives (or a timeout).
- :class:`QuietTracker` (step thread only) decides readiness for ``SEEN`` files:
  ready when size and mtime have not changed for ``quiet_s`` of the step's clock.
- :func:`reconcile` lists the scan files under the input directory whose mtime
  lies within ``horizon_s`` of the newest one there: the newest scans on disk,
  which rebuild the buffer at start-up and catch what events missed (inotify
  overflow, folders created and written before they were watched). Older files
  are never touched.
- :func:`make_observer` builds a recursive inotify observer (or, with
  ``daemon.polling``, a polling one for network file systems) on the input
  directory, not started.
"""

from __future__ import annotations

import fnmatch
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)


class Kind(str, Enum):
    READY = "ready"  # closed after writing, or moved into place
    SEEN = "seen"  # created or modified: ready after the quiet time
    FOLDER = "folder"  # a new folder: list what it already holds
    IGNORED = "ignored"  # a file that is not a scan: the step logs why


@dataclass(frozen=True)
class Signature:
    """What identifies one version of a file."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> "Signature":
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


def stat_signature(path: Path) -> Signature | None:
    try:
        return Signature.of(path.stat())
    except OSError:
        return None


class PathQueue:
    """Thread-safe, de-duplicated FIFO of ``(path, kind)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[Path, Kind], None] = {}
        self._ready = threading.Event()

    def put(self, path: str | os.PathLike[str], kind: Kind) -> None:
        with self._lock:
            self._items[(Path(path), kind)] = None
        if kind is not Kind.SEEN:
            self._ready.set()

    def drain(self) -> list[tuple[Path, Kind]]:
        """Take everything queued, oldest first."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._ready.clear()
        return items

    def wait(self, timeout: float) -> bool:
        """Sleep until a READY or FOLDER item is queued or ``timeout`` passes."""
        return self._ready.wait(timeout)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def is_scan_name(name: str, pattern: str) -> bool:
    return not name.startswith(".") and fnmatch.fnmatch(name, pattern)


class ScanEventHandler(FileSystemEventHandler):
    """Queue scan paths and new folders; nothing else (see the module contract)."""

    def __init__(
        self, queue: PathQueue, pattern: str = "*.nc", ignore: Iterable[Path] = ()
    ) -> None:
        super().__init__()
        self.queue = queue
        self.pattern = pattern
        self.ignore = tuple(Path(p) for p in ignore)

    def _wanted(self, path: str | bytes) -> Path | None:
        p = Path(os.fsdecode(path))
        if any(p.is_relative_to(folder) for folder in self.ignore):
            return None
        if not is_scan_name(p.name, self.pattern):
            self.queue.put(p, Kind.IGNORED)  # the step says why, once
            return None
        return p

    def _folder(self, path: str | bytes) -> None:
        p = Path(os.fsdecode(path))
        if not p.name.startswith(".") and not any(
            p.is_relative_to(folder) for folder in self.ignore
        ):
            self.queue.put(p, Kind.FOLDER)

    def on_closed(self, event: FileClosedEvent) -> None:
        if (p := self._wanted(event.src_path)) is not None:
            self.queue.put(p, Kind.READY)

    def on_moved(self, event: FileSystemEvent) -> None:
        if isinstance(event, DirMovedEvent):
            self._folder(event.dest_path)
        elif (p := self._wanted(event.dest_path)) is not None:
            self.queue.put(p, Kind.READY)

    def on_created(self, event: FileSystemEvent) -> None:
        if isinstance(event, DirCreatedEvent):
            self._folder(event.src_path)
        elif (p := self._wanted(event.src_path)) is not None:
            self.queue.put(p, Kind.SEEN)

    def on_modified(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        if (p := self._wanted(event.src_path)) is not None:
            self.queue.put(p, Kind.SEEN)

    def on_deleted(self, event: FileSystemEvent) -> None:
        return  # a moved-away or deleted file is nothing to take


class QuietTracker:
    """Files waiting until their size and mtime have been still for ``quiet_s``."""

    def __init__(self, quiet_s: float) -> None:
        self.quiet_s = float(quiet_s)
        self._files: dict[Path, tuple[Signature | None, float]] = {}

    def observe(self, path: Path, now: float) -> None:
        """Track ``path`` (a clock time in seconds); a change restarts its wait."""
        sig = stat_signature(path)
        old = self._files.get(path)
        if old is None or old[0] != sig:
            self._files[path] = (sig, now)

    def discard(self, path: Path) -> None:
        self._files.pop(path, None)

    def adopt(self, old: QuietTracker) -> None:
        """Keep waiting for what ``old`` was waiting for (a reload)."""
        self._files.update(old._files)

    def ready(self, now: float, settle: bool = False) -> list[Path]:
        """The files still for ``quiet_s`` (all of them with ``settle``).

        Files that vanished are forgotten.
        """
        out = []
        for path, (sig, since) in list(self._files.items()):
            current = stat_signature(path)
            if current is None:
                del self._files[path]
            elif settle or (current == sig and now - since >= self.quiet_s):
                out.append(path)
                del self._files[path]
            elif current != sig:
                self._files[path] = (current, now)
        return out

    def __len__(self) -> int:
        return len(self._files)

    def __contains__(self, path: object) -> bool:
        return path in self._files


def walk_scans(
    root: Path,
    pattern: str,
    ignore: Iterable[Path] = (),
    on_ignored: Callable[[Path], None] | None = None,
) -> Iterator[tuple[Path, os.stat_result]]:
    """Every scan file under ``root`` (hidden files and folders skipped).

    ``on_ignored`` hears of the files that look like scans but are not taken: a
    hidden name matching the pattern, a dangling symbolic link.
    """
    skip = {os.path.abspath(p) for p in ignore}
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        if folder in skip:
            continue
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                if on_ignored is not None and fnmatch.fnmatch(
                    entry.name.lstrip("."), pattern
                ) and not entry.is_dir(follow_symlinks=False):
                    on_ignored(Path(entry.path))
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file() and fnmatch.fnmatch(entry.name, pattern):
                    yield Path(entry.path), entry.stat()
                elif entry.is_symlink() and on_ignored is not None:
                    on_ignored(Path(entry.path))  # dangling
            except OSError:
                continue


def reconcile(
    root: Path,
    pattern: str,
    horizon_s: float,
    ignore: Iterable[Path] = (),
    on_ignored: Callable[[Path], None] | None = None,
) -> list[tuple[Path, Signature]]:
    """The newest scan files on disk (see the module contract), oldest first."""
    found = [(p, st) for p, st in walk_scans(root, pattern, ignore, on_ignored)]
    if not found:
        return []
    newest = max(st.st_mtime for _, st in found)
    recent = [(p, st) for p, st in found if st.st_mtime >= newest - horizon_s]
    recent.sort(key=lambda item: (item[1].st_mtime, str(item[0])))
    return [(p, Signature.of(st)) for p, st in recent]


def make_observer(
    root: Path,
    handler: FileSystemEventHandler,
    *,
    polling: bool = False,
    poll_interval_s: float = 1.0,
):
    """A recursive observer on ``root`` (not started)."""
    if polling:
        from watchdog.observers.polling import PollingObserver

        observer = PollingObserver(timeout=poll_interval_s)
    else:
        from watchdog.observers import Observer

        observer = Observer()
    observer.schedule(handler, str(root), recursive=True)
    observer.daemon = True
    return observer
