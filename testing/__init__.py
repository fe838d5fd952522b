"""Support code shared by the test suite and the benchmarks (never imported by the product)."""
