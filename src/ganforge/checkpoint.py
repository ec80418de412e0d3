"""Checkpoints as data: tensors in one safetensors file, everything else as JSON in its metadata.

Loading never executes code (no pickle): the file is checked byte by byte against the safetensors
layout (header length, JSON header, every tensor's dtype, shape and byte range) before any tensor is
built, and its sha256 is verified, so a truncated, bit-flipped or foreign file is named as such in one
line. Writes go to a temporary file whose layout is read back, fsynced and renamed over the old checkpoint;
`save` first keeps the old one as `<name>.prev.safetensors`, so at every instant a complete checkpoint
exists on disk. `SCHEMA` is bumped whenever the layout changes, with a function in `MIGRATIONS` that
upgrades the older layout.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors.torch import save_file
from torch import nn

from ganforge import fsio

FORMAT = "ganforge.checkpoint"
EXPORT_FORMAT = "ganforge.generator"
SCHEMA = 3
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit; a longer "header" is not a safetensors file
DIGEST_KEY = "sha256"  # metadata key of the file's digest; a new digest definition needs a new key

# safetensors dtype name -> torch dtype (the ones this torch has; 4- and 6-bit floats are not supported)
DTYPES: dict[str, torch.dtype] = {
    name: dtype
    for name, dtype in {
        "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16, "I32": torch.int32,
        "I64": torch.int64, "U16": getattr(torch, "uint16", None), "U32": getattr(torch, "uint32", None),
        "U64": getattr(torch, "uint64", None), "F16": torch.float16, "BF16": torch.bfloat16,
        "F32": torch.float32, "F64": torch.float64, "C64": torch.complex64,
        "F8_E4M3": getattr(torch, "float8_e4m3fn", None), "F8_E5M2": getattr(torch, "float8_e5m2", None),
    }.items()
    if dtype is not None
}
_DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}

# per file format: the state keys readers rely on, and the JSON type each must have
REQUIRED_STATE_KEYS: dict[str, dict[str, type]] = {
    FORMAT: {"config": dict, "step": int, "opt_g": dict, "opt_d": dict, "data_shape": list, "family": str},
    EXPORT_FORMAT: {"config": dict, "step": int, "data_shape": list, "family": str},
}
_TYPE_WORDS = {dict: "a JSON object", int: "an integer", list: "a list", str: "a string"}

# first bytes of files that are often mistaken for checkpoints
_SIGNATURES = [
    (b"\x80", "a pickle"),
    (b"PK\x03\x04", "a zip archive (torch.save writes those)"),
    (b"\x93NUMPY", "a numpy .npy file"),
    (b"\x1f\x8b", "a gzip file"),
]


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged, or from an unknown newer version."""


class NonFiniteError(CheckpointError):
    """A tensor about to be saved holds NaN or infinite values."""


