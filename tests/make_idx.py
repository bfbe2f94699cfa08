#!/usr/bin/env python3
"""Writes four tiny MNIST-style IDX files (train/t10k images and labels, 3x3 images,
labels below 10) into DIR, for the nnprep tests.  Usage: make_idx.py DIR"""
import os
import struct
import sys


def write(path, magic, dims, data):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data))


out = sys.argv[1]
for prefix, n in (("train", 12), ("t10k", 5)):
    write(os.path.join(out, f"{prefix}-images-idx3-ubyte"), 0x803, (n, 3, 3), [(7 * i) % 256 for i in range(n * 9)])
    write(os.path.join(out, f"{prefix}-labels-idx1-ubyte"), 0x801, (n,), [i % 10 for i in range(n)])
