"""ViT / DeiT (timm VisionTransformer).

Channel spaces: "embed" (the residual stream: patch embedding rows, class/register tokens, position embedding,
every norm over the stream, attention proj and MLP fc2 rows, qkv and fc1 columns, layer-scale), per block
"blocks.i.attn" (grouped by heads: q, k and v rows of the fused qkv (repeat 3), proj columns, q/k norms within a
head) and "blocks.i.mlp" (fc1 rows, fc2 columns). Heads are selected whole when head_dim is kept (the factory
always keeps it); if a student has a smaller head_dim, the same within-head indices are used in every head, and the
attention scale (head_dim ** -0.5) then differs from the teacher's.

The position embedding's token grid is resampled (timm's bicubic resample_abs_pos_embed, class/register tokens
kept) when the student's patch grid differs, e.g. a 64-px student of a 224-px teacher. The final `norm` and
`fc_norm` (timm's pre-logits norm for average pooling) act on the stream and are selected; only `head` is left.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from edgeskd._compat import import_timm
from edgeskd.errors import SelectionError
from edgeskd.selection.graph import ChannelGraph, Dim, FamilyRules, GraphBuilder, register_selection_family

import_timm()
from timm.layers import Attention, resample_abs_pos_embed  # noqa: E402

EMBED = "embed"


def vit_graph(model: nn.Module) -> ChannelGraph:
    b = GraphBuilder(model, "vit")
    for token in ("cls_token", "reg_token", "pos_embed"):
        b.param("", token, (None, None, EMBED))
    b.chain("patch_embed.proj", model.patch_embed.proj, None, EMBED)
    b.norm("patch_embed.norm", getattr(model.patch_embed, "norm", None), EMBED)
    b.norm("norm_pre", model.norm_pre, EMBED)
    stage = []
    for i, block in enumerate(model.blocks):
        p = f"blocks.{i}"
        stage.append(p)
        attn, space, mlp = block.attn, f"{p}.attn", f"{p}.mlp"
        if type(attn) is not Attention:
            raise SelectionError(f"vit: {p}.attn is a {type(attn).__name__}; weight selection supports timm's "
                                 f"standard Attention (fused qkv) only")
        b.groups[space] = attn.num_heads
        b.norm(f"{p}.norm1", block.norm1, EMBED)
        b.conv(f"{p}.attn.qkv", attn.qkv, Dim(space, repeat=3), EMBED)
        b.norm(f"{p}.attn.q_norm", attn.q_norm, Dim(space, within=True))
        b.norm(f"{p}.attn.k_norm", attn.k_norm, Dim(space, within=True))
        b.norm(f"{p}.attn.norm", attn.norm, space)
        b.conv(f"{p}.attn.proj", attn.proj, EMBED, space)
        b.param(f"{p}.ls1", "gamma", (EMBED,))
        b.norm(f"{p}.norm2", block.norm2, EMBED)
        b.conv(f"{p}.mlp.fc1", block.mlp.fc1, mlp, EMBED)
        b.norm(f"{p}.mlp.norm", getattr(block.mlp, "norm", None), mlp)
        b.conv(f"{p}.mlp.fc2", block.mlp.fc2, EMBED, mlp)
        b.param(f"{p}.ls2", "gamma", (EMBED,))
    b.stages = [stage]
    b.norm("norm", model.norm, EMBED)
    b.norm("fc_norm", model.fc_norm, EMBED)
    b.meta.update(grid=tuple(model.patch_embed.grid_size), prefix_tokens=0 if model.no_embed_class
                  else model.num_prefix_tokens)
    return b.finish(model.get_classifier())


def _adapt_pos_embed(key: str, tensor: torch.Tensor, shape: torch.Size, teacher: ChannelGraph,
                     student: ChannelGraph) -> torch.Tensor:
    if key != "pos_embed":
        raise SelectionError(f"vit: {key} has shape {tuple(tensor.shape)} after selection, student needs {tuple(shape)}")
    if teacher.meta["prefix_tokens"] != student.meta["prefix_tokens"]:
        raise SelectionError(f"vit: the teacher's position embedding covers {teacher.meta['prefix_tokens']} prefix "
                             f"tokens, the student's {student.meta['prefix_tokens']}; they must match")
    return resample_abs_pos_embed(tensor.float(), list(student.meta["grid"]), list(teacher.meta["grid"]),
                                  num_prefix_tokens=student.meta["prefix_tokens"]).to(tensor.dtype)


RULES = register_selection_family(FamilyRules(
    "vit", vit_graph,
    "timm VisionTransformer with standard fused-qkv attention, class/register tokens, absolute position embedding, "
    "optional layer-scale, qk-norm and fc_norm (not attention pooling, SwiGLU or distilled DeiT)",
    first_block_fixed=False, adapt=_adapt_pos_embed))
