"""Hashes that identify what is measured. Latency does not depend on trained weight values, so a candidate's
architecture hash covers the ONNX graph's structure (operators, wiring, attributes, tensor shapes and dtypes) and
leaves out initializer values: the same student measured before and after training hits the same cache entry."""

from __future__ import annotations

import hashlib
import os

from edgeskd.errors import LatencyError

_SMALL_TENSOR_BYTES = 1024  # integer constants (Reshape targets, axes, indices) change the graph's work


def architecture_hash(onnx_path: str | os.PathLike) -> str:
    import onnx

    try:
        model = onnx.load(str(onnx_path))
    except Exception as exc:
        raise LatencyError(f"cannot read ONNX model {onnx_path}: {exc}") from exc
    h = hashlib.sha256()

    def add(*parts: object) -> None:
        h.update(repr(parts).encode())
        h.update(b"\x00")

    add("opsets", sorted((o.domain, o.version) for o in model.opset_import))
    graph = model.graph
    for value in list(graph.input) + list(graph.output):
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]
        add("io", value.name, value.type.tensor_type.elem_type, dims)
    for init in graph.initializer:
        add("init", init.name, init.data_type, list(init.dims), _small_value(init))
    for node in graph.node:
        attrs = []
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                attrs.append((attr.name, attr.t.data_type, list(attr.t.dims), _small_value(attr.t)))
            elif attr.type == onnx.AttributeProto.GRAPH:
                attrs.append((attr.name, attr.g.SerializeToString(deterministic=True)))
            else:
                attrs.append((attr.name, str(onnx.helper.get_attribute_value(attr))))
        add("node", node.domain, node.op_type, list(node.input), list(node.output), attrs)
    return "arch-" + h.hexdigest()


def _small_value(tensor: object) -> bytes | None:
    from onnx import numpy_helper

    array = numpy_helper.to_array(tensor)  # type: ignore[arg-type]
    # Float tensors are weights (or scalars like epsilon): their values do not change the work done.
    if array.dtype.kind in "iub" and array.nbytes <= _SMALL_TENSOR_BYTES:
        return array.tobytes()
    return None
