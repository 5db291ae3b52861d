"""EfficientNet / EfficientNet-Lite / MobileNetV2 / MnasNet (timm EfficientNet: depthwise separable and inverted
residual blocks, optional squeeze-excitation).

Channel spaces: the stem's output ("conv_stem"); a block with a skip connection reads and writes the same stream,
a block without one writes a new space ("blocks.s.j.out"); an inverted residual's expanded width is its own space
("blocks.s.j.mid": expansion conv rows, depthwise conv, its norms, SE, projection columns); an SE's reduced width is
"blocks.s.j.se". `conv_head`/`bn2` (the 1x1 conv to the feature width) are part of the backbone and are selected
("conv_head"); only `classifier` is left. Block 0 of each stage always maps to the teacher's block 0.
"""

from __future__ import annotations

import torch.nn as nn

from edgeskd.errors import SelectionError
from edgeskd.selection.graph import ChannelGraph, FamilyRules, GraphBuilder, register_selection_family


def _se(b: GraphBuilder, p: str, se: nn.Module | None, space: str) -> None:
    if se is None or isinstance(se, nn.Identity):
        return
    if type(se).__name__ != "SqueezeExcite":
        raise SelectionError(f"efficientnet: {p}.se is a {type(se).__name__}; weight selection supports timm's "
                             f"SqueezeExcite")
    b.conv(f"{p}.se.conv_reduce", se.conv_reduce, f"{p}.se", space)
    b.conv(f"{p}.se.conv_expand", se.conv_expand, space, f"{p}.se")


def efficientnet_graph(model: nn.Module) -> ChannelGraph:
    b = GraphBuilder(model, "efficientnet")
    cur = b.chain("conv_stem", model.conv_stem, None)
    b.norm("bn1", model.bn1, cur)
    for s, stage in enumerate(model.blocks):
        blocks = []
        for j, block in enumerate(stage):
            p = f"blocks.{s}.{j}"
            blocks.append(p)
            kind = type(block).__name__
            out = cur if block.has_skip else f"{p}.out"
            if kind == "DepthwiseSeparableConv":
                b.conv(f"{p}.conv_dw", block.conv_dw, cur, cur)
                b.norm(f"{p}.bn1", block.bn1, cur)
                _se(b, p, block.se, cur)
                b.conv(f"{p}.conv_pw", block.conv_pw, out, cur)
                b.norm(f"{p}.bn2", block.bn2, out)
            elif kind == "InvertedResidual":
                mid = f"{p}.mid"
                b.conv(f"{p}.conv_pw", block.conv_pw, mid, cur)
                b.norm(f"{p}.bn1", block.bn1, mid)
                b.conv(f"{p}.conv_dw", block.conv_dw, mid, mid)
                b.norm(f"{p}.bn2", block.bn2, mid)
                _se(b, p, block.se, mid)
                b.conv(f"{p}.conv_pwl", block.conv_pwl, out, mid)
                b.norm(f"{p}.bn3", block.bn3, out)
            elif kind == "ConvBnAct":
                b.conv(f"{p}.conv", block.conv, out, cur)
                b.norm(f"{p}.bn1", block.bn1, out)
            else:
                raise SelectionError(f"efficientnet: {p} is a {kind}; weight selection supports "
                                     f"DepthwiseSeparableConv, InvertedResidual and ConvBnAct blocks")
            cur = out
        b.stages.append(blocks)
    b.conv("conv_head", model.conv_head, "conv_head", cur)
    b.norm("bn2", model.bn2, "conv_head")
    return b.finish(model.get_classifier())


RULES = register_selection_family(FamilyRules(
    "efficientnet", efficientnet_graph,
    "timm EfficientNet/EfficientNet-Lite/MobileNetV2/MnasNet with depthwise-separable, inverted-residual and "
    "conv-bn-act blocks, optional squeeze-excitation (not EdgeResidual/EfficientNetV2, CondConv or MobileNetV4 "
    "blocks)",
    first_block_fixed=True))
