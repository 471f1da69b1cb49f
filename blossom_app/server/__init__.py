"""What runs in the ServerApp process: the block-wise strategy, the fleet of
nodes, the screening and averaging of replies, server optimizers and the export
round. Never imported by a node (import-linter checks it)."""
