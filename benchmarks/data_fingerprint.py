"""What keying the data cache on content costs: hashing the files a reader reads, cold and warm.

Compares the SHA-256 fingerprint of a dataset's files (first time in a process, then
remembered) with decoding the same files once (what a cache miss costs anyway).

    python benchmarks/data_fingerprint.py [FOLDER]   # default: /usr/share/datasets/fashion-mnist
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from gradretention.tasks import fingerprint
from gradretention.tasks.readers.idx import LABELS_MAGIC, read_idx, read_idx_images


def _seconds(action, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(folder: Path) -> None:
    files = sorted(path for path in folder.iterdir() if path.is_file())
    size = sum(path.stat().st_size for path in files)

    def cold() -> None:
        fingerprint._DIGESTS.clear()
        fingerprint.files_fingerprint(files)

    def decode() -> None:
        for path in files:
            (read_idx_images if "images" in path.name else lambda p: read_idx(p, LABELS_MAGIC))(path)

    cold_s, warm_s = _seconds(cold), _seconds(lambda: fingerprint.files_fingerprint(files))
    decode_s = _seconds(decode, repeats=3)
    print(f"{folder}: {len(files)} files, {size / 1e6:.1f} MB on disk (median of 5)")
    print(f"  fingerprint, first time in a process: {cold_s * 1e3:8.1f} ms ({size / cold_s / 1e6:.0f} MB/s)")
    print(f"  fingerprint, remembered:              {warm_s * 1e3:8.3f} ms")
    print(f"  decoding the files once:              {decode_s * 1e3:8.1f} ms  (cold hash = {cold_s / decode_s:.2f}x)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/usr/share/datasets/fashion-mnist"))
