"""What wrote an artifact: the package and torch versions recorded at save and checked at load."""

from __future__ import annotations

import warnings

__all__ = ["versions", "check_versions"]


def versions() -> dict:
    """``{"coffea_jetimg": ..., "torch": ..., "python": ...}`` of this process."""
    import platform

    import torch

    from .. import __version__

    return {"coffea_jetimg": __version__, "torch": torch.__version__, "python": platform.python_version()}


def _base(v: str) -> str:
    return str(v).split("+")[0]  # '2.13.0+cpu' and '2.13.0' are the same release


def check_versions(spec: dict, where: str = "spec") -> list[str]:
    """Warn (naming ``where``) when an artifact was trained with another torch or coffea-jetimg.

    Reads ``spec["training"]["versions"]`` (or the older ``spec["training"]["torch"]``); an
    artifact without them passes silently. TorchScript from a newer torch may not load in an
    older one, and numbers can move between releases: the warning says which versions differ.

    Returns
    -------
    list of str
        The mismatches, as in the warning (empty when none).
    """
    import importlib.metadata

    training = spec.get("training") or {}
    recorded = dict(training.get("versions") or {})
    if "torch" not in recorded and "torch" in training:
        recorded["torch"] = training["torch"]
    out = []
    for pkg in ("torch", "coffea_jetimg"):
        if pkg not in recorded:
            continue
        if pkg == "coffea_jetimg":
            from .. import __version__ as now
        else:
            try:  # the installed version, without importing torch
                now = importlib.metadata.version("torch")
            except importlib.metadata.PackageNotFoundError:  # pragma: no cover
                continue
        if _base(recorded[pkg]) != _base(now):
            out.append(f"{pkg} {recorded[pkg]} (running {now})")
    if out:
        warnings.warn(f"{where}: trained with {', '.join(out)}; results may differ, and a TorchScript model from "
                      f"a newer torch may not load", stacklevel=2)
    return out
