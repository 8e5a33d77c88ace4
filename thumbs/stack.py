"""`thumbs stack`: the production shape on one machine, without Docker.

nginx (the edge, on THUMBS_PORT) in front of uvicorn workers running the app, plus a warm
worker when Redis is configured. PostgreSQL and Redis are whatever the settings name.
Config and logs go under the data dir; Ctrl-C, SIGTERM (what `docker stop` and systemd send) or
SIGHUP stops everything this started, and a stack killed outright takes its children with it.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console

from thumbs.resources import nginx_template
from thumbs.settings import Settings

console = Console()
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PLACEHOLDER = re.compile(r"\$\{(THUMBS_[A-Z_]+)\}")
MAIN_CONFIG = """\
{user}worker_processes auto;
pid {run}/nginx.pid;
error_log {logs}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    include {mime_types};
    default_type application/octet-stream;
    access_log {logs}/nginx-access.log;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000;
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy_temp;
    fastcgi_temp_path {temp}/fastcgi_temp;
    uwsgi_temp_path {temp}/uwsgi_temp;
    scgi_temp_path {temp}/scgi_temp;
    include {run}/thumbs.conf;
}}
"""


class StackError(RuntimeError):
    pass


class StopRequested(Exception):
    """A stop signal arrived: unwind to the ``finally`` that stops the children."""


def request_stop(signum: int, frame: object) -> None:
    raise StopRequested(signal.Signals(signum).name)


def die_with_parent() -> None:
    """In the child, before exec: the kernel sends SIGTERM if the stack itself dies (even by SIGKILL)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start(command: list[str], environment: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    # preexec_fn is unsafe with threads holding locks; the stack has no threads, and it only calls prctl.
    preexec = die_with_parent if sys.platform == "linux" else None
    return subprocess.Popen(command, env=environment, preexec_fn=preexec)


def find_nginx() -> str:
    path = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
    )
    if not path:
        raise StackError("nginx is not installed: run `apt-get update && apt-get install -y nginx`")
    return path


