"""coffea-jetimg: jet images, constituent 4-vector inputs and deep-learning taggers for coffea.

The public surface is listed in ``__all__``. Names import lazily (PEP 562), so that e.g.
``coffea_jetimg.inference`` on a GPU node does not pull in coffea, and ``generate`` does not
pull in torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> module that defines it
_LAZY = {
    "JetImgError": ".errors",
    "InputFileError": ".errors",
    "InputsError": ".errors",
    "TrainingError": ".errors",
    "open_events": "._io",
    "check_file": "._io",
    "ConstituentsError": ".errors",
    "constituents": "._constituents",
    "detect_layout": "._constituents",
    "flat_jet_constituents": "._constituents",
    "JetImageSpec": ".images",
    "jet_images": ".images",
    "EventImageSpec": ".event_images",
    "event_images": ".event_images",
    "constituent_p4s": ".lorentz",
    "constituent_features": ".lorentz",
    "load_artifact": ".artifact",
    "save_artifact": ".artifact",
    "ArtifactError": ".errors",
    "build_inputs": ".inputs",
    "Tagger": ".inference",
    "ServerError": ".errors",
    "DeviceError": ".errors",
    "StoredTagger": ".stored_taggers",
    "TrainConfig": ".training",
    "train_model": ".training",
    "InputPlan": ".inputs",
    "input_from_spec": ".inputs",
    "select_jets": ".selection",
    "TruthLabel": ".selection",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    try:
        modname = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'coffea_jetimg' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(modname, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
