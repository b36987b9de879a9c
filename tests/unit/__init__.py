"""unit tier; see the README, "Tests"."""
