"""One script per engine that runs one workload in its own process and reports its timings."""
