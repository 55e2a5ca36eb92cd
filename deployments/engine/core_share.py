"""Torch threads that follow the load: the model replicas on one machine share its cores by how
many of them are decoding right now.

Ray gives each model replica a fraction of a CPU, so each runs one torch thread. With one client,
the title and hashtag replicas finish their ~30 tokens and sit idle while the content replica
decodes its ~150 alone on one of the two cores. Here each replica marks itself busy in a folder
of the machine's shared memory while its batch has rows, and before each step takes
`cores // busy replicas` threads (at least one): alone it decodes on every core; under load
every replica keeps one thread, as before (more threads than cores cost throughput:
benchmarks/HISTORY.md, two ContentModel threads at 32 clients).

The folder is per machine (/dev/shm), the unit cores are shared by, so replicas of several Ray
nodes on one machine count each other. A replica that died without unmarking is ignored once
its process is gone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

DEFAULT_FOLDER = Path("/dev/shm" if Path("/dev/shm").is_dir() else "/tmp") / "linkedin-posts-busy"
# How often a decoding replica looks again at who else is busy (a step is 20-200 ms).
RECHECK_S = 0.05


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class CoreShare:
    """One replica's view of the machine's busy replicas, and the threads it should use."""

    def __init__(
        self,
        cores: int,
        set_threads: Callable[[int], None],
        folder: Path = DEFAULT_FOLDER,
        pid: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cores = max(1, cores)
        self.folder = folder
        self.pid = os.getpid() if pid is None else pid
        self._set_threads = set_threads
        self._clock = clock
        self._marker = folder / str(self.pid)
        self._busy = False
        self._checked = float("-inf")
        self.threads = 0  # what was last set (0: not yet)

    def busy_replicas(self) -> int:
        """Replicas on this machine marked busy whose process is alive (this one included)."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return 0
        count = 0
        for name in names:
            if name.isdigit() and (int(name) == self.pid or _alive(int(name))):
                count += 1
        return count

    def follow(self, busy: bool) -> int:
        """Called before each step: mark this replica busy or idle, and while busy, set its
        threads to its share of the cores. Returns the threads in use."""
        if busy != self._busy:
            self._mark(busy)
            self._checked = float("-inf")
        if busy and self._clock() - self._checked >= RECHECK_S:
            self._checked = self._clock()
            share = max(1, self.cores // max(1, self.busy_replicas()))
            if share != self.threads:
                self._set_threads(share)
                self.threads = share
        return self.threads

    def close(self) -> None:
        self._mark(False)

    def _mark(self, busy: bool) -> None:
        self._busy = busy
        if busy:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._marker.touch()
        else:
            self._marker.unlink(missing_ok=True)
