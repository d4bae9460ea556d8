"""What this machine and the model are, as training sees them: the GPUs, their memory, and a
local model's parameter count (read from its safetensors headers, no weights loaded).

Below `launch` (which plans one process or torchrun workers from these numbers), `osft`
and `config`, so none of them imports another for a measurement.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path


def gpu_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def gpu_memory_bytes() -> int | None:
    """Total memory of the smallest visible GPU (None without one)."""
    n = gpu_count()
    if not n:
        return None
    import torch

    return min(torch.cuda.get_device_properties(i).total_memory for i in range(n))


def count_parameters(model_path: str | Path) -> int | None:
    """Parameters of a local safetensors model, read from the file headers (no weights loaded).

    None when the model is not a local safetensors directory (e.g. a hub name).
    """
    path = Path(model_path)
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path] if path.suffix == ".safetensors" else []
    if not files:
        return None
    total = 0
    for file in files:
        with file.open("rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
        for name, tensor in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in tensor["shape"]:
                count *= dim
            total += count
    return total
