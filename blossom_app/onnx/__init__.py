"""A personalized model as a file a device runs: ONNX export with its parity
check and int8 variant (``export``), the model card (``model_card``) and
onnxruntime sessions and timings (``runtime``). Used on the node
(``client.node_export``) and by ``blossom export``."""
