"""What an artifact costs to ship: its download size and the Huffman-coded size of its weights.

Example::

    download_bytes(Path("model.tflite"))          # gzip -9 of the file (of a tar of a folder)
    compressed_sizes(Path("model.mlpackage"))     # {"gzip-9": ..., "zstd-19": ...}
    huffman_bytes({"conv": kernel, "bias": b})    # Huffman stream + codebook, in bytes
    size_report(path, FORMATS.get("tflite").read_weights)   # what the manifest entry gets

Deep Compression's third stage (Han et al. 2016, "Deep Compression", section 4) is entropy
coding: the quantized weights of each layer take few distinct values with a skewed
distribution, and a Huffman code over them saves another 20-30 %. What is counted here:

- **download size**: the file an app would ship, compressed as app stores and CDNs do: gzip at
  level 9 of the file, or of a deterministic tar (sorted names, zero times and owners) of a
  package folder such as Core ML's ``.mlpackage``. zstd at level 19 is added beside it when a
  zstd module is importable (``compression.zstd`` of Python 3.14, or ``zstandard``); the
  project does not depend on one.
- **Huffman size of the weights**: per weight tensor, the values *as stored* (their bit
  patterns: float32, float16, int8 ... as the format keeps them, sparse tensors filled with
  their zeros, so a zero is one frequent symbol), a Huffman code over the tensor's distinct
  values, counted as the coded stream (sum over values of their code length) plus the codebook
  (distinct values x their stored bit width). Index arrays, code lengths and the file's graph
  are not counted: it is the weights' share of a download, comparable between formats, not a
  file size. A tensor of a single distinct value codes to 1 bit per value.

Both are cheap beside a conversion: gzip runs once over the file, and the Huffman cost comes
from ``np.unique`` counts and a heap over *groups* of equal counts (a few thousand entries even
for millions of distinct float32 values), never a heap over every symbol.
"""

from __future__ import annotations

import heapq
import io
import math
import tarfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from zoo.files import error_line, files_of

GZIP_LEVEL = 9
ZSTD_LEVEL = 19
CHUNK = 1 << 20


def huffman_bits(counts: Iterable[int]) -> int:
    """Total bits of the Huffman-coded stream of symbols that occur `counts` times (the sum of
    every symbol's count x its code length, which equals the sum of the weights of the merged
    nodes of Huffman's algorithm). One symbol: 1 bit per occurrence.

    Equal weights are merged in bulk: ``m`` nodes of weight ``w`` become ``m // 2`` nodes of
    weight ``2w`` in one step, which is what Huffman's algorithm does one pair at a time (two
    nodes of the smallest weight are always the two smallest), so the heap holds distinct
    weights only."""
    counts = np.asarray(list(counts) if not isinstance(counts, np.ndarray) else counts,
                        np.int64).ravel()
    counts = counts[counts > 0]
    if counts.size == 0:
        return 0
    if counts.size == 1:
        return int(counts[0])
    weights, multiplicity = np.unique(counts, return_counts=True)
    groups = dict(zip(weights.tolist(), multiplicity.tolist(), strict=True))
    heap = list(groups)
    heapq.heapify(heap)
    nodes, total = int(multiplicity.sum()), 0

    def add(weight: int, count: int) -> None:
        if weight in groups:
            groups[weight] += count
        else:
            groups[weight] = count
            heapq.heappush(heap, weight)

    def take(weight: int, count: int) -> None:
        groups[weight] -= count
        if groups[weight] == 0:
            del groups[weight]
            heapq.heappop(heap)  # `weight` is the heap's smallest

    while nodes > 1:
        weight = heap[0]
        if groups[weight] >= 2:
            pairs = groups[weight] // 2
            take(weight, 2 * pairs)
            add(2 * weight, pairs)
            total += pairs * 2 * weight
            nodes -= pairs
        else:  # a lone node of the smallest weight pairs with the next smallest
            take(weight, 1)
            other = heap[0]
            take(other, 1)
            add(weight + other, 1)
            total += weight + other
            nodes -= 1
    return total


def stored_symbols(array: np.ndarray) -> np.ndarray:
    """The values of `array` as their stored bit patterns (unsigned integers of the same
    width), flattened: -0.0 and 0.0, or two NaNs, are the symbols the file holds."""
    array = np.ascontiguousarray(np.asarray(array)).reshape(-1)
    width = array.dtype.itemsize
    if width in (1, 2, 4, 8):
        return array.view(f"u{width}")
    return array.view(np.dtype((np.void, width)))


def tensor_huffman(array: np.ndarray) -> dict[str, int]:
    """One tensor's Huffman figures: ``values``, ``distinct``, ``bit_width`` (as stored),
    ``stream_bits`` (the coded values) and ``codebook_bits`` (distinct x bit width)."""
    symbols = stored_symbols(array)
    if symbols.size == 0:
        return {"values": 0, "distinct": 0, "bit_width": 8 * symbols.dtype.itemsize,
                "stream_bits": 0, "codebook_bits": 0}
    _, counts = np.unique(symbols, return_counts=True)
    width = 8 * symbols.dtype.itemsize
    return {"values": int(symbols.size), "distinct": int(counts.size), "bit_width": width,
            "stream_bits": huffman_bits(counts), "codebook_bits": int(counts.size) * width}


