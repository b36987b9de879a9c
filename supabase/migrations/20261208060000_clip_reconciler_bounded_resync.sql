-- Clip reconciler: a resync page never waits long for a project the app keeps locked.
--
-- Applied after 20261208030000_clip_reconciler_archive_once.sql (earlier files are never
-- edited). Idempotent, like them.
--
-- reconciler_resync_page reconciles each project of a page with pending clips, holding its row
-- (the lock order: project row, then its jobs) until the page commits. A project row an app
-- transaction keeps locked for minutes used to stall the page there — and with it every row
-- the page had taken already, so the app's writes to those projects queued too. With a lock
-- timeout on the function, such a project fails its own step after a second (55P03), is
-- reported with the page's refused projects (logged, counted, left for the next sweep or
-- resync), and the page goes on. `reconciler migrate`'s back-fill calls the same function.

alter function public.reconciler_resync_page(uuid, integer, double precision, double precision)
    set lock_timeout = '1s';
