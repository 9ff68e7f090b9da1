"""Helpers for Python tests that run real processes: the stock sluice server,
proxies, clients.

Every wait here waits for an event (a file appearing, a log line, a process
exiting) with a timeout; nothing sleeps to synchronise. Processes are started
by the test and ended by their PID.
"""

import ctypes
import importlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, TypeVar

# Generous: these bound waits for events that normally take milliseconds, on
# a busy 2-core machine.
WAIT_S = 30.0

# A stream that would run for 1000 s unless stopped: one chunk every 10 ms,
# paced by the server (no CPU burned, so a busy machine does not skew it).
LONG_STREAM = {"tokens": 100_000, "token_interval_us": 10_000}
INTERVAL_S = 0.010
# Chunks the server may make between the client's cancel (or deadline) and
# acting on it: the few buffered or in flight (the client reads them as they
# come) and a second of slack for a loaded machine. Far below the 100000 of a
# stream that was not stopped.
SLACK_CHUNKS = 8 + 100

_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_TO = 0x00000080
_libc = ctypes.CDLL(None, use_errno=True)


def runfile(workspace_relative: str) -> str:
    """The path of a data dependency, e.g. "service/sluice_server"."""
    srcdir = os.environ.get("TEST_SRCDIR")
    if not srcdir:
        return workspace_relative
    return os.path.join(srcdir, os.environ.get("TEST_WORKSPACE", "sluice"), workspace_relative)


def temp_dir(name: str) -> str:
    """A fresh directory under the test's TEST_TMPDIR."""
    root = os.environ.get("TEST_TMPDIR", "/tmp")
    path = os.path.join(root, name)
    os.makedirs(path, exist_ok=False)
    return path


def generate_stubs(out_dir: str, proto: Optional[str] = None,
                   include_dir: Optional[str] = None) -> None:
    """Generates the Python stubs of `proto` (by default
    protos/sluice/v1/inference.proto, as package sluice.v1) into out_dir and
    puts out_dir on sys.path. `include_dir` is the import root the modules'
    names are relative to."""
    if proto is None:
        proto = runfile("protos/sluice/v1/inference.proto")
        include_dir = proto[:-len("sluice/v1/inference.proto")]
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{include_dir}",
                    f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", proto],
                   check=True, timeout=WAIT_S)
    sys.path.insert(0, out_dir)


def import_client():
    """The example Python client's module (client/python/sluice_client.py),
    imported after generating the stubs it needs."""
    generate_stubs(temp_dir("stubs"))
    sys.path.insert(0, os.path.dirname(runfile("client/python/sluice_client.py")))
    return importlib.import_module("sluice_client")


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for programs that
    cannot pick their own; retry if it was taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Every Process's reader thread appends under this one condition and notifies
# it, so a test can wait for a line from any of several processes.
_OUTPUT = threading.Condition()

T = TypeVar("T")


def wait_until(check: Callable[[], Optional[T]], timeout_s: float = WAIT_S) -> Optional[T]:
    """check()'s first result that is not None, re-checked whenever any
    Process prints a line; None if timeout_s passes first."""
    deadline = time.monotonic() + timeout_s
    with _OUTPUT:
        while True:
            result = check()
            if result is not None:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            _OUTPUT.wait(left)


