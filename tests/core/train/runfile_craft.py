"""Crafting run files (``.run.npz``) that lie: arrays whose .npy header declares any shape and
dtype over a little data, members whose zip headers declare any unpacked size, and deflated
members that unpack hugely (zip bombs). Nothing here allocates what the file declares: payloads
are streamed in 1 MiB pieces."""
from __future__ import annotations

import io
import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_PIECE = 2**20


@dataclass
class Member:
    """One ``NAME.npy`` in the zip: an .npy header (``shape``, ``dtype``) followed by ``zeros``
    zero bytes (or ``data``), stored or deflated; ``declared`` overrides the unpacked size that the
    zip's local header and central directory state (a lie: the data is not that long)."""

    name: str
    shape: tuple = ()
    dtype: str = "<f8"
    data: bytes | None = None
    zeros: int = 0
    deflate: bool = False
    declared: int | None = None

    def __repr__(self) -> str:      # hypothesis prints failing examples: not the bytes
        data = None if self.data is None else f"<{len(self.data)} bytes>"
        return (f"Member({self.name!r}, {self.shape}, {self.dtype!r}, data={data}, zeros={self.zeros}, "
                f"deflate={self.deflate}, declared={self.declared})")

    @classmethod
    def of(cls, name: str, array: np.ndarray, deflate: bool = False) -> "Member":
        return cls(name, array.shape, array.dtype.str, np.ascontiguousarray(array).tobytes(), deflate=deflate)


def npy_header(shape: tuple, dtype: str) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                               "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def members_of(arrays: dict[str, np.ndarray], deflate: bool = False) -> dict[str, Member]:
    return {name: Member.of(name, a, deflate) for name, a in arrays.items()}


def meta_array(settings: dict, probe: list, **extra) -> np.ndarray:
    from core.train.runfile import RUN_FORMAT, RUN_VERSION
    return np.array(json.dumps({"format": RUN_FORMAT, "version": RUN_VERSION, "settings": settings,
                                "probe_tokens": probe, "device": "cpu", "elapsed_s": 1.0, "notes": [], **extra}))


def write_npz(path: Path, members: dict[str, Member] | list[Member]) -> Path:
    items = list(members.values()) if isinstance(members, dict) else list(members)
    with zipfile.ZipFile(path, "w", allowZip64=True) as zf:
        for m in items:
            method = zipfile.ZIP_DEFLATED if m.deflate else zipfile.ZIP_STORED
            info = zipfile.ZipInfo(m.name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            with zf.open(info, "w") as out:
                out.write(npy_header(m.shape, m.dtype))
                if m.data is not None:
                    out.write(m.data)
                left, piece = m.zeros, bytes(min(m.zeros, _PIECE))
                while left > 0:
                    out.write(piece[:left])
                    left -= len(piece)
    lies = {m.name + ".npy": m.declared for m in items if m.declared is not None}
    if lies:
        _declare_sizes(path, lies)
    return path


def _declare_sizes(path: Path, sizes: dict[str, int]) -> None:
    """Patch the unpacked size in both the local header and the central directory entry."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    for name, size in sizes.items():
        info, encoded = infos[name], name.encode()
        assert info.file_size < 2**32 - 1 and size < 2**32 - 1, "zip64 sizes are not patched here"
        local = info.header_offset
        assert raw[local:local + 4] == b"PK\x03\x04"
        raw[local + 22:local + 26] = struct.pack("<I", size)
        at = raw.find(b"PK\x01\x02")
        while at != -1:
            if raw[at + 46:at + 46 + len(encoded)] == encoded:
                raw[at + 24:at + 28] = struct.pack("<I", size)
                break
            at = raw.find(b"PK\x01\x02", at + 4)
        else:
            raise AssertionError(f"no central directory entry for {name}")
    path.write_bytes(bytes(raw))


# ---- hypothesis: run files that lie in every way the zip and .npy formats allow -----------------
GiB = 2**30
DTYPES = ("<f4", "<f8", "<i8", "<i4", "|u1", "|b1", "<c16", ">f8", "<U8")


def crafted(run):
    """A strategy of (description, members): the valid run with one lie (or, now and then, none).
    Declared sizes reach 1 GiB; real payloads stay at most 16 MiB (zeros, deflated) or 256 KiB
    (random bytes), mixed so that compression ratios range from 1 to ~1000."""
    from hypothesis import strategies as st

    from core.train.runfile import run_arrays
    arrays = run_arrays(run)
    names = sorted(arrays)

    @st.composite
    def strategy(draw):
        members = members_of(arrays, deflate=draw(st.booleans()))
        kind = draw(st.sampled_from(["shape", "declared", "bomb", "settings", "valid"]))
        target = draw(st.sampled_from(names))
        m = members[target]
        if kind == "shape":          # a header that declares any shape and dtype up to 1 GiB
            dtype = draw(st.sampled_from(DTYPES))
            item = np.dtype(dtype).itemsize
            head = draw(st.sampled_from([(), tuple(m.shape[:-1])]))
            per = max(1, item * int(np.prod(head or (1,))))
            last = draw(st.integers(0, GiB // per))
            members[target] = Member(target, head + (last,), dtype, data=draw(st.binary(max_size=4096)),
                                     zeros=draw(st.integers(0, 2**16)), deflate=draw(st.booleans()))
        elif kind == "declared":     # the zip says the member unpacks to anything up to 1 GiB
            m.declared = draw(st.integers(0, GiB))
        elif kind == "bomb":         # real zeros, deflated: ratio ~1000, 16 MiB at most
            zeros = draw(st.integers(0, 16 * 2**20))
            noise = draw(st.integers(0, 256 * 2**10))
            dtype = m.dtype if target != "meta" else "<f8"
            item = np.dtype(dtype).itemsize
            members[target] = Member(target, ((zeros + noise) // item,), dtype,
                                     data=np.random.default_rng(zeros).bytes(noise), zeros=zeros,
                                     deflate=True, declared=draw(st.one_of(st.none(), st.integers(0, GiB))))
        elif kind == "settings":     # settings that imply far larger arrays than the file holds
            settings = {**run.settings.to_dict(),
                        "seq_len": draw(st.integers(2, 256)), "d_model": 16 * draw(st.integers(1, 64)),
                        "num_heads": draw(st.sampled_from([1, 2, 4, 8, 16])),
                        "num_layers": draw(st.integers(1, 8)), "steps": draw(st.integers(1, 100_000)),
                        "snapshot_every": draw(st.integers(50, 100_000))}
            T = 2 * settings["seq_len"] if settings["task"] == "induction" else settings["seq_len"]
            members["meta"] = Member.of("meta", meta_array(settings, ["t"] * T))
        return f"{kind} {target}", members

    return strategy()
