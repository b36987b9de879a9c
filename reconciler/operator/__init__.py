"""The operator's view: what is in flight, what is stuck and why, and whether every replica's
change feed is alive — read from the database for `reconciler status` and `GET /admin`."""
