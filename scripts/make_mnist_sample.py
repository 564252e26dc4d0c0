"""Rebuild paintrnn/assets/mnist_sample.npz from the full MNIST files.

python scripts/make_mnist_sample.py --data-dir ../shared/data
"""

import argparse

from paintrnn.data import build_mnist_sample

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None, help="folder holding mnist/ (default: $PAINTRNN_DATA or the cache)")
    ap.add_argument("--out", default="paintrnn/assets/mnist_sample.npz")
    args = ap.parse_args()
    print(build_mnist_sample(args.out, args.data_dir))
