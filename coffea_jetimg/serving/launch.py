"""Start and stop a served-tagger Triton server from the analysis environment.

:class:`ServerProcess` runs :mod:`coffea_jetimg.serving._server` in the server venv as a child
process, waits until every model answers, and stops it with SIGINT (then SIGTERM, then SIGKILL).
``coffea-jetimg serve`` runs the same module in the foreground.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import ServerError
from .env import server_command

__all__ = ["ServerProcess", "server_args", "free_port", "check_servable"]


def check_servable(art) -> None:
    """Raise :class:`~coffea_jetimg.errors.ArtifactError` for an artifact the server cannot run:
    it serves TorchScript, and a wrapped ONNX-only artifact has none."""
    from ..artifact import ArtifactError

    if not art.has_torchscript:
        raise ArtifactError(f"{art.path}: holds only model.onnx; `coffea-jetimg serve` runs TorchScript (model.ts). "
                            "Serve it from a Triton with the onnxruntime backend: `coffea-jetimg export-triton "
                            f"{art.path} --backend onnx -o REPO`")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS's choice)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def server_args(artifacts, *, host: str = "0.0.0.0", grpc_port: int = 8001, http_port: int | None = None,
                metrics_port: int | None = None, device: str | None = None, max_batch: int = 2048,
                queue_delay_us: int = 200, instances: int = 1, threads: int | None = None,
                log_every: float = 10.0, verbose: bool = False) -> list[str]:
    """The server module's command-line arguments (HTTP defaults to gRPC - 1, metrics to gRPC + 1,
    as Triton's 8000/8001/8002)."""
    if int(max_batch) < 1 or int(queue_delay_us) < 0 or int(instances) < 1:
        raise ValueError(f"max_batch >= 1, queue_delay_us >= 0 and instances >= 1 needed "
                         f"(got {max_batch}, {queue_delay_us}, {instances})")
    args = [str(Path(a).absolute()) for a in artifacts]
    if not args:
        raise ValueError("no artifacts to serve")
    args += ["--host", host, "--grpc-port", str(grpc_port),
             "--http-port", str(http_port if http_port is not None else grpc_port - 1),
             "--metrics-port", str(metrics_port if metrics_port is not None else grpc_port + 1),
             "--max-batch", str(int(max_batch)), "--queue-delay-us", str(int(queue_delay_us)),
             "--instances", str(int(instances)), "--log-every", str(float(log_every))]
    if device:
        args += ["--device", device]
    if threads:
        args += ["--threads", str(int(threads))]
    if verbose:
        args.append("--verbose")
    return args


class ServerProcess:
    """A Triton server serving artifacts, run as a child process (a context manager).

    Parameters
    ----------
    artifacts : list of path
        Artifact directories; each is served under its spec's ``name``.
    grpc_port, http_port, metrics_port : int
        Ports (default: three free ones).
    host : str
        Address the server binds (``127.0.0.1``: this machine only).
    venv : path, optional
        The server venv (see :func:`~coffea_jetimg.serving.env.find_server_env`).
    log : path, optional
        The server's output (default: a temporary file, removed by :meth:`stop` after a clean exit).
    **options
        ``device``, ``max_batch``, ``queue_delay_us``, ``instances``, ``threads``, ``log_every``
        (see :func:`server_args`).

    Attributes
    ----------
    url : str
        ``grpc://host:port``, what :class:`~coffea_jetimg.inference.Tagger` takes as ``server``.
    """

    def __init__(self, artifacts, *, grpc_port: int | None = None, http_port: int | None = None,
                 metrics_port: int | None = None, host: str = "127.0.0.1", venv=None, log=None, **options):
        from ..artifact import load_artifact

        arts = [load_artifact(a) for a in artifacts]  # validated here, read by the server
        for art in arts:
            check_servable(art)
        self.artifacts = [a.path for a in arts]
        self.host = host
        self.grpc_port = grpc_port or free_port()
        self.http_port = http_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self._cmd, self._env = server_command(
            server_args(self.artifacts, host=host, grpc_port=self.grpc_port, http_port=self.http_port,
                        metrics_port=self.metrics_port, **options), venv)
        self._own_log = log is None
        self.log_path = Path(log) if log else Path(tempfile.mkstemp(prefix="coffea-jetimg-serve-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"grpc://{shown}:{self.grpc_port}"

    def log_text(self) -> str:
        """What the server has printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self, timeout: float = 300.0) -> "ServerProcess":
        """Start the server and wait until it says it is ready (every model loaded and answering).

        Raises
        ------
        ServerError
            The server exited or was not ready within ``timeout`` seconds (the message holds the
            end of its log).
        """
        from ._server import READY

        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(self._cmd, env=self._env, stdout=logf, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if READY in self.log_text():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        rc = self.proc.poll()
        tail = "\n".join(self.log_text().splitlines()[-25:])
        self.stop()
        why = f"exited with status {rc}" if rc is not None else f"was not ready after {timeout:.0f} s"
        raise ServerError(self.url, None, f"the server {why}; its log ends:\n{tail}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGINT (clean stop), then SIGTERM, then SIGKILL; returns the exit status."""
        if self.proc is None:
            return None
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)  # the server, tritonserver and its stubs
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        rc = self.proc.poll()
        if self._own_log and rc == 0:  # kept when the server failed, for its log
            try:
                self.log_path.unlink()
            except OSError:
                pass
        return rc

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
