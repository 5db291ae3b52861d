"""Small models of every family, randomisation, and the embedding construction used by the selection tests."""

from __future__ import annotations

import torch
import torch.nn as nn

from edgeskd.models import StudentSpec, build_student, create_model

RES = 32


def pair(family: str) -> tuple[nn.Module, nn.Module]:
    """(teacher, student) of one family: tiny, with non-divisible widths where the family allows it."""
    if family == "vit":  # embed 40 -> 16 (5 -> 2 heads of 8), mlp 160 -> 64, depth 3 -> 2
        common = dict(img_size=RES, patch_size=8, mlp_ratio=4.0, num_classes=5)
        return (create_model("vit_tiny_patch16_224", embed_dim=40, num_heads=5, depth=3, **common),
                create_model("vit_tiny_patch16_224", embed_dim=16, num_heads=2, depth=2, **common))
    if family == "convnext":  # streams halve (LayerNorm streams: see embed()), mlp 4x
        return (create_model("convnext_atto", depths=(2, 3, 1, 1), dims=(8, 16, 16, 24), num_classes=5),
                create_model("convnext_atto", depths=(1, 2, 1, 1), dims=(4, 8, 8, 12), num_classes=5))
    if family == "resnet-basic":  # deep stem; layer1 shares the stem's stream (no downsample)
        return (create_model("resnet18d", layers=(2, 2, 1, 1), channels=(8, 16, 16, 24), stem_width=4, num_classes=5),
                create_model("resnet18d", layers=(1, 1, 1, 1), channels=(4, 6, 10, 16), stem_width=2, num_classes=5))
    if family == "resnet-bottleneck":
        return (create_model("resnet26", layers=(2, 1, 1, 1), channels=(8, 8, 16, 16), num_classes=5),
                create_model("resnet26", layers=(1, 1, 1, 1), channels=(4, 6, 8, 10), num_classes=5))
    if family == "efficientnet":  # EfficientNet-B0 layout: inverted residuals with squeeze-excitation
        teacher = build_student(StudentSpec("efficientnet_b0", depth=0.5, width=0.5, resolution=RES, num_classes=5))
        # (at width 0.25 the first block's rounded widths give it a skip connection the teacher's lacks)
        return teacher, build_student(StudentSpec("efficientnet_b0", depth=0.25, width=0.3, resolution=RES,
                                                  num_classes=5))
    if family == "efficientnet-lite":  # MobileNet-style: no SE, ReLU6
        spec = StudentSpec("tf_efficientnet_lite0", depth=0.5, width=0.5, resolution=RES, num_classes=5)
        return build_student(spec), build_student(StudentSpec("tf_efficientnet_lite0", depth=0.25, width=0.25,
                                                              resolution=RES, num_classes=5))
    raise KeyError(family)


FAMILIES = ["vit", "convnext", "resnet-basic", "resnet-bottleneck", "efficientnet", "efficientnet-lite"]
# residual streams normalised by LayerNorm over channels: their extra channels must keep mean and variance
LN_STREAMS = {"vit": ("orthogonal", lambda name: name == "embed"),
              "convnext": ("copy", lambda name: name == "stem.0" or name.endswith(".downsample.1"))}