class Process:
    """A child process whose stderr is collected line by line as it arrives
    (and copied to `log_path`), so tests can wait for a log line.

    Closing it (or leaving the `with` block) ends the child if it still runs:
    SIGTERM, then SIGKILL if it has not exited within WAIT_S.
    """

    def __init__(self, argv: Sequence[str], log_path: str):
        self.argv = list(argv)
        self.log_path = log_path
        self._lines: List[str] = []  # guarded by _OUTPUT
        self._eof = False  # guarded by _OUTPUT
        self._log = open(log_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            self._log.write(line)
            self._log.flush()
            with _OUTPUT:
                self._lines.append(line.rstrip("\n"))
                _OUTPUT.notify_all()
        with _OUTPUT:
            self._eof = True
            _OUTPUT.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def lines(self) -> List[str]:
        with _OUTPUT:
            return list(self._lines)

    def stderr_text(self) -> str:
        return "\n".join(self.lines())

    def wait_for_line(self, predicate: Callable[[str], bool],
                      timeout_s: float = WAIT_S) -> Optional[str]:
        """The first stderr line (so far or to come) for which predicate is
        true; None if the process's stderr closed or timeout_s passed first."""
        def check():
            for line in self._lines:
                if predicate(line):
                    return line
            return "" if self._eof else None
        return wait_until(check, timeout_s) or None

    def wait_exit(self, timeout_s: float = WAIT_S) -> Optional[int]:
        """The exit status, or None if still running after timeout_s."""
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait_exit() is None:
                self.proc.kill()
                self.proc.wait(timeout=WAIT_S)
        self._reader.join(timeout=WAIT_S)
        self.proc.stderr.close()
        self._log.close()

    def __enter__(self) -> "Process":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def wait_for_file(path: str, process: Process, timeout_s: float = WAIT_S) -> Optional[str]:
    """The content of `path` once it exists and is not empty (written and
    closed, or renamed into place); None if `process` exited first or
    timeout_s passed.

    Waits on inotify and a pidfd, without polling.
    """
    fd = _libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    pidfd = os.pidfd_open(process.pid)
    try:
        directory = os.path.dirname(path) or "."
        if _libc.inotify_add_watch(fd, directory.encode(), _IN_CLOSE_WRITE | _IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {directory}")
        deadline = time.monotonic() + timeout_s
        exited = False
        while True:
            # Checked after the watch is in place, so a file created before it
            # counts too; and once more after the process exited.
            if os.path.exists(path):
                with open(path, encoding="utf-8") as f:
                    content = f.read()
                if content:
                    return content
            left = deadline - time.monotonic()
            if exited or left <= 0:
                return None
            ready, _, _ = select.select([fd, pidfd], [], [], left)
            exited = pidfd in ready
            if fd in ready:
                os.read(fd, 65536)  # drain; the loop checks the path again
    finally:
        os.close(fd)
        os.close(pidfd)


# One ended call as the server logs it at --vlog=1, e.g.
#   PredictStream model=synthetic request_id=r1 ended=client_cancelled stage=running
#   code=CANCELLED chunks=3 chunks_after_cancel=0 queue_ms=0.2 run_ms=22.1
_ENDED = re.compile(r"\] (?P<method>Predict|PredictStream) (?P<fields>model=.* ended=.*)$")


def parse_ended_line(line: str) -> Optional[Dict[str, str]]:
    """The key=value fields of a server's ended-call log line (plus "method"),
    or None if `line` is not one."""
    match = _ENDED.search(line)
    if match is None:
        return None
    fields = dict(item.split("=", 1) for item in match.group("fields").split() if "=" in item)
    fields["method"] = match.group("method")
    return fields


class SluiceServer(Process):
    """The stock server (//service:sluice_server) on a free loopback port,
    logging every ended call (--vlog=1)."""

    def __init__(self, name: str, flags: Sequence[str] = ()):
        self.dir = temp_dir(name)
        port_file = os.path.join(self.dir, "port")
        super().__init__([runfile("service/sluice_server"), "--port=0",
                          f"--port_file={port_file}", "--metrics_port=-1", "--vlog=1", *flags],
                         os.path.join(self.dir, "server.log"))
        text = wait_for_file(port_file, self)
        if text is None:
            self.close()
            raise RuntimeError(f"sluice_server did not start:\n{self.stderr_text()}")
        self.port = int(text.strip())
        self.target = f"127.0.0.1:{self.port}"

    def ended_calls(self, request_id: str) -> List[Dict[str, str]]:
        """Every ended-call line logged so far for request_id."""
        calls = (parse_ended_line(line) for line in self.lines())
        return [c for c in calls if c is not None and c.get("request_id") == request_id]

    def wait_ended(self, request_id: str, timeout_s: float = WAIT_S) -> Optional[Dict[str, str]]:
        """The ended-call fields for request_id once the server logs them;
        None if it does not within timeout_s."""
        def is_it(line: str) -> bool:
            fields = parse_ended_line(line)
            return fields is not None and fields.get("request_id") == request_id
        line = self.wait_for_line(is_it, timeout_s)
        return parse_ended_line(line) if line is not None else None


def wait_ended_on_any(servers: Sequence[SluiceServer], request_id: str,
                      timeout_s: float = WAIT_S):
    """(server, fields) for the first of `servers` to log the end of
    request_id; None if none does within timeout_s."""
    def check():
        for server in servers:
            calls = server.ended_calls(request_id)
            if calls:
                return server, calls[0]
        return None
    return wait_until(check, timeout_s)
