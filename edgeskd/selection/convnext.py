"""ConvNeXt (timm ConvNeXt, V1 and V2).

Channel spaces: the stem's output stream ("stem.0"), then one stream per stage written by the stage's downsample
conv ("stages.i.downsample.1"); stage 0 has no downsample and keeps the stem's stream. Each block reads and writes
its stage's stream (depthwise conv, its norm, fc1 columns, fc2 rows, layer-scale gamma) and has one hidden space
"stages.i.blocks.j.mlp" (fc1 rows, GRN, fc2 columns). timm keeps a LayerNorm inside the head (`head.norm`): it acts
on the last stream and is selected; only `head.fc` (and a `head.pre_logits` MLP, which is refused) is left.
"""

from __future__ import annotations

import torch.nn as nn

from edgeskd.selection.graph import ChannelGraph, FamilyRules, GraphBuilder, register_selection_family


def convnext_graph(model: nn.Module) -> ChannelGraph:
    b = GraphBuilder(model, "convnext")
    cur = b.chain("stem", model.stem, None)
    for i, stage in enumerate(model.stages):
        if not isinstance(stage.downsample, nn.Identity):
            cur = b.chain(f"stages.{i}.downsample", stage.downsample, cur)
        blocks = []
        for j, block in enumerate(stage.blocks):
            p = f"stages.{i}.blocks.{j}"
            blocks.append(p)
            hidden = f"{p}.mlp"
            b.conv(f"{p}.conv_dw", block.conv_dw, cur, cur)
            b.norm(f"{p}.norm", block.norm, cur)
            b.conv(f"{p}.mlp.fc1", block.mlp.fc1, hidden, cur)
            b.norm(f"{p}.mlp.norm", getattr(block.mlp, "norm", None), hidden)
            if getattr(block.mlp, "grn", None) is not None:  # ConvNeXt-V2 global response norm
                b.param(f"{p}.mlp.grn", "weight", (hidden,))
                b.param(f"{p}.mlp.grn", "bias", (hidden,))
            b.conv(f"{p}.mlp.fc2", block.mlp.fc2, cur, hidden)
            b.param(p, "gamma", (cur,))
        b.stages.append(blocks)
    b.norm("norm_pre", model.norm_pre, cur)
    b.norm("head.norm", getattr(model.head, "norm", None), cur)
    return b.finish(model.get_classifier())


RULES = register_selection_family(FamilyRules(
    "convnext", convnext_graph,
    "timm ConvNeXt V1/V2 with patch stem, depthwise blocks, layer-scale, optional GRN and the norm in the head "
    "(not a head hidden layer)"))
