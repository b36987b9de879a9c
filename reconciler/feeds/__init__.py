"""Change feeds (the `ChangeFeed` port): `notify.NotifyFeed`, `realtime.RealtimeFeed`.

Nothing is imported here, so choosing one feed never loads the other's client library.
"""
