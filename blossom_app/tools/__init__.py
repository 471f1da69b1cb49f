"""The ``blossom`` command and what only it runs: starting Flower runs,
sweeps, the centralized baseline and ``info``. Top of the layers: may import
every other package, and none imports it."""
