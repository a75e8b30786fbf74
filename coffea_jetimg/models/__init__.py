"""Taggers in torch (image CNNs, LoLa, ResNets, dense nets) and non-neural baselines.

:func:`build_model` makes any torch architecture by name; every one takes a float32 tensor of
the shape given by ``input_shape`` (without the batch axis) and returns logits
``(batch, n_classes)``, and scripts with :func:`torch.jit.script` / exports to ONNX.

===============  ===========  ====================================================================
name             input kind   network
===============  ===========  ====================================================================
``qg``           image        3 conv + max-pool, dense 128 (quark/gluon, arXiv:1612.01551)
``deeptop``      image        4 conv 8×4×4, pools, dense 64-256-256 (arXiv:1701.08784)
``wtag``         image        11×11 then 3×3 conv, dropout (W vs QCD, arXiv:1511.05190)
``lola``         lorentz      CoLa + LoLa, dense 100-50 (arXiv:1707.08966)
``fc``           any          5 × 500 ReLU, dropout 0.5
``maxout``       any          MaxOut 256/128 (5 pieces), dense 64-25
``resnet18``     event_image  ResNet-18 (also ``resnet34``, ``resnet50``), 3 classes by default
``pfn``          particles    Particle Flow Network / Deep Sets, Φ 100-100-128, F 100-100-100 (arXiv:1810.05165)
``particlenet``  particles    ParticleNet-Lite, EdgeConv k=7 3×32 then 3×64, mean pool, dense 128 (arXiv:1902.08570)
===============  ===========  ====================================================================

Non-neural: :class:`BDTTagger` (features) and :class:`LikelihoodRatioTagger` (2 observables).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: public name -> submodule defining it; imported on first use (PEP 562), so that the registry
#: below (``ARCHITECTURES``, ``input_kind``) reads without importing torch (the CLI's parsers)
_LAZY = {
    "BDTTagger": "baselines", "LikelihoodRatioTagger": "baselines",
    "CNN_PRESETS": "cnn", "JetCNN": "cnn", "deeptop_cnn": "cnn", "qg_cnn": "cnn", "wtag_cnn": "cnn",
    "FCNet": "dense", "MaxOut": "dense", "MaxOutNet": "dense",
    "CoLa": "lola", "LoLa": "lola", "LoLaNet": "lola",
    "RESNETS": "resnet", "BasicBlock": "resnet", "Bottleneck": "resnet", "ResNet": "resnet",
    "ParticleFlowNetwork": "pfn", "ParticleNet": "particlenet",
    "resnet18": "resnet", "resnet34": "resnet", "resnet50": "resnet",
}


def __getattr__(name: str) -> Any:
    try:
        mod = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'coffea_jetimg.models' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value

__all__ = [
    "build_model", "ARCHITECTURES", "input_kind",
    "JetCNN", "qg_cnn", "deeptop_cnn", "wtag_cnn",
    "CoLa", "LoLa", "LoLaNet",
    "ResNet", "BasicBlock", "Bottleneck", "resnet18", "resnet34", "resnet50",
    "FCNet", "MaxOut", "MaxOutNet", "ParticleFlowNetwork", "ParticleNet",
    "BDTTagger", "LikelihoodRatioTagger", "CNN_PRESETS", "RESNETS",
]

#: architecture name -> the input kind it expects ('any': image, lorentz or features); a model not
#: built above is built by the ``build`` function of the module of its name (see build_model)
ARCHITECTURES: dict[str, str] = {
    "qg": "image", "deeptop": "image", "wtag": "image",
    "lola": "lorentz",
    "fc": "any", "maxout": "any",
    "resnet18": "event_image", "resnet34": "event_image", "resnet50": "event_image",
    "pfn": "particles", "particlenet": "particles",
}


def input_kind(architecture: str) -> str:
    """The input kind (``'image'``, ``'lorentz'``, ``'event_image'`` or ``'any'``) of an architecture."""
    try:
        return ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {sorted(ARCHITECTURES)}") from None


def build_model(architecture: str, input_shape: Sequence[int], n_classes: int = 2, **kw: Any) -> torch.nn.Module:
    """A torch tagger by name.

    Parameters
    ----------
    architecture : str
        One of :data:`ARCHITECTURES`.
    input_shape : tuple of int
        Per-example input shape: ``(C, H, W)`` for images, ``(4, N)`` for ``lola``, anything
        for ``fc`` / ``maxout``, ``(3, 224, 224)`` for the ResNets.
    n_classes : int
    **kw
        Passed to the constructor (e.g. ``dropout``, ``n_combinations``, ``width``).

    Returns
    -------
    torch.nn.Module
        Outputs logits ``(batch, n_classes)``.
    """
    from .cnn import CNN_PRESETS
    from .dense import FCNet, MaxOutNet
    from .lola import LoLaNet
    from .resnet import RESNETS

    input_kind(architecture)
    shape = tuple(int(v) for v in input_shape)
    if architecture in CNN_PRESETS:
        if len(shape) != 3:
            raise ValueError(f"{architecture} takes images (C, H, W); got input_shape {shape}")
        return CNN_PRESETS[architecture](shape, n_classes, **kw)
    if architecture == "lola":
        if len(shape) != 2 or shape[0] != 4:
            raise ValueError(f"lola takes 4-vectors (4, N); got input_shape {shape}")
        return LoLaNet(shape[1], n_classes, **kw)
    if architecture == "fc":
        return FCNet(shape, n_classes, **kw)
    if architecture == "maxout":
        return MaxOutNet(shape, n_classes, **kw)
    if architecture in RESNETS:
        if len(shape) != 3:
            raise ValueError(f"{architecture} takes images (C, H, W); got input_shape {shape}")
        return RESNETS[architecture](n_classes, in_channels=shape[0], **kw)
    # any other registered architecture: the module of that name builds it (a new model is one
    # file with a build(input_shape, n_classes, **kw) function, plus its line in ARCHITECTURES)
    return importlib.import_module(f".{architecture}", __name__).build(shape, n_classes, **kw)
