"""The recorder's writer thread: all disk I/O happens here, never in the ROS executor.

The executor thread only hands over references to the serialised bytes it received; a slow
disk then delays the bag, not the DDS readers (whose history would otherwise overflow and
drop camera frames). The queue is bounded in bytes; when it overflows, messages are counted
as dropped and reported, never silently lost. Errors (disk full, directory gone) stop the
episode and are handed back to the executor thread to report.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path

from qt_data_logger.bag_writer import EpisodeBagWriter


@dataclass
class WriteResult:
    """What happened to one episode once the writer thread is done with it."""

    episode_id: str
    path: Path
    ok: bool
    outcome: str = ""
    messages: int = 0
    bytes_written: int = 0
    parts: int = 0
    error: str = ""
    discarded: bool = False


class BagIO:
    """A single writer thread that executes bag commands in the order they were submitted."""

    def __init__(self, queue_limit_bytes: int):
        self.queue_limit_bytes = int(queue_limit_bytes)
        self._queue: queue.Queue[tuple] = queue.Queue()
        self._queued_bytes = 0
        self._lock = threading.Lock()
        self._results: queue.Queue[WriteResult] = queue.Queue()
        self._failed: set[str] = set()  # episode ids whose writer raised
        self._open: dict[str, EpisodeBagWriter] = {}  # adopted, not yet finalised or discarded
        self._thread = threading.Thread(target=self._run, name="bag-writer", daemon=True)
        self._thread.start()

    # ---- executor-thread side -------------------------------------------------------------

    def adopt(self, writer: EpisodeBagWriter) -> None:
        """Hand an opened writer to the thread; from now on only the thread touches it."""
        self._queue.put(("adopt", writer))

    def write(self, writer: EpisodeBagWriter, topic: str, log_time_ns: int, data: bytes) -> bool:
        """Queue one message; False if the byte budget is exhausted (caller counts a drop)."""
        size = len(data)
        with self._lock:
            if self._queued_bytes + size > self.queue_limit_bytes:
                return False
            self._queued_bytes += size
        self._queue.put(("write", writer, topic, log_time_ns, data))
        return True

    def finalize(self, writer: EpisodeBagWriter, custom_data: dict[str, str]) -> None:
        self._queue.put(("finalize", writer, dict(custom_data)))

    def discard(self, writer: EpisodeBagWriter) -> None:
        self._queue.put(("discard", writer))

    def results(self) -> list[WriteResult]:
        """Episodes finished (written, discarded or failed) since the last call."""
        out = []
        while True:
            try:
                out.append(self._results.get_nowait())
            except queue.Empty:
                return out

    @property
    def queued_bytes(self) -> int:
        with self._lock:
            return self._queued_bytes

    def close(self, timeout: float = 60.0) -> None:
        """Finish every queued command, then stop the thread."""
        self._queue.put(("stop",))
        self._thread.join(timeout=timeout)

    # ---- writer-thread side ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                command = self._queue.get(timeout=0.25)
            except queue.Empty:
                self._flush_idle()
                continue
            kind = command[0]
            if kind == "stop":
                return
            if kind == "write":
                _, writer, topic, log_time_ns, data = command
                with self._lock:
                    self._queued_bytes -= len(data)
                if writer.episode_id in self._failed:
                    continue
                try:
                    writer.write(topic, log_time_ns, data)
                except Exception as exc:
                    self._fail(writer, exc)
            elif kind == "adopt":
                self._failed.discard(command[1].episode_id)
                self._open[command[1].episode_id] = command[1]
            elif kind == "finalize":
                self._open.pop(command[1].episode_id, None)
                self._finalize(command[1], command[2])
            elif kind == "discard":
                writer = command[1]
                self._open.pop(writer.episode_id, None)
                writer.discard()
                self._results.put(WriteResult(writer.episode_id, writer.path, ok=True, discarded=True))

    def _flush_idle(self) -> None:
        """No message for a while: still put what is held in memory on disk every flush interval,
        so a SIGKILL loses at most about that much of an episode even when its topics went quiet."""
        for writer in list(self._open.values()):
            if writer.episode_id in self._failed or not writer.flush_due():
                continue
            try:
                writer.flush()
            except Exception as exc:
                self._fail(writer, exc)

    def _finalize(self, writer: EpisodeBagWriter, custom_data: dict[str, str]) -> None:
        if writer.episode_id in self._failed:
            return  # the failure was already reported
        try:
            writer.finalize(custom_data)
        except Exception as exc:
            self._fail(writer, exc)
            return
        self._results.put(
            WriteResult(
                writer.episode_id,
                writer.path,
                ok=True,
                outcome=custom_data.get("outcome", ""),
                messages=writer.message_count,
                bytes_written=writer.bytes_written,
                parts=writer.parts,
            )
        )

    def _fail(self, writer: EpisodeBagWriter, exc: Exception) -> None:
        self._failed.add(writer.episode_id)
        error = str(exc)
        writer.abort(error)
        self._results.put(
            WriteResult(writer.episode_id, writer.path, ok=False, messages=writer.message_count, error=error)
        )
