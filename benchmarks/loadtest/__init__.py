"""The load-testing harness: ``citystream loadtest`` (see harness.py)."""