@torch.no_grad()
def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Give every tensor a random value that matters (timm's init zeroes biases and sets layer-scale to 1e-6)."""
    g = torch.Generator().manual_seed(seed)
    for name, t in model.state_dict().items():
        if not t.is_floating_point():
            continue
        if name.endswith("running_var") or (t.dim() == 1 and (name.endswith("weight") or name.endswith("gamma"))):
            t.copy_(torch.rand(t.shape, generator=g) + 0.5)
        elif t.dim() <= 1 or name in ("cls_token", "pos_embed", "reg_token"):
            t.copy_(torch.randn(t.shape, generator=g) * 0.2)
        else:
            t.copy_(torch.randn(t.shape, generator=g) / max(1, t[0].numel()) ** 0.5)
    return model.eval()


def extension(teacher: int, student: int, kind: str) -> torch.Tensor:
    """A (T-S) x S matrix A for the extra channels e = A x of a LayerNorm'd stream, such that the T channels
    [x, A x] have the mean and variance of x: 1^T A = (T/S - 1) 1^T and A^T A = (T/S - 1) I. "copy" (T divisible
    by S) repeats each channel T/S - 1 times, which also commutes with per-channel layers (depthwise conv,
    layer-scale); "orthogonal" works for any T >= 2 S."""
    extra, c = teacher - student, teacher / student - 1
    if kind == "copy":
        assert teacher % student == 0, (teacher, student)
        return torch.eye(student).repeat(extra // student, 1).double()
    assert teacher >= 2 * student, (teacher, student)
    u = torch.ones(extra, 1, dtype=torch.float64) / extra ** 0.5
    g = torch.Generator().manual_seed(0)
    p, _ = torch.linalg.qr(torch.cat([u, torch.randn(extra, student - 1, generator=g, dtype=torch.float64)], 1))
    p = p * torch.sign(p[:, :1].T @ u)[0, 0]   # first column exactly +u
    w = torch.ones(student, dtype=torch.float64) / student ** 0.5
    v = w - torch.eye(student, dtype=torch.float64)[0]   # Householder R with R w = e1
    r = torch.eye(student, dtype=torch.float64) - 2 * torch.outer(v, v) / (v @ v) if v.norm() > 1e-12 else torch.eye(
        student, dtype=torch.float64)
    return c ** 0.5 * (p @ r)


@torch.no_grad()
def embed(small: nn.Module, big: nn.Module, plan, family: str) -> None:
    """Write `small` into `big` at the teacher positions of `plan` (a Selection of big -> small's architecture):
    extra channels and blocks are zero (so they contribute nothing), except the extra channels of LayerNorm'd
    streams, which get A x (see extension) so the norm statistics are unchanged. Readers of a stream (dim 1 of a
    conv/linear weight) see zeros in the extra channels. The classifier is embedded too, on the same positions."""
    state = {k: torch.zeros_like(v) for k, v in big.state_dict().items()}
    small_state = small.state_dict()
    kind, is_ln = LN_STREAMS.get(family, ("", lambda name: False))
    for key, src in plan.sources.items():
        value = small_state[key].double()
        index = list(src.index)
        for d, dim in enumerate(src.dims):
            reader = d == 1 and key.endswith(".weight") and value.dim() >= 2
            if dim is None or reader or not is_ln(dim.space):
                continue
            space = plan.report["spaces"][dim.space]
            t_size, s_size = space["teacher_size"], space["student_size"]
            a = extension(t_size, s_size, kind)
            extra = torch.tensor(sorted(set(range(t_size)) - set(space["indices"])))
            moved = value.movedim(d, 0)
            full = torch.zeros((t_size,) + moved.shape[1:], dtype=torch.float64)
            full[index[d]] = moved
            full[extra] = torch.tensordot(a, moved, dims=1)
            value, index[d] = full.movedim(0, d), torch.arange(t_size)
        _scatter(state[src.teacher_key], value, index)
    # classifier: the small model's rows, reading the positions of the last feature space
    bias_key, weight_key = sorted(plan.report["classifier_left"])
    last = [s.index[0] for s in plan.sources.values() if s.dims and s.dims[0] is not None][-1]
    state[weight_key][:, last] = small_state[weight_key]
    state[bias_key] = small_state[bias_key].clone()
    big.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})


def _scatter(target: torch.Tensor, value: torch.Tensor, index: list) -> None:
    if target.dim() == 0:
        target.copy_(value)
        return
    grids = []
    for d, idx in enumerate(index):
        idx = torch.arange(target.shape[d]) if idx is None else idx
        shape = [1] * target.dim()
        shape[d] = -1
        grids.append(idx.reshape(shape))
    target[tuple(grids)] = value.to(target.dtype)
