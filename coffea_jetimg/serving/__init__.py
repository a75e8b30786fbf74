"""Served taggers: a Triton Inference Server for artifacts, its environment, and model
repositories for a facility's own Triton.

- :func:`~coffea_jetimg.serving.env.setup_server_env`: the server's venv (``.venv-triton``).
- :class:`~coffea_jetimg.serving.launch.ServerProcess`: start/stop a server (``coffea-jetimg serve``).
- :func:`~coffea_jetimg.serving.export.export_triton`: ``coffea-jetimg export-triton``.

The client is :class:`coffea_jetimg.inference.Tagger` with ``server="grpc://HOST:PORT"``.
Names import lazily: the server process imports this package in an environment that has
neither tritonclient nor coffea.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "SERVER_REQUIREMENTS": ".env",
    "setup_server_env": ".env",
    "find_server_env": ".env",
    "server_python": ".env",
    "ServerEnvError": ".env",
    "ServerProcess": ".launch",
    "free_port": ".launch",
    "export_triton": ".export",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    try:
        modname = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'coffea_jetimg.serving' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(modname, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
