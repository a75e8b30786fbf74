"""The package's exceptions: one base class, one subclass per kind of bad input.

Every error the package raises about user input derives from :class:`JetImgError`, so an
analysis can catch them all at once (``except coffea_jetimg.JetImgError``), and every message
names what is wrong: the file, the branch, the model or the parameter. The subclasses also
derive from ``ValueError`` (they are bad values given by the caller), as they always did.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "JetImgError",
    "InputFileError",
    "ConstituentsError",
    "InputsError",
    "ArtifactError",
    "TrainingError",
    "ServerError",
    "DeviceError",
]


class JetImgError(ValueError):
    """Base of every coffea-jetimg error about its input (files, branches, models, parameters)."""


class InputFileError(JetImgError):
    """A problem with one input file: unreadable, wrong format, or a missing collection.

    Attributes
    ----------
    path : str
        The file.
    reason : str
        What is wrong, in words.
    """

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # pickles across Dask workers with both arguments
        return (type(self), (self.path, self.reason))


class ConstituentsError(JetImgError):
    """The events lack the branches needed for jet constituents (the message names them)."""


class InputsError(JetImgError):
    """The events cannot provide what a model's input spec asks for."""


class ArtifactError(JetImgError):
    """A model artifact is missing, incomplete or corrupt; the message names the file."""


class TrainingError(JetImgError):
    """Training cannot start or go on with the given samples or settings."""


class DeviceError(JetImgError):
    """The device asked for (``'cuda'``, ``'cuda:N'``) is not on this machine, or is not a device."""


class ServerError(JetImgError):
    """An inference server cannot score for a served tagger: unreachable, lacking the model, serving
    other shapes than the artifact's spec, or failing a batch after its retries.

    Attributes
    ----------
    server : str
        The server's URL (``grpc://host:port``).
    model : str or None
        The model name on the server.
    reason : str
        What is wrong, in words (which micro-batch, which models the server has...).
    """

    def __init__(self, server: str, model: str | None, reason: str):
        self.server = str(server)
        self.model = model
        self.reason = reason
        where = f"inference server {self.server}" + (f", model {model!r}" if model else "")
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # pickles across Dask workers with all three arguments
        return (type(self), (self.server, self.model, self.reason))
