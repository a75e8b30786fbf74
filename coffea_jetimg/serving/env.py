"""The inference server's own Python environment (``.venv-triton``).

``nvidia-pytriton==0.7.0`` (which installs the Triton Inference Server binary and its Python
backend) needs ``numpy<2``, while the analysis environment has numpy 2; the server is a service
of its own anyway, so it lives in its own venv, made by :func:`setup_server_env`
(``coffea-jetimg serve --setup``). The server code that runs there imports only the standard
library, numpy, torch and pytriton, plus this package's numpy-only modules, which it finds
through a link made by :func:`server_command` (the package is not installed in that venv).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["SERVER_REQUIREMENTS", "DEFAULT_VENV", "setup_server_env", "find_server_env", "server_python",
           "server_command", "ServerEnvError"]

#: what the server venv holds; torch is pinned (the CPU wheel on disk here, the CUDA one on GPU nodes)
SERVER_REQUIREMENTS = ("nvidia-pytriton==0.7.0", "numpy<2", "torch==2.13.0")
#: default location, relative to the working directory
DEFAULT_VENV = ".venv-triton"
_ENV_VAR = "COFFEA_JETIMG_TRITON_VENV"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../coffea_jetimg


class ServerEnvError(RuntimeError):
    """The server environment is missing or broken (the message says how to make it)."""


def _python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def setup_server_env(venv: str | os.PathLike = DEFAULT_VENV, python: str | None = None, quiet: bool = True) -> Path:
    """Create (or complete) the server's venv and install :data:`SERVER_REQUIREMENTS` in it.

    Parameters
    ----------
    venv : path
        Where the venv goes (created if absent; an existing one is completed by pip).
    python : str, optional
        Interpreter that creates it (default: this one). Its patch release must match the
        ``libpython`` its ``LIBDIR`` holds, which is how the server finds it.
    quiet : bool
        ``pip -q``.

    Returns
    -------
    Path
        The venv's interpreter.

    Raises
    ------
    ServerEnvError
        If ``venv`` or ``pip`` fails, or the installed packages do not import.
    """
    venv = Path(venv).absolute()
    py = _python_of(venv)
    q = ["-q"] if quiet else []
    steps = []
    if not py.exists():
        steps.append([python or sys.executable, "-m", "venv", str(venv)])
    steps.append([str(py), "-m", "pip", "install", *q, *SERVER_REQUIREMENTS])
    steps.append([str(py), "-c", "import numpy, torch, pytriton.triton; print('server env:', numpy.__version__, "
                                 "torch.__version__)"])
    for cmd in steps:
        try:
            subprocess.run(cmd, check=True)
        except (OSError, subprocess.CalledProcessError) as err:
            raise ServerEnvError(
                f"setting up the server environment {venv} failed at `{' '.join(cmd)}`: {err}") from err
    return py


def find_server_env(venv: str | os.PathLike | None = None) -> Path:
    """The server venv: ``venv`` if given, else ``$COFFEA_JETIMG_TRITON_VENV``, else
    ``./.venv-triton``, else ``.venv-triton`` beside the package's source tree.

    Raises
    ------
    ServerEnvError
        None of them holds a Python with pytriton (the message says how to create one).
    """
    if venv is not None:
        cands = [Path(venv)]
    else:
        cands = [Path(os.environ[_ENV_VAR])] if os.environ.get(_ENV_VAR) else []
        cands += [Path.cwd() / DEFAULT_VENV, _PACKAGE_DIR.parent / DEFAULT_VENV]
    for c in cands:
        py = _python_of(c)
        if py.exists() and list((c / "lib").glob("python3*/site-packages/pytriton")):
            return c.absolute()
    raise ServerEnvError(f"no server environment with nvidia-pytriton in {', '.join(str(c) for c in cands)}; "
                         f"create one with `coffea-jetimg serve --setup` (or set {_ENV_VAR})")


def server_python(venv: str | os.PathLike | None = None) -> Path:
    """The server venv's interpreter (see :func:`find_server_env`)."""
    return _python_of(find_server_env(venv))


def server_command(args: list[str], venv: str | os.PathLike | None = None) -> tuple[list[str], dict]:
    """The command line and environment that run the server module in the server venv.

    The package is made importable there through ``<venv>/coffea-jetimg-src/coffea_jetimg``, a
    link to this package (replaced atomically each time, so it follows the installed version),
    and nothing else of the analysis environment (numpy 2) leaks into the server.
    """
    env_dir = find_server_env(venv)
    src = env_dir / "coffea-jetimg-src"
    src.mkdir(exist_ok=True)
    link = src / "coffea_jetimg"
    if not (link.is_symlink() and Path(os.readlink(link)) == _PACKAGE_DIR):
        tmp = src / f".coffea_jetimg.{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(_PACKAGE_DIR, target_is_directory=True)
        os.replace(tmp, link)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src)
    env.pop("PYTHONHOME", None)
    env["VIRTUAL_ENV"] = str(env_dir)
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return [str(_python_of(env_dir)), "-m", "coffea_jetimg.serving._server", *args], env
