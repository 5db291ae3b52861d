"""ResNet (timm ResNet, basic and bottleneck blocks; plain or deep stem; optional SE).

Channel spaces: the stem's output ("conv1", or "conv1.6" for a deep stem, whose inner convs write their own
spaces); each stage's stream is written by its first block's downsample ("layerN.0.downsample"); a block without a
downsample adds its input to its output, so it reads and writes the same stream (this is why layer1 of ResNet-18
shares the stem's space). Inside a block, each conv but the last writes its own space ("layerN.j.conv1",
"layerN.j.conv2"): equal widths are not tied. Block 0 of each stage (stride, downsample) always maps to the
teacher's block 0. The classifier `fc` is left.
"""

from __future__ import annotations

import torch.nn as nn

from edgeskd.errors import SelectionError
from edgeskd.selection.graph import ChannelGraph, FamilyRules, GraphBuilder, register_selection_family


def _se(b: GraphBuilder, p: str, se: nn.Module | None, space: str) -> None:
    if se is None or isinstance(se, nn.Identity):
        return
    if type(se).__name__ != "SEModule":
        raise SelectionError(f"resnet: {p}.se is a {type(se).__name__}; weight selection supports timm's SEModule")
    b.conv(f"{p}.se.fc1", se.fc1, f"{p}.se", space)
    b.norm(f"{p}.se.bn", se.bn, f"{p}.se")
    b.conv(f"{p}.se.fc2", se.fc2, space, f"{p}.se")


def resnet_graph(model: nn.Module) -> ChannelGraph:
    b = GraphBuilder(model, "resnet")
    cur = b.chain("conv1", model.conv1, None)
    b.norm("bn1", model.bn1, cur)
    for n in range(1, 5):
        blocks = []
        for j, block in enumerate(getattr(model, f"layer{n}")):
            p = f"layer{n}.{j}"
            blocks.append(p)
            kind = type(block).__name__
            out = cur
            if block.downsample is not None:
                out = b.chain(f"{p}.downsample", block.downsample, cur, f"{p}.downsample")
            if kind == "BasicBlock":
                b.conv(f"{p}.conv1", block.conv1, f"{p}.conv1", cur)
                b.norm(f"{p}.bn1", block.bn1, f"{p}.conv1")
                b.conv(f"{p}.conv2", block.conv2, out, f"{p}.conv1")
                b.norm(f"{p}.bn2", block.bn2, out)
            elif kind == "Bottleneck":
                b.conv(f"{p}.conv1", block.conv1, f"{p}.conv1", cur)
                b.norm(f"{p}.bn1", block.bn1, f"{p}.conv1")
                b.conv(f"{p}.conv2", block.conv2, f"{p}.conv2", f"{p}.conv1")
                b.norm(f"{p}.bn2", block.bn2, f"{p}.conv2")
                b.conv(f"{p}.conv3", block.conv3, out, f"{p}.conv2")
                b.norm(f"{p}.bn3", block.bn3, out)
            else:
                raise SelectionError(f"resnet: {p} is a {kind}; weight selection supports BasicBlock and Bottleneck")
            _se(b, p, block.se, out)
            cur = out
        b.stages.append(blocks)
    return b.finish(model.get_classifier())


RULES = register_selection_family(FamilyRules(
    "resnet", resnet_graph,
    "timm ResNet with BasicBlock or Bottleneck blocks, plain or deep stem, conv or avg-pool downsample, optional "
    "SE (not grouped ResNeXt convs or other attention layers)",
    first_block_fixed=True))
