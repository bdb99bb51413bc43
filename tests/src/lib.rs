//! Test support shared by the integration tests, xtask and the benchmarks.
