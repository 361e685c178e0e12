"""What `towergraph run` shows while the pipeline runs, and where everything else goes.

The console gets one line per TFX component (waiting / running / cached / done, seconds), one
line per training epoch (trainer/progress.py) and, from the caller, the run summary. Everything
else - TensorFlow's C++ and Python logs, absl, Beam and its worker processes, Google client
FutureWarnings, TFX's own INFO logs - goes to a log file under the output folder:

  * `quiet_output(log_path)` redirects file descriptors 1 and 2 to the log (os.dup2) while the
    pipeline runs, because TensorFlow's C++ runtime writes to fd 2 directly and Beam's
    multi-processing workers are child processes that inherit the descriptors; sys.stdout,
    sys.stderr and Python logging follow the same file. The display writes to a saved
    duplicate of the original stdout (or, when stdout is not a file descriptor - pytest's
    capsys - to the original sys.stdout object).
  * `ComponentProgress` is a logging.Handler that turns TFX's LocalDagRunner and launcher
    log records (tfx/orchestration/local/local_dag_runner.py, portable/launcher.py) into
    component events, and the "towergraph.training" records into epoch lines.
  * On a terminal the events drive a live `rich` table; elsewhere (CI, pipes) they are plain
    lines, one per event, with no cursor movement or colour.
"""

import contextlib
import datetime
import logging
import os
import sys
import time
from typing import Dict, Iterator, List, Optional, TextIO

# The logger of trainer/progress.py's epoch lines (defined here: this module must not import
# TensorFlow, whose start-up output has to land in the log file).
TRAINING_LOGGER = "towergraph.training"
# TFX 1.16's log messages (their format strings) that mark a component's life.
COMPONENT_RUNNING = "Component %s is running."       # local_dag_runner.py
COMPONENT_FINISHED = "Component %s is finished."     # local_dag_runner.py
EXECUTION_CACHED = "A cached execution %d is used."  # launcher.py
EXECUTION_NEW = "Going to run a new execution %d"    # launcher.py
TFX_LOGGER = "absl"

WAITING, STARTING, RUNNING, CACHED, DONE, FAILED = (
    "waiting", "starting", "running", "cached", "done", "FAILED")
_FINISHED = (CACHED, DONE, FAILED)


def log_path_for(output_dir: str, now: Optional[datetime.datetime] = None) -> str:
    """<output_dir>/logs/run-YYYYmmdd-HHMMSS.log: one file per run, the older ones kept."""
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
    return os.path.join(output_dir, "logs", f"run-{stamp}.log")


