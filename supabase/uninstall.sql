-- Clip reconciler: remove everything the migrations added (`reconciler uninstall`, or run it
-- with psql). The app's `projects` rows stay exactly as they are: clips keep their values.
--
-- Safe to run twice, and against any release (it also removes what v0.1 put on projects).
-- One transaction: a failure leaves everything as it was.

-- Every public.reconciler_* function, whatever its signature.
do $$
declare
    f record;
begin
    for f in
        select p.oid::regprocedure as sig
          from pg_proc p
          join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = 'public' and p.proname like 'reconciler\_%'
    loop
        execute format('drop function if exists %s', f.sig);
    end loop;
end;
$$;

-- What is on projects: each of these takes an ACCESS EXCLUSIVE lock on projects, held to the
-- commit, so only the drop of our own schema follows them (milliseconds). `reconciler
-- uninstall` waits for that lock at most RECONCILER_MIGRATE_LOCK_TIMEOUT_SECONDS at a time,
-- and retries.
drop trigger if exists reconciler_clips_changed on public.projects;
drop trigger if exists reconciler_notify_insert on public.projects;
drop trigger if exists reconciler_notify_update on public.projects;
drop index if exists public.projects_clip_keys_idx;
drop index if exists public.projects_clips_keys_idx;

-- Our tables (jobs, stored results, the outbox, the archive queue and its switch, migration
-- records) and private functions. Videos already copied into Storage stay in their bucket, and
-- clips keep the archived URLs they hold: remove the bucket yourself if you want them gone.
drop schema if exists reconciler cascade;
