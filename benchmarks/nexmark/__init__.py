"""Nexmark benchmark: event generator, queries in our SQL, runner."""
