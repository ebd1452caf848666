"""
The engine's per-process background threads (the step monitor, the waker of
waiting sagas): one of each per process, started on first use and started
anew in a forked child or when the thread has died.
"""

from __future__ import annotations

import os
import threading
from typing import Any

_threads: dict[type, Any] = {}
_threads_lock = threading.Lock()


def per_process(kind: type) -> Any:
    """This process's one `kind` (a thread owner); a forked child, or a dead thread, starts anew."""
    current = _threads.get(kind)
    if current is None or current.pid != os.getpid() or not current.thread.is_alive():
        with _threads_lock:
            current = _threads.get(kind)
            if current is None or current.pid != os.getpid() or not current.thread.is_alive():
                current = _threads[kind] = kind()
    return current
