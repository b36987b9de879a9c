"""Archiving finished videos into Supabase Storage (RECONCILER_ARCHIVE=supabase).

- `paths`: where a video goes in its bucket and the URL the clip then holds (pure);
- `transfer`: the copy itself, a streamed and capped download and an upload to Storage, each
  failure classified permanent or transient;
- `worker`: the loop that works off the queue SQL keeps (`reconciler.archive_tasks`), leased,
  and finishes each task with the guarded swap or a retry or give-up.
"""
