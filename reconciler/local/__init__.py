"""Local tooling, never imported by the runtime: the Runware simulator, the demo, a throw-away
PostgreSQL cluster and in-process serving (for the demo, tests and benchmarks)."""
