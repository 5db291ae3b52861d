"""Export to deployable artifacts (ONNX, OpenVINO IR, TensorRT) with parity gates, and bundles."""
