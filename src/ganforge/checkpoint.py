"""Checkpoints as data: tensors in one safetensors file, everything else as JSON in its metadata.

Loading never executes code (no pickle). Writes go to a temporary file that is renamed over the
old checkpoint, so a crash mid-write leaves the last good one intact. `SCHEMA` is bumped whenever
the layout changes, with a function in `MIGRATIONS` that upgrades the older layout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

FORMAT = "ganforge.checkpoint"
EXPORT_FORMAT = "ganforge.generator"
SCHEMA = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged, or from an unknown newer version."""


def _migrate_0_to_1(tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """Schema 0 (ganforge 0.0.x) named the EMA generator 'ema.*' and had no data cursor."""
    for key in [k for k in tensors if k.startswith("ema.")]:
        tensors["g_ema." + key[4:]] = tensors.pop(key)
    state.setdefault("sampler_cursor", None)


# schema N -> function upgrading an N checkpoint to N + 1, in place
MIGRATIONS: dict[int, Callable[[dict[str, torch.Tensor], dict[str, Any]], None]] = {0: _migrate_0_to_1}


def atomic_save(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str]) -> None:
    """save_file to a temporary name in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    save_file(tensors, str(tmp), metadata=metadata)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save(path: str | Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """Write a training checkpoint: `state` must be JSON-serialisable."""
    meta = {"format": FORMAT, "schema": str(SCHEMA), "state": json.dumps(state)}
    atomic_save(tensors, path, meta)


def read(path: str | Path) -> tuple[str, dict[str, torch.Tensor], dict[str, Any]]:
    """Read a ganforge safetensors file (checkpoint or exported G): (format, tensors, state), migrated."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from None
    fmt = meta.get("format")
    if fmt not in (FORMAT, EXPORT_FORMAT):
        raise CheckpointError(f"{path} is not a ganforge checkpoint (format: {fmt!r})")
    schema = int(meta.get("schema", 0))
    if schema > SCHEMA:
        raise CheckpointError(f"{path} has schema {schema}, newer than this ganforge ({SCHEMA}): upgrade ganforge")
    state = json.loads(meta.get("state", "{}"))
    for version in range(schema, SCHEMA):
        MIGRATIONS[version](tensors, state)
    return fmt, tensors, state


def load(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a training checkpoint: (tensors, state)."""
    fmt, tensors, state = read(path)
    if fmt != FORMAT:
        raise CheckpointError(f"{path} is an exported generator, not a training checkpoint")
    return tensors, state


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under 'prefix.', with the prefix removed (e.g. a module's state_dict)."""
    return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def with_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in tensors.items()}


def optimizer_to_data(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state_dict into tensors and a JSON part."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in sd["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{pid}.{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_data(tensors: dict[str, torch.Tensor], data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Rebuild an optimizer state_dict from optimizer_to_data's output."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in prefixed(tensors, prefix).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for pid, entry in data["scalars"].items():
        state.setdefault(int(pid), {}).update(entry)
    return {"state": state, "param_groups": data["param_groups"]}
