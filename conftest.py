"""Loads the test harness (fixtures, the session's process guard) for every test directory:
tests/ and bench/tests/ alike."""

pytest_plugins = ["tests.plugin"]