def _arrays(arrays: Mapping[str, np.ndarray] | Iterable[np.ndarray]) -> list[np.ndarray]:
    return list(arrays.values()) if isinstance(arrays, Mapping) else list(arrays)


def huffman_bytes(arrays: Mapping[str, np.ndarray] | Iterable[np.ndarray]) -> int:
    """Bytes of the Huffman-coded weights: each tensor coded on its own (stream + codebook,
    see the module docstring), the bits summed and rounded up to whole bytes."""
    bits = 0
    for array in _arrays(arrays):
        figures = tensor_huffman(array)
        bits += figures["stream_bits"] + figures["codebook_bits"]
    return math.ceil(bits / 8)


def weight_figures(arrays: Mapping[str, np.ndarray] | Iterable[np.ndarray]) -> dict[str, Any]:
    """The manifest's weight figures: tensors, values, stored bytes, Huffman bytes (stream +
    codebook), Huffman bits per value, the largest number of distinct values in one tensor,
    and how many values are exactly zero."""
    tensors = _arrays(arrays)
    stream = codebook = values = stored = zeros = most_distinct = 0
    for array in tensors:
        array = np.asarray(array)
        figures = tensor_huffman(array)
        stream += figures["stream_bits"]
        codebook += figures["codebook_bits"]
        values += figures["values"]
        stored += array.nbytes
        zeros += int(np.count_nonzero(array == 0)) if array.dtype.kind in "fiub" else 0
        most_distinct = max(most_distinct, figures["distinct"])
    huffman = math.ceil((stream + codebook) / 8)
    return {"tensors": len(tensors), "values": values, "stored_bytes": stored,
            "huffman_bytes": huffman, "huffman_codebook_bytes": math.ceil(codebook / 8),
            "huffman_bits_per_value": round((stream + codebook) / values, 3) if values else 0.0,
            "max_distinct_per_tensor": most_distinct, "zero_values": zeros}


class _Sink(io.RawIOBase):
    """A write-only stream that feeds every compressor and keeps only the compressed sizes."""

    def __init__(self, codecs: dict[str, Any]) -> None:
        self.codecs, self.sizes = codecs, dict.fromkeys(codecs, 0)

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        for name, codec in self.codecs.items():
            self.sizes[name] += len(codec.compress(data))
        return len(data)

    def finish(self) -> dict[str, int]:
        for name, codec in self.codecs.items():
            self.sizes[name] += len(codec.flush())
        return self.sizes


def _zstd_compressor():
    """A zstd compressor (level 19) when a zstd module is importable, else None."""
    try:
        from compression import zstd  # Python 3.14

        return zstd.ZstdCompressor(level=ZSTD_LEVEL)
    except ImportError:
        pass
    try:
        import zstandard
    except ImportError:
        return None
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()


def _codecs(zstd: bool) -> dict[str, Any]:
    # wbits 31: the gzip container (header with time 0, so sizes are reproducible).
    codecs = {f"gzip-{GZIP_LEVEL}": zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)}
    compressor = _zstd_compressor() if zstd else None
    if compressor is not None:
        codecs[f"zstd-{ZSTD_LEVEL}"] = compressor
    return codecs


def _write_payload(path: Path, sink: _Sink) -> None:
    """The file's bytes, or a deterministic tar of a folder's files, into `sink`."""
    if path.is_file():
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(CHUNK), b""):
                sink.write(block)
        return
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for file in files_of(path):
            info = tarfile.TarInfo(str(Path(path.name) / file.relative_to(path)))
            info.size, info.mtime, info.mode = file.stat().st_size, 0, 0o644
            with open(file, "rb") as handle:
                tar.addfile(info, handle)


def compressed_sizes(path: Path, zstd: bool = True) -> dict[str, int]:
    """``{"gzip-9": bytes}`` of a file or package folder (see the module docstring), plus
    ``"zstd-19"`` when a zstd module is importable and `zstd` is asked for."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    sink = _Sink(_codecs(zstd))
    _write_payload(path, sink)
    return sink.finish()


def download_bytes(path: Path) -> int:
    """The download size: gzip -9 of the file, or of a deterministic tar of a folder."""
    return compressed_sizes(path, zstd=False)[f"gzip-{GZIP_LEVEL}"]


def size_report(path: Path, read_weights: Callable[[Path], Mapping[str, np.ndarray]] | None
                ) -> dict[str, Any]:
    """What a manifest entry adds beside ``bytes``: ``download_bytes`` (gzip -9),
    ``compressed`` (every codec measured), ``weights`` (`weight_figures` of what
    `read_weights` returns; None for a format without the hook, ``{"error": ...}`` when it
    fails, which the export reports rather than dies of) and ``huffman_bytes`` (None
    without)."""
    sizes = compressed_sizes(path)
    weights: dict[str, Any] | None = None
    if read_weights is not None:
        try:
            weights = weight_figures(read_weights(Path(path)))
        except Exception as exc:  # noqa: BLE001 - a size figure never loses a validated file
            weights = {"error": error_line(exc)}
    return {"download_bytes": sizes[f"gzip-{GZIP_LEVEL}"], "compressed": sizes,
            "weights": weights,
            "huffman_bytes": (weights or {}).get("huffman_bytes")}


def megabytes(n: int | None) -> str:
    """``1.23 MB`` (``n/a`` for None); MB = 10^6 bytes, as the report's size column."""
    return "n/a" if n is None else f"{n / 1e6:.2f} MB"