class CheckpointWriteError(CheckpointError, OSError):
    """The system refused to write a checkpoint (full disk, no permission, read-only filesystem)."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno  # set after init, so str() stays the one-line message


class _Damaged(Exception):
    """What is wrong with a file, to follow its path in a CheckpointError."""


def _migrate_0_to_1(tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """Schema 0 (ganforge 0.0.x) named the EMA generator 'ema.*' and had no data cursor."""
    for key in [k for k in tensors if k.startswith("ema.")]:
        tensors["g_ema." + key[4:]] = tensors.pop(key)
    state.setdefault("sampler_cursor", None)


# schema N -> function upgrading an N checkpoint to N + 1, in place
def _migrate_1_to_2(tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """Schema 1 named the data kind (1d, 2d, image) instead of the family, and saved the batch order as a
    permutation tensor ('sampler.perm', kept: it stays that epoch's order) with a cursor."""
    family = {"1d": "points", "2d": "points", "image": "images"}.get(state.pop("data_kind", None))
    if family is not None:  # else the state check names the missing family
        state["family"] = family
    cursor = state.pop("sampler_cursor", None)
    if cursor is not None:
        state["sampler"] = {"epoch": 0, "cursor": cursor}
    else:
        tensors.pop("sampler.perm", None)


def _migrate_2_to_3(tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """Schema 2's mlp D with labels or a minibatch layer (ConditionalDiscriminator) kept its hidden layers
    after a Flatten, as 'd.body.1.<i>'; every mlp D is now one Discriminator with them at 'd.body.<i>'."""
    model = state.get("config", {}).get("model", {})
    d = model.get("d", {})
    if d.get("arch", "mlp") != "mlp" or (model.get("conditional", "none"), d.get("minibatch", "none")) == ("none",
                                                                                                         "none"):
        return
    for key in [k for k in tensors if k.startswith("d.body.1.")]:
        tensors["d.body." + key[len("d.body.1."):]] = tensors.pop(key)


MIGRATIONS: dict[int, Callable[[dict[str, torch.Tensor], dict[str, Any]], None]] = {0: _migrate_0_to_1,
                                                                                     1: _migrate_1_to_2,
                                                                                     2: _migrate_2_to_3}


# ---------------------------------------------------------------------------------------------------
# The file layout: 8-byte little-endian header length, JSON header, then the tensors' bytes


@dataclass(frozen=True)
class _Entry:
    """One tensor as the header describes it; `begin`/`end` are byte offsets into the data area."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _show(name: object) -> str:
    """A name from a file, quoted, on one line and at most about 80 characters."""
    text = repr(name)
    return text if len(text) <= 80 else text[:60] + "..." + text[-16:]


def _json_problem(e: ValueError | RecursionError) -> str:
    """Why json.loads refused a text, in a few words (it also raises plain ValueError and RecursionError)."""
    if isinstance(e, json.JSONDecodeError):
        return f"{e.msg} at char {e.pos}"
    if isinstance(e, RecursionError):
        return "nested too deeply"
    return _one_line(str(e).split(";")[0])[:120]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) < len(pairs):  # json.loads would silently keep the last of two same-named entries
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _Damaged(f"is corrupt (its header names {_show(twice)} twice)")
    return out


def _is_count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _parse_entry(name: str, info: Any, data_len: int) -> _Entry:
    """Check one header entry against the data area's size; a bad entry raises _Damaged."""
    if not isinstance(info, dict) or {"dtype", "shape", "data_offsets"} - set(info):
        raise _Damaged(f"is corrupt (tensor {_show(name)} lacks dtype, shape or data_offsets)")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise _Damaged(f"is corrupt or uses an unsupported dtype (tensor {_show(name)} has dtype "
                       f"{_show(str(dtype))})")
    # sizes below 2**63 (and at most 64 of them) keep the byte count below a 4,100-bit product
    if not (isinstance(shape, list) and len(shape) <= 64 and all(_is_count(d) and d < 2**63 for d in shape)):
        raise _Damaged(f"is corrupt (tensor {_show(name)} has shape {_one_line(shape)[:60]}, not a list of sizes)")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)
            and offsets[0] <= offsets[1]):
        raise _Damaged(f"is corrupt (tensor {_show(name)} has data_offsets {_one_line(offsets)[:60]})")
    begin, end = offsets
    need = math.prod(shape) * DTYPES[dtype].itemsize
    if end - begin != need:
        raise _Damaged(f"is corrupt (tensor {_show(name)}: {dtype} of shape {_one_line(shape)[:60]} needs "
                       f"{need} bytes, its data_offsets span {end - begin})")
    if end > data_len:
        raise _Damaged(f"is corrupt (truncated: tensor {_show(name)} ends at byte {end} of a data area of "
                       f"{data_len})")
    return _Entry(name, dtype, tuple(shape), begin, end)


def _parse_header(raw: bytes, data_len: int) -> tuple[dict[str, str], list[_Entry]]:
    """The metadata and the tensor entries of a JSON header, checked to tile the data area exactly."""
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError:
        raise _Damaged("is corrupt or not a safetensors file (its header is not UTF-8 text)") from None
    except (ValueError, RecursionError) as e:
        raise _Damaged(f"is corrupt or not a safetensors file (its header is not JSON: {_json_problem(e)})") from None
    if not isinstance(header, dict):
        raise _Damaged(f"is corrupt (its header is a JSON {type(header).__name__}, not an object)")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise _Damaged("is corrupt (its __metadata__ is not a map of names to strings)")
    entries = sorted((_parse_entry(name, info, data_len) for name, info in header.items()),
                     key=lambda e: (e.begin, e.end))
    at, last = 0, None
    for e in entries:
        if e.begin < at:
            raise _Damaged(f"is corrupt (tensors {_show(last)} and {_show(e.name)} overlap)")
        if e.begin > at:
            raise _Damaged(f"is corrupt ({e.begin - at} bytes before tensor {_show(e.name)} belong to no tensor)")
        at, last = e.end, e.name
    if at != data_len:
        raise _Damaged(f"is corrupt ({data_len - at} bytes after the last tensor belong to no tensor)")
    return meta, entries


