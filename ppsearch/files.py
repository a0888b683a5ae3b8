"""Files that are never half-written and parse errors that name their file.

Every file ppsearch writes for later reading goes through :func:`atomic_path` (write beside, then
rename over): an interruption at any moment leaves either the old file or the new one, whole;
files that belong together go through :func:`write_texts`, which does the same for the set.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Hashable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import StorageFault, UserError

PARTIAL_SUFFIX = ".partial"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a writer to fill; it replaces ``path`` when the
    block ends without an exception and is removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + PARTIAL_SUFFIX)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield an empty folder beside ``path`` to fill; when the block ends without an exception it
    replaces ``path``. Between the two renames the previous folder is ``<path>.old`` (see
    :func:`previous_directory`), so an interruption at any moment leaves one whole folder."""
    path = Path(path)
    partial, old = path.with_name(path.name + PARTIAL_SUFFIX), previous_directory(path)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
    partial.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def previous_directory(path: str | Path) -> Path:
    """Where :func:`atomic_directory` keeps the folder it is replacing until the new one is in place."""
    path = Path(path)
    return path.with_name(path.name + ".old")


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_texts(texts: Mapping[str | Path, str]) -> None:
    """Write several files as one unit (a report and its tables): each is written beside its place
    first, then all are renamed over their places with the stopping signals (Ctrl-C, SIGTERM,
    SIGHUP) held until the last rename, so an interruption leaves either the previous set or the
    new one, whole."""
    partials = {Path(path).with_name(Path(path).name + PARTIAL_SUFFIX): Path(path) for path in texts}
    try:
        for (partial, path), text in zip(partials.items(), texts.values()):
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(text)
        with _signals_held():
            for partial, path in partials.items():
                os.replace(partial, path)
    finally:
        for partial in partials:
            partial.unlink(missing_ok=True)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """The stopping signals received in the block are delivered when it ends. Only the main thread
    can set handlers, and only it is interrupted by them: another thread has nothing to hold. A
    handler installed outside Python cannot be put back, so its signal is left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    held = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
            if signal.getsignal(number) is not None}
    for number in held:
        signal.signal(number, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for number, handler in held.items():
            signal.signal(number, handler)
        for number in received:
            signal.raise_signal(number)


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=1))


def read_json(path: str | Path) -> Any:
    """The JSON document at ``path``; a damaged one is a UserError naming the file and the place."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})") \
            from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text file") from None


MAX_YAML_BYTES = 1 << 20  # a space or a configuration is a few kilobytes; more is a mistake or an attack


class _StrictLoader(yaml.SafeLoader):
    """YAML as ppsearch's files are written: no aliases (an alias bomb expands a small file into
    gigabytes) and no key given twice (YAML would silently keep the last)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed",
                                              self.peek_event().start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable):  # an unhashable key is the base class's error to name
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice",
                                                            key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path, what: str = "file") -> Any:
    """The YAML document at ``path``; a missing, unreadable, oversized or malformed one (aliases and
    repeated keys included), or one that is not a regular file, is a UserError naming the file and
    what is wrong with it and, for a syntax error, the line."""
    path = Path(path)
    try:
        size = path.stat().st_size  # follows links: a missing target or a loop is raised here
        if path.is_dir():
            raise UserError(f"{what} {path} is a directory")
        if not path.is_file():  # a FIFO or a device: reading would block or never end
            raise UserError(f"{what} {path} is not a regular file")
        if size > MAX_YAML_BYTES:
            raise UserError(f"{what} {path} is {size:,} bytes; at most {MAX_YAML_BYTES:,} are read")
        text = path.read_text()
    except FileNotFoundError:
        # a dangling link is there to be seen: say where it points rather than that nothing is there
        problem = f"is a symbolic link to {os.readlink(path)}, which does not exist" if path.is_symlink() else "does not exist"
        raise UserError(f"{what} {path} {problem}") from None
    except UnicodeDecodeError:
        raise UserError(f"{what} {path} is not a text file") from None
    except OSError as error:  # a symbolic link loop, no permission, a file where a folder should be
        problem = "is a symbolic link loop" if error.errno == errno.ELOOP else f"cannot be read: {error.strerror}"
        raise UserError(f"{what} {path} {problem}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader, stricter
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise UserError(f"{what} {path} is not valid YAML{where}: {problem}") from None


def check_output(path: str | Path, kind: str) -> Path:
    """``path`` if ppsearch can write a ``kind`` ("file" or "directory") there, checked before any
    work starts: every name fits the file system, nothing of the other kind is in the way, and the
    nearest existing folder accepts a new file (probed with a temporary file that is removed at once).
    Nothing is left behind."""
    path = Path(path)
    for part in path.parts:
        if len(part.encode()) > _NAME_MAX:
            raise UserError(f"{path}: the name {part[:20]}... is {len(part.encode())} bytes long; "
                            f"this file system allows {_NAME_MAX}")
    if path.exists() and (path.is_dir() != (kind == "directory")):
        raise UserError(f"{path} is {'a directory' if path.is_dir() else 'a file'}; a {kind} is needed there")
    folder = path if kind == "directory" and path.is_dir() else path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"{path}: {folder} is a file, not a directory")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UserError(f"{path}: cannot write in {folder} ({error.strerror or error})") from None
    return path


_NAME_MAX = 255  # bytes in one file name on Linux file systems


# what an OSError's errno says when the file system, not the data, refused a write
_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})
_PROBE_BYTES = 1 << 20  # a write this size fails on a full disk even where a smaller one still fits


def storage_fault(error: BaseException, folder: str | Path) -> str | None:
    """``path: cause`` when ``error`` came from the file system refusing a write under ``folder``
    (full, read-only, no permission), else None (the work's own failure). Libraries say a full disk
    in their own words (torch: "file write failed", numpy: "N requested and M written"), so besides
    an OSError with such an errno anywhere in the chain, a probe write into ``folder`` (or its nearest
    existing parent; nothing is created) decides."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in _STORAGE_ERRNOS:
            return f"{cause.filename or folder}: {cause.strerror}"
        cause = cause.__cause__ or cause.__context__
    folder = Path(folder)
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder) as probe:
            probe.write(bytes(_PROBE_BYTES))
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as probe_error:
        return f"{folder}: {probe_error.strerror or probe_error}"
    return None


@contextlib.contextmanager
def storage_faults(folder: str | Path) -> Iterator[None]:
    """Turn an exception of the block that came from the file system refusing a write under
    ``folder`` (:func:`storage_fault`) into a :class:`StorageFault` naming the path and the cause."""
    try:
        yield
    except UserError:
        raise
    except Exception as error:
        fault = storage_fault(error, folder)
        if fault is None:
            raise
        raise refused_write(fault) from error


def refused_write(fault: str) -> StorageFault:
    """The error of a write the file system refused (``fault``: ``path: cause``, :func:`storage_fault`)."""
    return StorageFault(f"cannot write {fault}; free space or fix the permissions there, then run the same command "
                        f"again to continue")
