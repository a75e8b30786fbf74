"""Training taggers: the public names of :mod:`coffea_jetimg.training`, under their old module.

``from coffea_jetimg.train import fit, train_model, ...`` keeps working; the code lives in the
:mod:`coffea_jetimg.training` package (config, data, loop, callbacks, decorrelation, pipeline).
"""

from __future__ import annotations

from .training import *  # noqa: F401,F403
from .training import __all__  # noqa: F401
