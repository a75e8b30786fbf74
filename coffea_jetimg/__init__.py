"""coffea-jetimg: jet images, constituent 4-vector inputs and deep-learning taggers for coffea.

The public surface is listed in ``__all__``; heavy modules (torch, pythia8) import lazily.
"""

from __future__ import annotations

from ._io import InputFileError, open_events
from .constituents import ConstituentsError, constituents

__version__ = "0.1.0"

__all__ = ["InputFileError", "ConstituentsError", "constituents", "open_events", "__version__"]