def _read_header(f: BinaryIO) -> tuple[dict[str, str], list[_Entry]]:
    """Read and check the length field and header of an open safetensors file: (metadata, entries by offset).

    Both are checked against the file's real size before anything else is read, so a header
    declaring absurd sizes costs nothing; nothing is ever unpickled.
    """
    size = os.fstat(f.fileno()).st_size
    head = f.read(9)
    # A safetensors header is JSON right after the 8-byte length: only a file without that shape is named by
    # its first bytes (a valid file whose length field starts with 0x80 is not a pickle).
    shaped = len(head) == 9 and head[8:9] == b"{"
    for magic, what in _SIGNATURES if not shaped else []:
        if head.startswith(magic):
            raise _Damaged(f"is not a safetensors file (it looks like {what}); ganforge never unpickles")
    f.seek(8)
    head = head[:8]
    if len(head) < 8:
        raise _Damaged(f"is corrupt or not a safetensors file (only {len(head)} bytes long)")
    n = int.from_bytes(head, "little")
    if n > MAX_HEADER_BYTES:
        raise _Damaged(f"is not a safetensors file (its length field gives a {n}-byte header, over the "
                       f"{MAX_HEADER_BYTES}-byte limit)")
    if 8 + n > size:
        raise _Damaged(f"is corrupt (truncated: its header needs {n} bytes, the file has {size - 8} after "
                       "the length field)")
    return _parse_header(f.read(n), size - 8 - n)


def _read_file(path: Path) -> tuple[dict[str, str], list[_Entry], dict[str, torch.Tensor]]:
    """Read and check a safetensors file through one open handle: (metadata, entries, each tensor's bytes).

    Each tensor's bytes are read straight into its own uint8 tensor (no second copy of the file).
    """
    with open(path, "rb") as f:
        meta, entries = _read_header(f)
        blobs = {}
        for e in entries:  # by offset: they tile the data area, so one sequential read
            blob = torch.empty(e.end - e.begin, dtype=torch.uint8)  # (nbytes,)
            if len(blob) and f.readinto(memoryview(blob.numpy())) != len(blob):  # the file shrank meanwhile
                raise _Damaged(f"is corrupt (truncated while read, in tensor {_show(e.name)})")
            blobs[e.name] = blob
    return meta, entries, blobs


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _raw(t: torch.Tensor) -> memoryview:
    """A contiguous CPU tensor's bytes, as safetensors stores them (little-endian)."""
    return memoryview(t.reshape(-1).view(torch.uint8).numpy())  # (numel * itemsize,)


def _digest(meta: dict[str, str], items: Iterable[tuple[str, str, tuple[int, ...], memoryview]]) -> str:
    """sha256 of the metadata (less the digest) and of every tensor's name, dtype, shape and bytes, by name."""
    h = hashlib.sha256(json.dumps({k: v for k, v in meta.items() if k != DIGEST_KEY}, sort_keys=True).encode())
    for name, dtype, shape, raw in sorted(items, key=lambda item: item[0]):
        h.update(json.dumps([name, dtype, list(shape)]).encode())
        h.update(raw)
    return h.hexdigest()


def _check_digest(meta: dict[str, str], entries: list[_Entry], blobs: dict[str, torch.Tensor]) -> None:
    """Compare the stored digest (when the file has one: older files do not) with the bytes read."""
    if DIGEST_KEY not in meta:
        return
    actual = _digest(meta, ((e.name, e.dtype, e.shape, memoryview(blobs[e.name].numpy())) for e in entries))
    if actual != meta[DIGEST_KEY]:
        raise _Damaged("is corrupt (checksum mismatch: its bytes changed after it was written)")


def _verify(path: Path) -> None:
    """Raise _Damaged (or OSError) unless `path` is a complete safetensors file matching its digest."""
    meta, entries, blobs = _read_file(path)
    _check_digest(meta, entries, blobs)


