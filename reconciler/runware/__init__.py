"""Runware: the HTTP client (`client`) and the shapes of what Runware sends (`payloads`)."""
