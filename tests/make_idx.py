#!/usr/bin/env python3
"""Writes four tiny MNIST-style IDX files (train/t10k images and labels, 3x3 images,
labels below 10) into DIR, for the nnprep tests.  Usage: make_idx.py DIR [TRAIN]
TRAIN: that many 28x28 training images instead (a conversion that takes a while)."""
import os
import struct
import sys


def write(path, magic, dims, data):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data))


out = sys.argv[1]
big = int(sys.argv[2]) if len(sys.argv) > 2 else 0
side = 28 if big else 3
for prefix, n in (("train", big or 12), ("t10k", 5)):
    pixels = n * side * side
    data = (bytes((7 * i) % 256 for i in range(256)) * (pixels // 256 + 1))[:pixels]
    write(os.path.join(out, f"{prefix}-images-idx3-ubyte"), 0x803, (n, side, side), data)
    write(os.path.join(out, f"{prefix}-labels-idx1-ubyte"), 0x801, (n,), [i % 10 for i in range(n)])