def previous_path(path: str | Path) -> Path:
    """Where `save` keeps the checkpoint it replaced: `<name>.prev.safetensors` beside `path`."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix or '.safetensors'}")


def _previous_hint(path: Path) -> str:
    """'; the previous checkpoint P is intact: ...' when `path` has a complete, verified predecessor."""
    prev = previous_path(path)
    if prev == path or not prev.is_file():
        return ""
    try:
        _verify(prev)
    except (_Damaged, OSError):
        return ""
    return f"; the previous checkpoint {prev} is intact: copy it over, or resume from it"


# ---------------------------------------------------------------------------------------------------
# Writing


def check_finite(tensors: dict[str, torch.Tensor], what: str) -> None:
    """Raise NonFiniteError naming the first floating tensor that holds NaN or infinite values."""
    for name, t in tensors.items():
        if not (t.is_floating_point() or t.is_complex()):
            continue
        t = t if t.element_size() > 1 else t.float()  # no 8-bit float kernels
        if bool(torch.isfinite(t.sum())):  # NaN or inf anywhere makes the sum NaN or inf: 30x faster than isfinite
            continue
        finite = torch.isfinite(t)
        if not bool(finite.all()):  # else only the sum overflowed
            kind = "NaN" if bool(torch.isnan(t).any()) else "infinite"
            raise NonFiniteError(f"refusing to save {what}: tensor {name} holds {kind} values "
                                 f"({int((~finite).sum())} of {t.numel()} not finite)")


def _keep_previous(path: Path) -> None:
    """Make `<name>.prev.safetensors` the current `path` (a hard link, else a copy), if that one is intact.

    A damaged current file is not kept: the older .prev stays the last good checkpoint.
    """
    try:
        _verify(path)
    except (_Damaged, FileNotFoundError):
        return
    prev = previous_path(path)
    tmp = prev.with_name(f"{prev.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        try:
            os.link(path, tmp)
        except OSError:  # a filesystem without hard links
            shutil.copyfile(path, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, prev)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def atomic_save(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str],
                keep_previous: bool = False) -> None:
    """Write tensors and metadata (plus its sha256) to `path` atomically; the old file is untouched on failure.

    The file goes to a unique temporary name beside `path`; its layout is read back and checked against
    its size, then it is fsynced and renamed over `path`. With `keep_previous` the replaced file is
    first kept as `previous_path(path)`. Floating tensors must be finite (NonFiniteError); a refusing
    system raises CheckpointWriteError.
    """
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    existed = path.is_file()
    kept = "the previous checkpoint is intact" if existed else "nothing was written"
    try:
        check_finite(tensors, str(path))
    except NonFiniteError as e:
        raise NonFiniteError(f"{e}; {kept}") from None
    unknown = next((k for k, v in tensors.items() if v.dtype not in _DTYPE_NAMES), None)
    if unknown is not None:
        raise CheckpointError(f"cannot save {path}: tensor {unknown} has dtype {_dtype_name(tensors[unknown].dtype)}, "
                              "which safetensors cannot store")
    meta = {k: v for k, v in metadata.items() if k != DIGEST_KEY}
    meta[DIGEST_KEY] = _digest(meta, ((k, _DTYPE_NAMES[v.dtype], tuple(v.shape), _raw(v)) for k, v in tensors.items()))
    try:
        with fsio.atomic_path(path, "checkpoint ") as tmp:
            save_file(tensors, str(tmp), metadata=meta)
            try:  # the layout read back against the file's size: a writer that stopped short is caught
                with open(tmp, "rb") as f:
                    _read_header(f)
            except _Damaged as e:
                raise CheckpointError(f"cannot write checkpoint {path}: the written file {e}; {kept}") from None
            if keep_previous and existed:
                _keep_previous(path)
    except fsio.WriteError as e:
        raise CheckpointWriteError(f"{e}; {kept}", e.errno) from None


def save(path: str | Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """Write a training checkpoint: `state` must be JSON-serialisable; the old one is kept as .prev."""
    meta = {"format": FORMAT, "schema": str(SCHEMA), "state": json.dumps(state)}
    atomic_save(tensors, path, meta, keep_previous=True)


# ---------------------------------------------------------------------------------------------------
# Reading


def _tensors(entries: list[_Entry], blobs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each tensor from its checked bytes, with its dtype and shape, by name."""
    out = {}
    for e in sorted(entries, key=lambda e: e.name):
        dtype = DTYPES[e.dtype]
        blob = blobs[e.name]
        out[e.name] = blob.view(dtype).reshape(e.shape) if len(blob) else torch.empty(e.shape, dtype=dtype)
    return out


def _schema(meta: dict[str, str]) -> int:
    text = meta.get("schema", "0")
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise _Damaged(f"has damaged metadata (schema is {_one_line(text)[:40]!r}, not a whole number)")
    return int(text)


