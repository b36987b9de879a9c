"""integration tier; see the README, "Tests"."""
