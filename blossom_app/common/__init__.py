"""The shared layer: what the ServerApp and every ClientApp both use.

Blocks and policies, the model and its fusion modules, input normalization,
the wire format of arrays (``transport``), the names of messages and records
(``protocol``, ``profile``, ``metrics``), the validated configuration
(``config``, ``presets``, ``modality_mix``) and the local training loops.
It imports only ``data``, ``benchmarks`` and ``errors`` (import-linter checks it).
"""
