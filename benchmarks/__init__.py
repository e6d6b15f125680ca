"""Reproducible benchmarks: ``make bench`` runs them and writes figures to benchmarks/results/."""
