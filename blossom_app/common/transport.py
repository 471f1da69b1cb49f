"""How shared blocks travel: their floating-point arrays as ``fp32`` (lossless)
or ``fp16`` (half the bytes), in both directions.

The server keeps the global model in full precision and averages in float64;
only the copies in messages are narrowed, and every receiver widens them back
to its own dtype when it loads them. Integer arrays travel unchanged.
"""

from collections.abc import Mapping

import numpy as np
import torch
from flwr.app import Array, ArrayRecord

#: ``transport`` run-config value -> dtype of floating-point arrays on the wire.
WIRE_DTYPES = {"fp32": np.dtype(np.float32), "fp16": np.dtype(np.float16)}


def wire_dtype(dtype: np.dtype, transport: str) -> np.dtype:
    """The dtype an array of ``dtype`` has in a message under ``transport``."""
    if np.issubdtype(dtype, np.floating):
        return WIRE_DTYPES[transport]
    return np.dtype(dtype)


def encode(
    arrays: ArrayRecord | Mapping[str, np.ndarray | torch.Tensor], transport: str
) -> ArrayRecord:
    """``arrays`` as they travel under ``transport`` (an ``Array`` already in its
    wire dtype is passed on as it is, not copied)."""
    record = ArrayRecord()
    for key, value in arrays.items():
        if isinstance(value, Array):
            if np.dtype(value.dtype) == wire_dtype(np.dtype(value.dtype), transport):
                record[key] = value
                continue
            value = value.numpy()
        elif isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        record[key] = Array(value.astype(wire_dtype(value.dtype, transport)))
    return record
