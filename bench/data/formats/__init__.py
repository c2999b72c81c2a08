"""On-disk formats several datasets share: MNIST's IDX files and the MTAN per-sample ``.npy`` layout."""
