"""diststorage's benchmarks: one package per suite over bench.common (see bench/README.md)."""
