"""Change feeds (the `ChangeFeed` port): `realtime.RealtimeFeed`, hints that a project changed.

The app's changes reach the engine through the outbox its own transactions write (see the v2
migration); a feed only makes them seen sooner, and catches writes that bypassed the trigger.
Nothing is imported here, so not using a feed never loads its client library.
"""