class PlainRenderer:
    """Events as plain lines, one per event: for pipes, CI logs and tests."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def begin(self, log_path: str) -> None:
        self._write(f"full log: {log_path}")

    def start(self, components: List[str]) -> None:
        """Nothing to show until a component starts."""

    def update(self, name: str, state: str, seconds: Optional[float]) -> None:
        if state == STARTING:   # not known yet whether it runs or comes from the cache
            return
        timing = f" {seconds:7.1f} s" if seconds is not None and state in _FINISHED else ""
        self._write(f"{name:<17} {state}{timing}".rstrip())

    def note(self, name: Optional[str], text: str) -> None:
        self._write(f"{name or '':<17} {text}")

    def stop(self) -> None:
        """Nothing to tidy up: every line is already written."""


class LiveRenderer:
    """A live `rich` table of the components, epoch lines printed above it: for terminals."""

    def __init__(self, stream: TextIO):
        from rich.console import Console
        from rich.live import Live
        self.console = Console(file=stream)
        self.states: Dict[str, List] = {}      # name -> [state, started, seconds]
        # Not redirecting sys.stdout/stderr: those go to the log file while this runs.
        self.live = Live(get_renderable=self._table, console=self.console,
                         refresh_per_second=4, redirect_stdout=False, redirect_stderr=False)

    def begin(self, log_path: str) -> None:
        self.console.print(f"full log: {log_path}", highlight=False)
        self.live.start()

    def start(self, components: List[str]) -> None:
        self.states = {name: [WAITING, None, None] for name in components}
        self.live.refresh()

    def update(self, name: str, state: str, seconds: Optional[float]) -> None:
        entry = self.states.setdefault(name, [WAITING, None, None])
        if entry[1] is None:
            entry[1] = time.monotonic()
        entry[0] = RUNNING if state == STARTING else state
        entry[2] = seconds
        self.live.refresh()

    def note(self, name: Optional[str], text: str) -> None:
        self.console.print(f"{name or '':<17} {text}", highlight=False)

    def stop(self) -> None:
        self.live.stop()

    def _table(self):
        from rich.spinner import Spinner
        from rich.table import Table
        table = Table.grid(padding=(0, 2))
        if not self.states:
            table.add_row(Spinner("dots", text="loading TensorFlow and TFX", style="cyan"))
        for name, (state, started, seconds) in self.states.items():
            if state == RUNNING:
                shown = Spinner("dots", text="running", style="cyan")
                seconds = time.monotonic() - started
            else:
                style = {DONE: "green", CACHED: "blue", FAILED: "bold red"}.get(state, "dim")
                shown = f"[{style}]{state}[/]"
            table.add_row(name, shown, "" if seconds is None else f"{seconds:6.1f} s")
        return table


class ComponentProgress(logging.Handler):
    """TFX and training log records in, component events and epoch lines out to a renderer."""

    def __init__(self, renderer=None):
        """`renderer` None: only keeps track (to name a component that failed)."""
        super().__init__(level=logging.INFO)
        self.renderer = renderer
        self.current: Optional[str] = None
        self.states: Dict[str, str] = {}
        self._started = 0.0

    def start(self, components: List[str]) -> None:
        self.states = {name: WAITING for name in components}
        if self.renderer is not None:
            self.renderer.start(components)

    @contextlib.contextmanager
    def listening(self) -> Iterator["ComponentProgress"]:
        """Attached to the root logger, with TFX's and the trainer's INFO records enabled.

        The absl logger's level is pinned at INFO meanwhile: TFX's component messages are INFO
        records, and absl lowers its logger to WARNING when a component (Transform) parses
        absl's flags, which would silence every component after it.
        """
        root = logging.getLogger()
        absl_logger, training = logging.getLogger(TFX_LOGGER), logging.getLogger(TRAINING_LOGGER)
        saved_training = training.level
        requested = [absl_logger.level]
        absl_logger.setLevel(logging.INFO)
        absl_logger.setLevel = requested.append       # kept at INFO; the last wish is restored
        training.setLevel(logging.INFO)
        root.addHandler(self)
        try:
            yield self
        finally:
            root.removeHandler(self)
            del absl_logger.setLevel
            absl_logger.setLevel(requested[-1])
            training.setLevel(saved_training)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.name == TRAINING_LOGGER:
                if self.renderer is not None:
                    self.renderer.note(self.current, record.getMessage())
            elif record.name == TFX_LOGGER and record.args:
                self._tfx(record.msg, record.args[0])
        except Exception:  # noqa: BLE001  (logging's own convention: report, never raise)
            self.handleError(record)

    def _tfx(self, message: str, argument) -> None:
        if message == COMPONENT_RUNNING:
            self.current, self._started = str(argument), time.monotonic()
            self._set(STARTING)
        elif message == EXECUTION_NEW and self.current:
            self._set(RUNNING)
        elif message == EXECUTION_CACHED and self.current:
            self._set(CACHED, time.monotonic() - self._started)
        elif message == COMPONENT_FINISHED and str(argument) == self.current:
            if self.states.get(self.current) != CACHED:
                self._set(DONE, time.monotonic() - self._started)
            self.current = None

    def failed(self) -> Optional[str]:
        """Marks the component that was running as failed; returns its name (None if none)."""
        name = self.current
        if name:
            self._set(FAILED, time.monotonic() - self._started)
            self.current = None
        return name

    def _set(self, state: str, seconds: Optional[float] = None) -> None:
        self.states[self.current] = state
        if self.renderer is not None:
            self.renderer.update(self.current, state, seconds)


def renderer_for(stream: TextIO):
    """Live display on a terminal, plain lines anywhere else (or with TERM=dumb)."""
    interactive = stream.isatty() and os.environ.get("TERM", "") != "dumb"
    return LiveRenderer(stream) if interactive else PlainRenderer(stream)


def _console_stream(stream: TextIO) -> TextIO:
    """A stream that still reaches where `stream` went once fds 1 and 2 are redirected."""
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream            # not a file descriptor (pytest's capsys): unaffected
    if descriptor not in (1, 2):
        return stream
    stream.flush()
    return os.fdopen(os.dup(descriptor), "w", buffering=1, encoding=stream.encoding or "utf-8",
                     errors="replace", closefd=True)


def _console_handlers() -> List:
    """(logger, handler) pairs of handlers that write to a console stream (stdout/stderr)."""
    loggers = [logging.getLogger()] + [logger for logger in logging.Logger.manager.loggerDict
                                       .values() if isinstance(logger, logging.Logger)]
    return [(logger, handler) for logger in loggers for handler in logger.handlers
            if isinstance(handler, logging.StreamHandler)
            and not isinstance(handler, logging.FileHandler)]


@contextlib.contextmanager
def quiet_output(log_path: str, console: TextIO = None) -> Iterator[TextIO]:
    """Sends fds 1 and 2, sys.stdout/stderr and Python logging (INFO and up) to `log_path`.

    Yields the stream the display should write to: the original stdout. Everything is put
    back on exit, also after an exception, which is logged (with its traceback) first.
    """
    original = console or sys.stdout
    console = _console_stream(original)
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved_fds = [os.dup(1), os.dup(2)]
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    log = os.fdopen(log_fd, "w", buffering=1, encoding="utf-8", errors="replace")
    saved_streams = sys.stdout, sys.stderr
    root = logging.getLogger()
    saved_level = root.level
    detached = _console_handlers()
    file_handler = logging.StreamHandler(log)
    file_handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        sys.stdout = sys.stderr = log
        for logger, handler in detached:
            logger.removeHandler(handler)
            if logger is not root and not logger.propagate:
                logger.addHandler(file_handler)
        root.addHandler(file_handler)
        root.setLevel(logging.INFO)
        try:
            yield console
        except BaseException:
            logging.getLogger("towergraph").exception("the run stopped")
            raise
    finally:
        root.setLevel(saved_level)
        for logger in [root] + [logger for logger, _ in detached]:
            if file_handler in logger.handlers:
                logger.removeHandler(file_handler)
        # Console handlers added during the run (basicConfig by a library) wrote to the log.
        for logger, handler in _console_handlers():
            if getattr(handler, "stream", None) is log:
                logger.removeHandler(handler)
        for logger, handler in detached:
            logger.addHandler(handler)
        log.flush()
        sys.stdout, sys.stderr = saved_streams
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
        for descriptor in saved_fds:
            os.close(descriptor)
        log.close()
        if console is not original:
            console.close()


@contextlib.contextmanager
def verbose_output() -> Iterator[None]:
    """`--verbose`: every log record of INFO and up on stderr, as well as the native output."""
    root = logging.getLogger()
    saved_level = root.level
    handler = None
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.setLevel(saved_level)
        if handler is not None:
            root.removeHandler(handler)
