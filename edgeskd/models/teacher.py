"""Teachers: a timm architecture plus weights from a local file (or the hub when the machine is online).

Weight files are read without pickle: safetensors directly, .pth/.pt/.bin through torch.load(weights_only=True).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

from edgeskd._compat import import_timm
from edgeskd.errors import ModelError

timm = import_timm()

HUB = "hub"  # --teacher-weights hub: download through timm on an online machine
_PREFIXES = ("module.", "model.", "_orig_mod.", "backbone.")
_WRAPPER_KEYS = ("state_dict", "model", "model_state", "model_state_dict", "ema", "state_dict_ema")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a flat {name: tensor} state dict from .safetensors, .pth, .pt or .bin, without unpickling objects."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weight file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except ModelError:
        raise
    except Exception as exc:  # torch/safetensors raise many types for corrupt or unsafe files
        raise ModelError(f"cannot read weights from {path}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    if isinstance(state, dict):
        for key in _WRAPPER_KEYS:  # training checkpoints nest the weights one level down
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} does not hold a state dict of tensors (found {type(state).__name__})")
    return strip_prefixes(state)


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes (DataParallel's `module.`, Lightning's `model.`, torch.compile's `_orig_mod.`)."""
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_weights_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` into `model`, or raise listing the first missing/unexpected keys and mismatched shapes."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {', '.join(missing[:5])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {', '.join(unexpected[:5])})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (first: {'; '.join(shapes[:3])})")
        raise ModelError(f"weights {source} do not fit the architecture: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def check_finite_weights(state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights holding NaN or Inf, naming the first such tensor: they would only surface later as students
    full of NaN or as a training loss blamed on the learning rate."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ModelError(f"teacher weights {source}: tensor {key!r} holds {bad} NaN/Inf value(s) of "
                             f"{tensor.numel()}; the file is damaged or was saved from a diverged run")


def create_model(name: str, num_classes: int | None = None, **kwargs) -> nn.Module:
    """timm.create_model with a clear error for unknown names."""
    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:8]
        raise ModelError(f"unknown timm model {name!r}" + (f"; similar: {', '.join(close)}" if close else ""))
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return timm.create_model(name, pretrained=False, **kwargs)


def classifier_key(model: nn.Module) -> str | None:
    """State-dict name of the weight of the model's classifier (timm's get_classifier()), e.g. 'head.weight'."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(head, nn.Module) or getattr(head, "weight", None) is None:
        return None
    return next((f"{n}.weight" if n else "weight" for n, m in model.named_modules() if m is head), None)


def file_num_classes(model: nn.Module, state: dict[str, torch.Tensor]) -> int | None:
    """Classifier size of the weights in `state` for `model`'s architecture: the rows of its classifier weight, 0 when
    the file has no classifier at all (a headless backbone), None when the architecture has no classifier to read."""
    key = classifier_key(model)
    if key is None:
        return None
    if key not in state:
        prefix = key[: -len("weight")]
        return 0 if not any(k.startswith(prefix) for k in state) else None
    return int(state[key].shape[0])


def load_teacher(
    name: str,
    weights: str | os.PathLike | None = None,
    *,
    pretrained_from_hub: bool = False,
    num_classes: int | None = None,
    teacher_num_classes: int | None = None,
    say: Callable[[str], None] | None = None,
) -> nn.Module:
    """Build the timm model `name` and load its pretrained weights, in eval mode.

    `weights` is a local file (the normal case: bedside and CI machines are offline). Its classifier may have any
    size (a 2-class fine-tuned teacher, ImageNet-21k's 21,843 classes, none at all): the size is read from the file,
    or given as `teacher_num_classes`, and the teacher is built with that head; `say` (default: stderr) gets one line
    when it differs from the architecture's default. The classifier is never selected into a student, so its size
    does not matter for selection. Pass `num_classes` to replace the head afterwards.
    `pretrained_from_hub=True`, or weights="hub" (what `--teacher-weights hub` passes), asks timm to download the
    weights instead (needs network; the bedside and CI machines are offline).
    """
    from edgeskd.models.pretrained import KNOWN_TEACHER_FILES, convert_known_format

    if weights is not None and str(weights) == HUB:
        weights, pretrained_from_hub = None, True

    if weights is None and not pretrained_from_hub:
        if name in KNOWN_TEACHER_FILES:
            weights = KNOWN_TEACHER_FILES[name]()
        else:
            raise ModelError(
                f"no weights for teacher {name!r}: pass --teacher-weights FILE (.safetensors/.pth/.pt), or allow a "
                f"hub download on an online machine; teachers with weights shipped here: {', '.join(KNOWN_TEACHER_FILES)}"
            )
    if teacher_num_classes is not None and teacher_num_classes < 0:
        raise ModelError(f"--teacher-num-classes must be >= 0; got {teacher_num_classes}")
    if pretrained_from_hub:
        head = {} if teacher_num_classes is None else {"num_classes": teacher_num_classes}
        try:
            model = timm.create_model(name, pretrained=True, **head)
        except Exception as exc:  # offline, unknown tag, hub error: all mean "no weights from the hub"
            raise ModelError(f"cannot download pretrained weights for {name!r} from the model hub ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}); pass a local file with "
                             f"--teacher-weights FILE") from exc
    else:
        state = convert_known_format(name, read_state_dict(weights))
        check_finite_weights(state, str(weights))
        model = create_model(name, num_classes=_head_size(name, state, str(weights), teacher_num_classes, say))
        load_weights_strict(model, state, str(weights))
    if num_classes is not None:
        model.reset_classifier(num_classes)
    return model.eval()


def _head_size(name: str, state: dict[str, torch.Tensor], source: str, given: int | None,
               say: Callable[[str], None] | None) -> int | None:
    """Classifier size to build teacher `name` with: the weight file's (or `given`); None = the default. Says so in
    one line when it is not the architecture's default."""
    with torch.device("meta"):  # the default architecture only to read its head's name and size: no memory, no init
        probe = create_model(name)
    found, default = file_num_classes(probe, state), int(getattr(probe, "num_classes", -1))
    if given is not None and found is not None and given != found:
        raise ModelError(f"--teacher-num-classes {given}, but {source} has a {found}-class classifier "
                         f"({classifier_key(probe)}); leave the flag out to use the file's")
    wanted = given if given is not None else found
    if wanted is None or wanted == default:
        return None
    how = "from --teacher-num-classes" if given is not None else f"read from {source}"
    what = f"a {wanted}-class classifier" if wanted else "no classifier"
    (say or _stderr)(f"teacher {name}: {what} ({how}; the architecture's default is {default}); the student's head "
                     f"stays its own")
    return wanted


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)
