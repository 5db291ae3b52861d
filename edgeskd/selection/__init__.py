"""Weight selection (Xu et al., ICLR 2024): initialise a smaller same-family student from a subset of a pretrained
teacher's weights, consistently across every tensor that shares a channel space; and dual selection, the two
initialisations (model A and model B) that dual self-knowledge distillation starts from.

    from edgeskd.selection import select_weights, apply_selection, select_dual
    sel = select_weights(teacher, student, "uniform+first")
    apply_selection(student, sel)
"""

from edgeskd.selection import convnext, efficientnet, resnet, vit  # noqa: F401  (register the family rules)
from edgeskd.selection.dual import DualSelection, select_dual
from edgeskd.selection.engine import Selection, TensorSource, apply_selection, select_weights
from edgeskd.selection.graph import (ChannelGraph, Dim, FamilyRules, get_rules, list_selection_families,
                                     register_selection_family)
from edgeskd.selection.io import load_selection, save_dual_selection
from edgeskd.selection.strategies import (SpaceInfo, Strategy, list_element_strategies, list_layer_strategies,
                                          parse_strategy, register_element_strategy, register_layer_strategy)

__all__ = [
    "DualSelection", "select_dual", "Selection", "TensorSource", "apply_selection", "select_weights",
    "ChannelGraph", "Dim", "FamilyRules", "get_rules", "list_selection_families", "register_selection_family",
    "load_selection", "save_dual_selection", "SpaceInfo", "Strategy", "list_element_strategies",
    "list_layer_strategies", "parse_strategy", "register_element_strategy", "register_layer_strategy",
]
