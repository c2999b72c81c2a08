"""Initial weights: local pretrained files, and the official code's layer rebuild.

``model.weights`` names a file on disk (no download at run time): ``imagenet`` means torchvision's
file for the backbone, looked up where torchvision caches it (``torch.hub.get_dir()/checkpoints``) and
under ``<data root>/weights``; anything else is a path.

:func:`official_rebuild`: the official PaLoRA and PaMaL (``reinit_flag``) replace every layer of the
backbone by a new one (nik-dim/palora ``src/callbacks/methods/palora.py`` ``lorafy_model``, ``pamal.py``
and ``ll/subspace_modules.py`` ``_create_new_``; nik-dim/pamal ``src/ll/subspace_modules.py``), which
has PyTorch's default init whatever the backbone's own was. The official COSMOS does the same to the
widened first layer only (``cosmos.py`` ``configure_model``); our backbones give a layer widened by
``extra_inputs`` that init themselves.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bench.core.errors import ConfigError, MissingDataError
from bench.core.spec import MultiTaskNet

IMAGENET_FILES = {
    "resnet18-imagenet": ("resnet18-f37072fd.pth", "https://download.pytorch.org/models/resnet18-f37072fd.pth"),
}


def resolve_weights(weights: str, backbone: str, data_root: Path) -> Path:
    """The weights file that ``model.weights`` names for ``backbone``, or a clear error."""
    if weights != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise MissingDataError(f"model.weights: file {path} does not exist; give the path of a state-dict file")
        return path
    if backbone not in IMAGENET_FILES:
        raise ConfigError(
            f"model.weights=imagenet: no ImageNet weights for backbone {backbone!r}; backbones with "
            f"ImageNet weights: {', '.join(sorted(IMAGENET_FILES))} (e.g. --set model.backbone=resnet18-imagenet)"
        )
    filename, url = IMAGENET_FILES[backbone]
    places = [Path(torch.hub.get_dir()) / "checkpoints" / filename, Path(data_root) / "weights" / filename]
    for place in places:
        if place.is_file():
            return place
    raise MissingDataError(
        f"model.weights=imagenet needs torchvision's {filename}, found in neither "
        + " nor ".join(str(p) for p in places)
        + f'. Download it on a machine with internet ({url}, or run python -c "import torchvision; '
        f"torchvision.models.{backbone.split('-')[0]}(weights='DEFAULT')\" there) and copy it to "
        f"{places[1]}; or train from scratch with --set model.weights="
    )


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` (a bare state dict, or one under a ``state_dict`` key)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise ConfigError(f"model.weights: cannot read {path} as a torch state dict ({err})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"model.weights: {path} holds a {type(state).__name__}, not a state dict")
    return state


REBUILT_SCHEMES = frozenset({"xavier"})
"""``MultiTaskNet.layer_init`` values that the official rebuild discards: SegNet's xavier init (MTAN).
The official ResNet-18 (``ResNetEncoder``), MultiLeNet and MLPs have PyTorch's default init already
(``pytorch``, left untouched so no random number is drawn); ``torchvision`` (resnet18-imagenet) and
``pretrained`` have no official counterpart and are kept."""


def official_rebuild(net: MultiTaskNet) -> MultiTaskNet:
    """Give every Conv2d and Linear layer of ``net`` PyTorch's default init, ``reset_parameters``
    (kaiming-uniform(a = sqrt 5) weights, U(+-1/sqrt(fan_in)) biases), as the official PaLoRA and
    PaMaL (``reinit_flag``) layer rebuild does; BatchNorm keeps (1, 0), also its default. A no-op,
    drawing no random number, unless ``net.layer_init`` is in :data:`REBUILT_SCHEMES`."""
    if net.layer_init not in REBUILT_SCHEMES:
        return net
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.reset_parameters()
    net.layer_init = "pytorch"
    return net
