"""Where the daemon lives on disk: private runtime dir, connection file, CURVE keys, allow-list."""

from __future__ import annotations

import contextlib
import getpass
import ipaddress
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import zmq

from core.errors import BadRequest, Unauthorized, Unavailable, VersionMismatch
from core.protocol import SERVED_VERSIONS, choose_version

CONNECTION_FILE = "daemon.json"
"""Name of the connection file inside the runtime dir."""

EVENTS_SOCKET = "events.sock"
COMMANDS_SOCKET = "commands.sock"

SERVER_KEYS_FILE = "server_keys.json"
"""The daemon's CURVE key pair, in the state dir (0600)."""

CLIENT_KEYS_FILE = "client_keys.json"
"""This user's CURVE client key pair, in the state dir (0600); optional."""

ALLOWED_CLIENTS_FILE = "allowed_clients"
"""Client public keys the daemon accepts over TCP; made on first use with this user's client
key. One Z85 key a line, optionally followed by a space and a label; lines starting with #
are comments."""

CLIENT_KEY_COMMAND = "python -m core.runtime client-key"
"""Prints this user's client public key (made on first use): what another machine's owner
runs to get the line to add to the daemon's allow-list."""

MAX_IPC_PATH = 100
"""Unix socket paths longer than this do not fit in sockaddr_un on every system."""


class ConnectionInfo(msgspec.Struct, kw_only=True):
    """What a client needs to reach the daemon; written to the connection file."""

    events: str
    """Endpoint of the PUB socket (events and heartbeats)."""
    commands: str
    """Endpoint of the command socket (requests and replies)."""
    version: int = min(SERVED_VERSIONS)
    """The oldest protocol version the daemon serves: a client that reads no `versions`
    (one of version 1) talks only when it is its own."""
    versions: list[int] | None = None
    """Every protocol version the daemon serves (None from a version 1 daemon); a client
    speaks the highest it shares with them."""
    pid: int = 0
    epoch: int = 0
    heartbeat: float = 1.0
    """Seconds between idle heartbeats on the PUB socket."""
    server_public_key: str | None = None
    """Z85 CURVE public key of the daemon for TCP endpoints; None for ipc."""
    started_at: float = 0.0

    @property
    def curve(self) -> bool:
        """True when clients must speak CURVE to this daemon."""
        return self.server_public_key is not None