def render_template(template: str, values: dict[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise StackError(f"nginx template needs {name}")
        return values[name]

    return PLACEHOLDER.sub(substitute, template)


def app_port(settings: Settings) -> int:
    return settings.stack_app_port or settings.port + 1


def internal_port(settings: Settings) -> int:
    return settings.edge_internal_port or settings.port + 2


def claim(settings: Settings, directory: Path) -> int:
    """Hold ``directory`` and check the stack's ports before anything is written or started.

    A second stack on the same data dir would rewrite the running one's nginx config and pid
    file; on the same ports its workers and nginx fail one by one after it printed "serving".
    Returns the lock's descriptor: held (not inherited by the children) until the stack exits.
    """
    directory.mkdir(parents=True, exist_ok=True)
    lock = os.open(directory / "stack.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        raise StackError(f"{directory} is in use by another thumbs stack (THUMBS_DATA_DIR)") from None
    ports = (
        (settings.host, settings.port, "THUMBS_PORT"),
        ("127.0.0.1", internal_port(settings), "THUMBS_EDGE_INTERNAL_PORT"),
        ("127.0.0.1", app_port(settings), "THUMBS_STACK_APP_PORT"),
    )
    for host, port, name in ports:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nginx and uvicorn bind
            try:
                probe.bind((host, port))
            except OSError as exc:
                os.close(lock)
                raise StackError(
                    f"{host}:{port} ({name}) is already in use ({exc.strerror}): another thumbs stack?"
                ) from None
    return lock


MEMORY_FILESYSTEM = Path("/dev/shm")


def edge_temp_dir(settings: Settings, directory: Path) -> Path:
    """Where nginx stages responses (and request bodies): THUMBS_EDGE_TEMP_DIR, else memory, else the data dir.

    A cacheable response is written to a temp file and moved into the cache when complete, so a full
    or read-only cache costs a log line, not the answer, as long as the temp file is on another
    filesystem: on the data disk, a full disk drops every MISS mid-stream.
    """
    if settings.edge_temp_dir is not None:
        return settings.edge_temp_dir.resolve()
    if MEMORY_FILESYSTEM.is_dir() and os.access(MEMORY_FILESYSTEM, os.W_OK | os.X_OK):
        # One per data dir (the stack's lock makes it this stack's), so restarts reuse it.
        digest = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:12]
        return MEMORY_FILESYSTEM / f"thumbs-edge-{digest}"
    return (directory / "run").resolve()


def remove_edge_temp_dir(settings: Settings, directory: Path) -> None:
    """Once nginx stopped: the memory directory held only responses in flight (an operator's own is kept)."""
    temp = edge_temp_dir(settings, directory)
    if temp.parent == MEMORY_FILESYSTEM:
        shutil.rmtree(temp, ignore_errors=True)


def write_nginx_config(settings: Settings, directory: Path) -> Path:
    """Render nginx/thumbs.conf.template plus a main config under ``directory``."""
    run, logs, temp = directory / "run", directory / "logs", edge_temp_dir(settings, directory)
    for path in (run, logs, directory / "cache", temp):
        path.mkdir(parents=True, exist_ok=True)
    upstream = f"127.0.0.1:{app_port(settings)}"
    values = {
        "THUMBS_EDGE_LISTEN": f"{settings.host}:{settings.port}",
        # Never on a public address: ingest, warm, admin and operations live here.
        "THUMBS_EDGE_INTERNAL_LISTEN": f"127.0.0.1:{internal_port(settings)}",
        "THUMBS_EDGE_CACHE_DIR": str((directory / "cache").resolve()),
        "THUMBS_EDGE_CACHE_SIZE": settings.edge_cache_size,
        "THUMBS_PROXY_UPSTREAM": upstream,
        "THUMBS_API_UPSTREAM": upstream,
    }
    (run / "thumbs.conf").write_text(render_template(nginx_template().read_text(), values))
    main = directory / "nginx.conf"
    main.write_text(
        MAIN_CONFIG.format(
            # Workers must write the cache under the data dir, which root owns here.
            user="user root;\n" if os.geteuid() == 0 else "",
            run=run.resolve(),
            logs=logs.resolve(),
            temp=temp,
            mime_types="/etc/nginx/mime.types",
        )
    )
    return main


def wait_ready(url: str, name: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"{name} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise StackError(f"{url} did not answer within {seconds:.0f} s")


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()


def run_stack(settings: Settings) -> None:
    from library_api.migrate import run_migrations

    try:
        nginx = find_nginx()
    except StackError as exc:
        console.print(f"[red]thumbs stack:[/] {exc}")
        sys.exit(2)
    directory = settings.data_dir / "stack"
    try:
        claim(settings, directory)  # the lock is released when the process exits
    except StackError as exc:
        console.print(f"[red]thumbs stack:[/] {exc}", soft_wrap=True)  # one line, however narrow the terminal
        sys.exit(1)
    config = write_nginx_config(settings, directory)
    subprocess.run([nginx, "-t", "-q", "-p", str(directory.resolve()), "-c", str(config.resolve())], check=True)
    run_migrations(settings)
    # glibc's per-thread malloc arenas fragment under libvips work and RSS creeps up; two arenas keep it
    # flat (measured in docs/RELIABILITY.md). An operator's own value wins.
    environment = {"MALLOC_ARENA_MAX": "2", **os.environ, **settings.as_environment()}
    thumbs = [sys.executable, "-m", "thumbs.cli"]
    with_redis = bool(settings.redis_url)
    processes: dict[str, subprocess.Popen[bytes]] = {}  # by name, in start order
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)
    try:
        processes["app workers"] = start(
            [*thumbs, "serve", "--host", "127.0.0.1", "--port", str(app_port(settings)),
             "--workers", str(settings.workers), "--warm-consumer" if not with_redis else "--no-warm-consumer"],
            environment,
        )
        wait_ready(f"http://127.0.0.1:{app_port(settings)}/healthz", "app workers", processes["app workers"])
        if with_redis:
            processes["warm worker"] = start([*thumbs, "worker"], environment)
        processes["nginx"] = start(
            [nginx, "-p", str(directory.resolve()), "-c", str(config.resolve()), "-g", "daemon off;"]
        )
        wait_ready(f"http://127.0.0.1:{internal_port(settings)}/healthz", "nginx", processes["nginx"])
        console.print(
            f"\n[bold green]thumbs stack[/] is serving on http://{settings.host}:{settings.port}/ "
            f"(nginx → {settings.workers} app worker(s) on :{app_port(settings)}"
            f"{', warm worker' if with_redis else ''})\n"
            f"  internal (ingest, warm, admin, /healthz, /readyz, /metrics): http://127.0.0.1:{internal_port(settings)}/\n"
            f"  config and logs: {directory}\n"
            "Press Ctrl-C (or send SIGTERM) to stop."
        )
        while all(process.poll() is None for process in processes.values()):
            time.sleep(0.5)
        name, failed = next((name, p) for name, p in processes.items() if p.poll() is not None)
        console.print(f"[red]thumbs stack:[/] {name} exited with {failed.returncode}; stopping")
        sys.exit(1)
    except (KeyboardInterrupt, StopRequested):
        pass
    except StackError as exc:
        console.print(f"[red]thumbs stack:[/] {exc}")
        sys.exit(1)
    finally:
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)  # a second signal must not cut the stopping short
        stop(list(processes.values()))
        remove_edge_temp_dir(settings, directory)
