"""Which versions are served: TF Serving's file-system source with its default version policy.

TF Serving's default policy serves the latest version only (`latest { num_versions: 1 }`): when a
newer version is ready it is loaded completely, then takes the traffic, then the older one is
unloaded (states LOADING -> AVAILABLE, then UNLOADING -> END for the old one, which stays listed as
END). A request for a version that is not loaded is NOT_FOUND, even if it exists on disk.

Half-written versions never break serving: a version directory counts only once it has
saved_model.pb and its files stopped changing between two polls (at startup, at once); a version
that fails to load is reported END with the error and retried once its files change. When every
version directory disappears the loaded versions stay (TF Serving would unload them).
"""

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from serving.errors import (Code, ServingError, error_for_code, from_tf_error, invalid_argument,
                            not_found)
from serving.standin.layout import fingerprint, has_saved_model, version_dirs

LOG = logging.getLogger("serving.standin")

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclass(frozen=True)
class VersionStatus:
    state: str
    error_code: Code = Code.OK
    error_message: str = ""


def _load_error(error: Exception) -> ServingError:
    if hasattr(error, "error_code"):  # tf.errors.OpError
        return from_tf_error(error)
    code = Code.NOT_FOUND if isinstance(error, FileNotFoundError) else Code.UNKNOWN
    return error_for_code(code, f"{type(error).__name__}: {error}")


class ModelRepository:
    """The loaded versions of one model, refreshed from `base_path` by `poll()`."""

    def __init__(self, name: str, base_path, *, num_versions: int = 1,
                 labels: Optional[Mapping[str, int]] = None, loader: Optional[Callable] = None):
        if num_versions < 1:
            raise ValueError("num_versions must be at least 1")
        if loader is None:
            from serving.standin.servable import Servable
            loader = Servable.load
        self.name = name
        self.base_path = Path(base_path)
        self.num_versions = num_versions
        self.labels = {str(label): int(version) for label, version in (labels or {}).items()}
        self._loader = loader
        self._lock = threading.Lock()       # guards _servables and _status
        self._poll_lock = threading.Lock()  # one poll at a time
        self._servables: Dict[int, object] = {}
        self._status: Dict[int, VersionStatus] = {}
        self._seen: Dict[int, Tuple] = {}    # fingerprints at the previous poll
        self._failed: Dict[int, Tuple] = {}  # fingerprint at which a version failed to load
        self._warned_empty = False

    # -- lookups (any thread) -----------------------------------------------------------------

    def servable(self, version: Optional[int] = None, label: Optional[str] = None):
        """The servable a request names: latest loaded, a specific version, or a labelled one."""
        if version is not None and label is not None:
            raise invalid_argument(f"Both model version ({version}) and model version label "
                                   f"({label}) cannot be supplied.")
        version = self.label_version(label) if label is not None else version
        with self._lock:
            if version is None:
                if self._servables:
                    return self._servables[max(self._servables)]
                servable = None
            else:
                servable = self._servables.get(version)
        if servable is None:
            request = f"Latest({self.name})" if version is None else \
                f"Specific({self.name}, {version})"
            raise not_found(f"Servable not found for request: {request}")
        return servable

    def label_version(self, label: str) -> int:
        if label not in self.labels:
            raise invalid_argument(f"Unrecognized servable version label: {label}")
        return self.labels[label]

    def statuses(self) -> List[Tuple[int, VersionStatus]]:
        """(version, status) of every version ever loaded or tried, newest first."""
        with self._lock:
            return sorted(self._status.items(), reverse=True)

    def loaded_versions(self) -> List[int]:
        with self._lock:
            return sorted(self._servables, reverse=True)

    # -- polling (the watcher thread, or the caller at startup) -----------------------------------

    def poll(self, initial: bool = False) -> None:
        """Loads the newest ready versions up to num_versions, then unloads the others."""
        with self._poll_lock:
            on_disk = version_dirs(self.base_path)
            candidates, seen = {}, {}
            for version, path in on_disk.items():
                if not has_saved_model(path):
                    continue
                seen[version] = current = fingerprint(path)
                if version in self._servables or self._failed.get(version) == current:
                    continue  # loaded, or failed as it is now (retried once its files change)
                if initial or self._seen.get(version) == current:
                    candidates[version] = current
            self._seen = seen
            self._failed = {v: fp for v, fp in self._failed.items() if v in on_disk}

            while True:
                loadable = set(candidates) | {v for v in self._servables if v in on_disk}
                wanted = sorted(loadable, reverse=True)[:self.num_versions]
                missing = [v for v in wanted if v not in self._servables]
                if not missing:
                    break
                for version in missing:
                    self._load(version, on_disk[version], candidates.pop(version))

            if wanted:
                self._warned_empty = False
                for version in set(self._servables) - set(wanted):
                    self._unload(version)
            elif self._servables and not on_disk and not self._warned_empty:
                self._warned_empty = True
                LOG.warning("no version directories under %s any more; still serving %s "
                            "version(s) %s", self.base_path, self.name, self.loaded_versions())

    def unload_all(self) -> None:
        with self._poll_lock:
            for version in list(self._servables):
                self._unload(version)

    def _set_status(self, version: int, status: VersionStatus) -> None:
        with self._lock:
            self._status[version] = status

    def _load(self, version: int, path: Path, files: Tuple) -> bool:
        self._set_status(version, VersionStatus(LOADING))
        LOG.info("Loading %s version %d from %s", self.name, version, path)
        try:
            servable = self._loader(self.name, version, path)
        except Exception as error:  # noqa: BLE001 - any failure leaves the server serving
            failure = _load_error(error)
            self._failed[version] = files
            self._set_status(version, VersionStatus(END, failure.code, failure.message))
            LOG.warning("Failed to load %s version %d (retried when its files change): %s",
                        self.name, version, failure.message)
            return False
        with self._lock:
            self._servables[version] = servable
            self._status[version] = VersionStatus(AVAILABLE)
        LOG.info("Serving %s version %d", self.name, version)
        return True

    def _unload(self, version: int) -> None:
        self._set_status(version, VersionStatus(UNLOADING))
        with self._lock:
            self._servables.pop(version, None)  # requests holding it finish on it
            self._status[version] = VersionStatus(END)
        LOG.info("Unloaded %s version %d", self.name, version)


class VersionWatcher:
    """Polls repositories every `poll_seconds` (TF Serving's --file_system_poll_wait_seconds);
    0 polls only at startup."""

    def __init__(self, repositories, poll_seconds: float):
        self.repositories = list(repositories)
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        if self.poll_seconds > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="standin-version-watcher",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            for repository in self.repositories:
                try:
                    repository.poll()
                except Exception:  # noqa: BLE001 - a bad poll must not end the watcher
                    LOG.exception("polling %s failed", repository.base_path)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
