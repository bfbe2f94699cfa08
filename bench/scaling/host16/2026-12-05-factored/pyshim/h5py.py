"""The least of h5py that bench_torch.py uses, read from MNIST's IDX files instead of
HDF5 (the 16-core machine has numpy but no h5py): File(path)["/train/images"] and
"/train/labels", "/test/..." as numpy arrays, from the IDX files (gzip or not) in $NN_IDX_DIR."""
import gzip
import os

import numpy as np

_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def _idx(path):
    if not os.path.exists(path):  # the IDX files as unpacked
        path = path[:-3]
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class File:
    def __init__(self, path, mode="r"):
        self.dir = os.environ["NN_IDX_DIR"]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __getitem__(self, name):
        split, what = name.strip("/").split("/")
        images, labels = _FILES[split]
        return _idx(os.path.join(self.dir, images if what == "images" else labels))