def _state(meta: dict[str, str]) -> dict[str, Any]:
    if "state" not in meta:
        raise _Damaged("has damaged metadata (no 'state' entry)")
    try:
        state = json.loads(meta["state"])
    except (ValueError, RecursionError) as e:
        raise _Damaged(f"has damaged metadata ('state' is not valid JSON: {_json_problem(e)})") from None
    if not isinstance(state, dict):
        raise _Damaged(f"has damaged metadata ('state' is a JSON {type(state).__name__}, not an object)")
    return state


def _check_state(fmt: str, state: dict[str, Any]) -> None:
    """Every key of REQUIRED_STATE_KEYS[fmt] present, with its JSON type."""
    kind = "training checkpoint" if fmt == FORMAT else "exported generator"
    for key, typ in REQUIRED_STATE_KEYS[fmt].items():
        if key not in state:
            raise _Damaged(f"has damaged metadata (state has no {key!r}, which every {kind} has)")
        value = state[key]
        if not isinstance(value, typ) or isinstance(value, bool):
            raise _Damaged(f"has damaged metadata (state {key!r} is {_one_line(json.dumps(value))[:40]}, expected "
                           f"{_TYPE_WORDS[typ]})")
    if state["step"] < 0:
        raise _Damaged(f"has damaged metadata (state 'step' is {state['step']})")
    shape = state["data_shape"]
    if not shape or not all(_is_count(d) and d > 0 for d in shape):
        raise _Damaged(f"has damaged metadata (state 'data_shape' is {_one_line(shape)[:40]}, expected sizes)")


def read(path: str | Path) -> tuple[str, dict[str, torch.Tensor], dict[str, Any]]:
    """Read a ganforge safetensors file (checkpoint or exported G): (format, tensors, state), migrated.

    Every failure is a one-line CheckpointError naming the file and the problem, and, where the file
    is damaged and `save` kept an intact predecessor, naming that one.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}{_previous_hint(path)}")
    try:
        meta, entries, blobs = _read_file(path)
        _check_digest(meta, entries, blobs)
        fmt = meta.get("format")
        if fmt not in (FORMAT, EXPORT_FORMAT):
            raise _Damaged(f"is not a ganforge checkpoint (format: {_show(fmt)})")
        schema = _schema(meta)
        if schema > SCHEMA:
            raise CheckpointError(f"{path} was written by a newer ganforge (schema {schema} > {SCHEMA}): "
                                  "upgrade ganforge to read it")
        state = _state(meta)
        tensors = _tensors(entries, blobs)
        for version in range(schema, SCHEMA):
            try:
                MIGRATIONS[version](tensors, state)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise _Damaged(f"could not be upgraded from schema {version} ({type(e).__name__}: "
                               f"{_one_line(e)})") from None
        _check_state(fmt, state)
    except _Damaged as e:
        raise CheckpointError(f"{path} {e}{_previous_hint(path)}") from None
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {fsio.describe_os_error(e)}") from None
    return fmt, tensors, state


def load(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a training checkpoint: (tensors, state)."""
    fmt, tensors, state = read(path)
    if fmt != FORMAT:
        raise CheckpointError(f"{path} is an exported generator, not a training checkpoint")
    return tensors, state


# ---------------------------------------------------------------------------------------------------
# Tensors against what a model expects


def state_dict_spec(module: nn.Module) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    """What `module.load_state_dict` expects: {name: (dtype, shape)}."""
    return {k: (v.dtype, tuple(v.shape)) for k, v in module.state_dict().items()}


def check_tensors(tensors: dict[str, torch.Tensor], expected: dict[str, tuple[torch.dtype, tuple[int, ...]]],
                  what: str) -> None:
    """Raise CheckpointError naming the first missing, unexpected, or wrong-dtype/shape tensor of `what`."""
    missing = [k for k in expected if k not in tensors]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{what}: tensor {missing[0]} is missing{more}")
    for name, (dtype, shape) in expected.items():
        t = tensors[name]
        if t.dtype != dtype:
            raise CheckpointError(f"{what}: {name} has dtype {_dtype_name(t.dtype)}, expected {_dtype_name(dtype)}")
        if tuple(t.shape) != tuple(shape):
            raise CheckpointError(f"{what}: {name} has shape {tuple(t.shape)}, expected {tuple(shape)}")
    extra = [k for k in tensors if k not in expected]
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise CheckpointError(f"{what}: unexpected tensor {extra[0]}{more}")


# ---------------------------------------------------------------------------------------------------
# Naming helpers and optimizers


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under 'prefix.', with the prefix removed (e.g. a module's state_dict)."""
    return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def with_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries renamed 'prefix.<name>' (the inverse of `prefixed`)."""
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
