"""citystream and peer stream processors (Bytewax, PyFlink) on the same workloads and data."""
