"""e2e tier; see the README, "Tests"."""
