"""Writes digits.bin from scikit-learn's copy of the UCI handwritten digits (its
`sklearn/datasets/data/digits.csv.gz`): 1797 records of 65 bytes, the 8x8 pixels (0..16,
row-major) then the label (0..9), in the file's order. See DIGITS.md for source and licence.

    pip install scikit-learn && python make_digits.py
"""

import gzip
import os

import numpy as np
import sklearn

source = os.path.join(os.path.dirname(sklearn.__file__), "datasets", "data", "digits.csv.gz")
with gzip.open(source, "rt") as f:
    rows = np.loadtxt(f, delimiter=",", dtype=np.int64)
assert rows.shape == (1797, 65), rows.shape
assert rows[:, :64].min() >= 0 and rows[:, :64].max() <= 16 and set(rows[:, 64]) == set(range(10))
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits.bin")
rows.astype(np.uint8).tofile(out)
print(f"wrote {out}: {rows.shape[0]} digits")