def default_runtime_dir() -> Path:
    """$TASKDECK_RUNTIME_DIR, else $XDG_RUNTIME_DIR/taskdeck, else a private temp dir.

    Without XDG_RUNTIME_DIR (containers, CI, root over ssh) platformdirs would warn on
    every call, and in a hook that warning reaches the agent: the fallback is chosen
    quietly instead, `/tmp/taskdeck-UID`, created 0700 and refused unless it is ours.

    Raises:
        Unauthorized: the fallback dir belongs to another user or others can write to it.
    """
    env = os.environ.get("TASKDECK_RUNTIME_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        return Path(base) / "taskdeck"
    if sys.platform == "darwin" or os.name == "nt":  # a per-user dir with no XDG to miss
        import platformdirs

        with contextlib.suppress(OSError):
            return Path(platformdirs.user_runtime_dir("taskdeck"))
    return fallback_runtime_dir()


def fallback_runtime_dir() -> Path:
    """`/tmp/taskdeck-UID` (the system temp dir), created 0700 and checked to be ours."""
    import tempfile

    return ensure_private_dir(Path(tempfile.gettempdir()) / f"taskdeck-{os.geteuid()}")


def default_state_dir() -> Path:
    """$TASKDECK_STATE_DIR, else platformdirs' user state dir (e.g. ~/.local/state/taskdeck)."""
    env = os.environ.get("TASKDECK_STATE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs  # here, not at the top: a hook never needs the state dir

    return Path(platformdirs.user_state_dir("taskdeck"))


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Create files and sockets readable by their owner only, inside the block."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def ensure_private_dir(path: Path) -> Path:
    """Create `path` with mode 0700, or check an existing one is ours and private.

    A dir of ours that others may only read is tightened to 0700; one that others
    may write to, or one owned by somebody else, is refused.

    Raises:
        Unauthorized: the dir belongs to another user or others can write to it.
        BadRequest: the path exists and is not a directory.
    """
    path = Path(path)
    with private_umask():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise BadRequest(f"{path} is not a directory")
    if info.st_uid != os.geteuid():
        raise Unauthorized(
            f"{path} belongs to uid {info.st_uid}, not to you (uid {os.geteuid()}); "
            "refusing to use it"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        raise Unauthorized(
            f"{path} is writable by others (mode {mode:04o}); remove it or run `chmod 700 {path}`"
        )
    if mode != 0o700:
        os.chmod(path, 0o700)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write a file atomically with mode 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with private_umask():
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def connection_path(runtime_dir: Path) -> Path:
    """Where the connection file of the daemon using `runtime_dir` is."""
    return Path(runtime_dir) / CONNECTION_FILE


def write_connection(runtime_dir: Path, info: ConnectionInfo) -> Path:
    """Write the connection file (JSON, mode 0600); returns its path."""
    path = connection_path(runtime_dir)
    write_private(path, msgspec.json.format(msgspec.json.encode(info)) + b"\n")
    return path


def read_connection(runtime_dir: Path | None = None) -> ConnectionInfo:
    """Read the connection file of the daemon using `runtime_dir` (default: ours).

    Raises:
        Unavailable: no connection file, or it cannot be read.
        Unauthorized: the file belongs to another user.
        VersionMismatch: the daemon speaks another protocol version.
    """
    runtime_dir = Path(runtime_dir) if runtime_dir is not None else default_runtime_dir()
    path = connection_path(runtime_dir)
    try:
        with open(path, "rb") as file:
            owner = os.fstat(file.fileno()).st_uid
            data = file.read()
    except FileNotFoundError:
        raise Unavailable(f"no daemon running (no connection file in {runtime_dir})") from None
    except OSError as exc:
        raise Unavailable(f"cannot read {path}: {exc.strerror}") from None
    if owner != os.geteuid():
        raise Unauthorized(f"{path} belongs to uid {owner}, not to you; refusing it")
    try:
        info = msgspec.json.decode(data, type=ConnectionInfo)
    except msgspec.DecodeError as exc:
        raise Unavailable(f"connection file {path} is unreadable: {exc}") from None
    choose_version(info.versions, info.version)  # raises VersionMismatch
    return info


def remove_connection(runtime_dir: Path, *, pid: int, epoch: int) -> None:
    """Remove the connection file if it still describes this daemon (pid and epoch)."""
    path = connection_path(runtime_dir)
    try:
        info = msgspec.json.decode(path.read_bytes(), type=ConnectionInfo)
    except (OSError, msgspec.DecodeError):
        return
    if info.pid == pid and info.epoch == epoch:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def daemon_gone(info: ConnectionInfo) -> bool:
    """True when the connection file names a process that no longer exists (a daemon killed
    without clean-up): no retry can reach it. False when the pid is unknown (0) or alive."""
    if info.pid <= 0:
        return False
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def nothing_listens(endpoint: str) -> bool:
    """True when `endpoint` is an ipc socket that no process listens on (it refuses a
    connection, or its file is gone): what a daemon killed without clean-up leaves. False
    for TCP and whenever it cannot tell (a live socket, a full backlog, a path too long).

    Asked only once the connection file's pid has exited, so a client learns at once
    that no daemon is there instead of waiting out a request timeout for a reply."""
    if not endpoint.startswith("ipc://"):
        return False
    import socket  # only on this rare path: the module costs every hook's start-up

    path = endpoint.removeprefix("ipc://")
    if path.startswith("@"):  # Linux abstract namespace
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.setblocking(False)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return True
        except OSError:
            return False
    return False


def running_daemon(runtime_dir: Path) -> ConnectionInfo | None:
    """The connection info of a live daemon on `runtime_dir`, or None if there is none."""
    try:
        info = msgspec.json.decode(connection_path(runtime_dir).read_bytes(), type=ConnectionInfo)
    except (OSError, msgspec.DecodeError):
        return None
    if info.pid <= 0 or daemon_gone(info):
        return None
    return info


# ------------------------------------------------------------- resources


def raise_fd_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit, where allowed.

    Every client connection costs the daemon a file descriptor, and libzmq aborts the
    whole process when it cannot accept one on an ipc socket; the soft limit is often
    1024 while the hard one is far higher.

    Returns:
        The soft limit now in force (a large number when unlimited).
    """
    try:
        import resource
    except ImportError:  # not POSIX
        return 1 << 16
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        for want in (hard, 1 << 20, 1 << 16):
            if hard != resource.RLIM_INFINITY and want > hard:
                continue
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            except (ValueError, OSError):
                continue
            soft = want
            break
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def open_fd_count() -> int | None:
    """File descriptors this process has open now (None where it cannot be told)."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # minus the one listdir used
    except OSError:
        return None


# -------------------------------------------------------------- endpoints


def ipc_endpoints(runtime_dir: Path) -> tuple[str, str]:
    """The (events, commands) ipc endpoints in `runtime_dir`.

    Raises:
        BadRequest: the socket paths would be too long for a unix socket.
    """
    paths = (Path(runtime_dir) / EVENTS_SOCKET, Path(runtime_dir) / COMMANDS_SOCKET)
    for path in paths:
        if len(os.fsencode(path)) > MAX_IPC_PATH:
            raise BadRequest(
                f"runtime dir {runtime_dir} is too long for a unix socket path "
                f"({len(os.fsencode(path))} > {MAX_IPC_PATH} bytes); use a shorter --runtime-dir"
            )
    return f"ipc://{paths[0]}", f"ipc://{paths[1]}"


def split_tcp(bind: str) -> tuple[str, int]:
    """(host, port) of a `tcp://HOST:PORT` endpoint.

    Raises:
        BadRequest: not a tcp endpoint with a numeric port.
    """
    if not bind.startswith("tcp://"):
        raise BadRequest(f"bind must be tcp://HOST:PORT, got {bind!r}")
    host, sep, port = bind[len("tcp://"):].rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise BadRequest(f"bind must be tcp://HOST:PORT, got {bind!r}")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -------------------------------------------------------------------- keys


class KeyPair(msgspec.Struct, frozen=True):
    """A CURVE key pair, both halves Z85 text."""

    public: str
    secret: str


def _load_or_create_keys(state_dir: Path, name: str) -> KeyPair:
    state_dir = ensure_private_dir(Path(state_dir))
    path = state_dir / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        public, secret = zmq.curve_keypair()
        pair = KeyPair(public=public.decode(), secret=secret.decode())
        write_private(path, msgspec.json.encode(pair) + b"\n")
        return pair
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise Unauthorized(f"{path} is readable by others (mode {mode:04o}); run `chmod 600 {path}`")
    try:
        return msgspec.json.decode(data, type=KeyPair)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"key file {path} is unreadable: {exc}") from None


def load_or_create_server_keys(state_dir: Path | None = None) -> KeyPair:
    """The daemon's CURVE key pair, generated on first use (secret kept 0600)."""
    return _load_or_create_keys(state_dir or default_state_dir(), SERVER_KEYS_FILE)


def load_or_create_client_keys(state_dir: Path | None = None) -> KeyPair:
    """This user's CURVE client key pair, generated on first use; put its public half
    in the daemon's allow-list to let this user in."""
    return _load_or_create_keys(state_dir or default_state_dir(), CLIENT_KEYS_FILE)


def existing_client_keys(state_dir: Path | None = None) -> KeyPair | None:
    """The client key pair if one was created before (never creates one)."""
    path = Path(state_dir or default_state_dir()) / CLIENT_KEYS_FILE
    try:
        return msgspec.json.decode(path.read_bytes(), type=KeyPair)
    except (OSError, msgspec.DecodeError):
        return None


def read_allowed_clients(state_dir: Path | None = None) -> set[str] | None:
    """Client public keys from the allow-list file, or None when there is no such file."""
    path = Path(state_dir or default_state_dir()) / ALLOWED_CLIENTS_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    keys = set()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key = line.split()[0]  # Z85 may contain "#": only whole-line comments, or a label after
        if len(key) != 40:
            raise BadRequest(f"{path}:{number}: not a Z85 CURVE public key (40 characters)")
        keys.add(key)
    return keys



def ensure_allowed_clients(state_dir: Path | None = None) -> tuple[set[str], Path | None]:
    """The TCP allow-list, made on first use with this user's client key.

    TCP is never open to any key holder: the server's public key is in the connection
    file and travels with it, so it proves nothing about the client.

    Returns:
        The allowed keys, and the path of the file when it was just created (else None).
    """
    state_dir = Path(state_dir or default_state_dir())
    keys = read_allowed_clients(state_dir)
    if keys is not None:
        return keys, None
    mine = load_or_create_client_keys(state_dir)
    path = state_dir / ALLOWED_CLIENTS_FILE
    write_private(path, (
        "# Client public keys allowed to reach this daemon over TCP: one Z85 key a line,\n"
        "# then an optional label. Made with this user's own client key; to let another\n"
        f"# machine in, run `{CLIENT_KEY_COMMAND}` there and add the key it prints\n"
        "# here, then restart `taskdeck serve`.\n"
        f"{mine.public} {_user()}@{os.uname().nodename}\n"
    ).encode())
    return {mine.public}, path


def _user() -> str:
    """This user's login name, for labels ("?" when there is none)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "?"


def _main(argv: list[str]) -> int:
    if argv != ["client-key"]:
        print(f"usage: {CLIENT_KEY_COMMAND}", file=sys.stderr)
        return 2
    print(load_or_create_client_keys().public)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
