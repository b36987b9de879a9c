-- Clip reconciler: fair to every project (issue 18, items 1, 17 and 18).
--
-- Applied after 20261202300000_clip_reconciler_operator_archive.sql (earlier files are never
-- edited). Idempotent, like them.
--
-- What changes, and why
--   * A clip key is trackable only when it is a UUID in its canonical text form (8-4-4-4-12
--     hexadecimal digits, either case): Runware task ids are UUIDs. Any other key used to be
--     sent to Runware in the same batch as other projects' jobs, where one malformed id could
--     make Runware refuse the whole batch. Such keys are recorded in untrackable_clips with
--     their reason and counted, never polled. Tracked jobs whose key is not a UUID move there.
--   * A project tracks at most max_pending_per_project unsettled jobs (the service writes
--     RECONCILER_MAX_PENDING_PER_PROJECT into reconciler.tracking_settings at start-up;
--     1,000 until it does). Pending keys beyond it are recorded in untrackable_clips with
--     their reason and counted; they are tracked by a later reconcile of the project (a sweep,
--     the app's next change) once its tracked jobs settle. Every path that tracks jobs holds the
--     project's row while it does (reconcile_project, reconciler_track_jobs), so the bound is
--     exact, and job rows are written in the lock order (project row, then its jobs).
--   * A poll round is fair across projects: due jobs are ranked per project (oldest due
--     first) and taken turn by turn (every project's first due job, then every project's
--     second...), at most p_per_project from one project. A project with 5,000 due jobs no
--     longer holds back another project's lone job: it is in the very next round.

-- --- Which clip keys can be tracked -------------------------------------------------------------

-- Runware task ids are UUIDs. Any case is accepted (a UUID's digits are case-insensitive) and
-- the key is kept as written: it must match the clip key and Runware's answer verbatim.
-- The service applies the same rule (reconciler/clips.py, is_trackable).
create or replace function reconciler.is_trackable(p_job_id text)
returns boolean
language sql
immutable
parallel safe
set search_path = ''
as $$
    select p_job_id ~ '^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$';
$$;

-- Why a key is not tracked, worded as the service words it (reconciler/clips.py). The length
-- argument is kept so that earlier callers keep working; the reason no longer depends on it.
create or replace function reconciler.untrackable_reason(p_length integer)
returns text
language sql
immutable
set search_path = ''
as $$
    select 'job id is not a Runware task id (a UUID); it is not tracked'::text;
$$;

create or replace function reconciler.over_limit_reason(p_limit integer)
returns text
language sql
immutable
set search_path = ''
as $$
    select format('project has more than %s pending jobs (RECONCILER_MAX_PENDING_PER_PROJECT);'
                  ' it is not tracked', p_limit);
$$;


-- --- The per-project limit ------------------------------------------------------------------------

-- One row: how many unsettled jobs one project may have tracked. Written by the service at
-- start-up (reconciler_set_tracking_limits), read by track_pending, whoever calls it (the
-- drain, a webhook's drain, sweeps, the resync, a user check).
create table if not exists reconciler.tracking_settings (
    singleton               boolean primary key default true check (singleton),
    max_pending_per_project integer not null default 1000 check (max_pending_per_project > 0),
    changed_at              timestamptz not null default now()
);
insert into reconciler.tracking_settings (singleton) values (true) on conflict do nothing;

create or replace function reconciler.max_pending_per_project()
returns integer
language sql
stable
set search_path = ''
as $$
    select coalesce(
        (select s.max_pending_per_project from reconciler.tracking_settings s where s.singleton),
        1000);
$$;

-- Returns {"max_pending_per_project", "over_limit": clips not tracked because of it}.
create or replace function public.reconciler_set_tracking_limits(
    p_max_pending_per_project integer
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
    if p_max_pending_per_project is null or p_max_pending_per_project < 1 then
        raise exception 'max_pending_per_project must be a whole number of at least 1'
            using errcode = '22023';
    end if;
    insert into reconciler.tracking_settings as s (singleton, max_pending_per_project)
    values (true, p_max_pending_per_project)
    on conflict (singleton) do update
       set max_pending_per_project = excluded.max_pending_per_project, changed_at = now()
     where s.max_pending_per_project is distinct from excluded.max_pending_per_project;
    return jsonb_build_object(
        'max_pending_per_project', p_max_pending_per_project,
        'over_limit', (select count(*) from reconciler.untrackable_clips u
                        where u.last_error like 'project has more than %'));
end;
$$;


-- --- Jobs whose key is not a UUID leave the jobs table ---------------------------------------------

-- The check constraint jobs_job_id_trackable calls is_trackable, which is stricter now: the
-- rows it no longer admits move to untrackable_clips (unsettled ones: their clips are still
-- pending) or go (settled ones), before anything else writes the table.
do $$
begin
    insert into reconciler.untrackable_clips
           (project_id, key_md5, key_length, key_prefix, last_error)
    select j.project_id, md5(j.job_id), length(j.job_id), left(j.job_id, 64),
           reconciler.untrackable_reason(length(j.job_id))
      from reconciler.jobs j
     where not reconciler.is_trackable(j.job_id) and j.settled_at is null
    on conflict do nothing;
    delete from reconciler.jobs j where not reconciler.is_trackable(j.job_id);
    -- Keys recorded before (too long) get today's wording.
    update reconciler.untrackable_clips u
       set last_error = reconciler.untrackable_reason(u.key_length)
     where u.last_error like 'job id of % characters is too long%';
end;
$$;


-- --- Tracking ---------------------------------------------------------------------------------------

-- Start tracking those of p_job_ids (all when null) that are pending in p_clips: first check
-- after p_first_check_delay_seconds plus a random share of p_spread_seconds (the drain passes
-- 0: the app's writes arrive spread out already; sweeps and the resync pass the spread, so a
-- restart over many untracked jobs does not make them all due at once). A job settled before
-- and pending again (the app reset it) is tracked afresh. Beyond the project's limit, keys
-- are not tracked (in key order, so the same ones each time). Pending keys that are not
-- tracked are recorded with their reason; with every job (p_job_ids null) the records of
-- keys tracked or gone since are removed.
create or replace function reconciler.track_pending(
    p_project_id uuid,
    p_clips jsonb,
    p_job_ids text[],
    p_first_check_delay_seconds double precision,
    p_spread_seconds double precision
)
returns void
language plpgsql
set search_path = ''
as $$
declare
    v_limit integer := reconciler.max_pending_per_project();
    v_room  integer;
    v_keys  text[];
begin
    if jsonb_typeof(p_clips) is distinct from 'object' then
        p_clips := '{}'::jsonb;
    end if;
    select v_limit - count(*) into v_room
      from reconciler.jobs j
     where j.project_id = p_project_id and j.settled_at is null;

    insert into reconciler.jobs as j (project_id, job_id, next_check_at)
    select p_project_id, n.key,
           now() + make_interval(secs => greatest(p_first_check_delay_seconds, 0)
                                         + random() * greatest(p_spread_seconds, 0))
      from (select e.key from jsonb_each(p_clips) e
             where e.value = '"pending"'::jsonb
               and reconciler.is_trackable(e.key)
               and (p_job_ids is null or e.key = any (p_job_ids))
               and not exists (select 1 from reconciler.jobs t
                                where t.project_id = p_project_id and t.job_id = e.key
                                  and t.settled_at is null)
             order by e.key collate "C"
             limit greatest(v_room, 0)) n
    on conflict (project_id, job_id) do update
       set settled_at = null, outcome = null, attempts = 0, first_seen_at = now(),
           next_check_at = excluded.next_check_at, last_error = null, last_checked_at = null
     where j.settled_at is not null;

    -- Pending keys (of those asked about) that are not tracked now: not a task id, or over
    -- the limit.
    v_keys := array(
        select e.key from jsonb_each(p_clips) e
         where e.value = '"pending"'::jsonb
           and (p_job_ids is null or e.key = any (p_job_ids))
           and (not reconciler.is_trackable(e.key)
                or not exists (select 1 from reconciler.jobs t
                                where t.project_id = p_project_id and t.job_id = e.key
                                  and t.settled_at is null)));
    insert into reconciler.untrackable_clips as u
           (project_id, key_md5, key_length, key_prefix, last_error)
    select p_project_id, md5(k.key), length(k.key), left(k.key, 64),
           case when reconciler.is_trackable(k.key) then reconciler.over_limit_reason(v_limit)
                else reconciler.untrackable_reason(length(k.key)) end
      from unnest(v_keys) k(key)
    on conflict (project_id, key_md5) do update
       set last_error = excluded.last_error
     where u.last_error is distinct from excluded.last_error;
    if p_job_ids is null then
        delete from reconciler.untrackable_clips u
         where u.project_id = p_project_id
           and not exists (select 1 from unnest(v_keys) k(key) where md5(k.key) = u.key_md5);
    else
        -- Asked about and tracked now (room was freed): no longer recorded as not tracked.
        delete from reconciler.untrackable_clips u
         where u.project_id = p_project_id
           and u.key_md5 in (select md5(k.key) from unnest(p_job_ids) k(key)
                              where k.key <> all (v_keys));
    end if;
end;
$$;


-- Reconcile one project in the database: apply stored results to its pending jobs, then
-- (p_track) settle the jobs whose clip left "pending" and track its pending jobs (settled
-- first, so that they no longer take room under the per-project limit).
-- Returns {"found", "clips", "applied_parked"}.
create or replace function reconciler.reconcile_project(
    p_project_id uuid,
    p_first_check_delay_seconds double precision,
    p_spread_seconds double precision,
    p_track boolean
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_clips   jsonb;
    v_parked  jsonb;
    v_applied jsonb := '{}'::jsonb;
    v_outcome jsonb;
begin
    -- The project's row first, then its job rows (the lock order: docs/architecture.md): a
    -- check, sweep or hint that tracks jobs while a webhook holds the row and settles them
    -- would otherwise wait on each other's rows.
    select p.clips into v_clips from public.projects p where p.id = p_project_id for update;
    if not found then
        -- Deleted: settles whatever was tracked for it.
        perform public.reconciler_apply_results(p_project_id, '{}'::jsonb);
        return jsonb_build_object('found', false);
    end if;
    if jsonb_typeof(v_clips) is distinct from 'object' then
        v_clips := '{}'::jsonb;
    end if;

    select jsonb_object_agg(pr.job_id, pr.result) into v_parked
      from jsonb_each(v_clips) e
      join reconciler.parked_results pr on pr.job_id = e.key
     where e.value = '"pending"'::jsonb and reconciler.is_trackable(e.key);
    if v_parked is not null then
        v_outcome := public.reconciler_apply_results(p_project_id, v_parked);
        v_applied := v_outcome -> 'changed';
        v_clips := coalesce(v_outcome -> 'clips', v_clips);
    end if;

    if p_track then
        perform reconciler.settle_jobs(p_project_id, v_clips);
        perform reconciler.track_pending(
            p_project_id, v_clips, null, p_first_check_delay_seconds, p_spread_seconds);
    end if;
    return jsonb_build_object('found', true, 'clips', v_clips, 'applied_parked', v_applied);
end;
$$;


-- Track jobs of a project that are still pending (after a check that did not settle them),
-- holding the project's row first, as every writer of its jobs does (the lock order).
create or replace function public.reconciler_track_jobs(
    p_project_id uuid,
    p_job_ids text[],
    p_first_check_delay_seconds double precision
)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_clips jsonb;
begin
    select p.clips into v_clips from public.projects p where p.id = p_project_id for update;
    if found then
        perform reconciler.track_pending(
            p_project_id, v_clips, p_job_ids, p_first_check_delay_seconds, 0);
    end if;
end;
$$;


-- --- Polling ----------------------------------------------------------------------------------------

-- Claim up to p_limit due jobs for p_owner, fairly across projects: each due job gets its turn
-- within its project (oldest due first), and jobs are taken turn by turn (every project's
-- first, then every project's second...), at most p_per_project from one project (null: no
-- cap but p_limit). A lease
-- that expired (its owner crashed) is claimable again. SKIP LOCKED lets replicas claim side by
-- side without waiting (I6); the lock is taken on the rows picked, in turn order, until
-- p_limit are held, and the due conditions are checked again on the locked row.
-- The ranking reads the due jobs once (the jobs_due_idx range) and sorts them: its cost
-- follows the number of due jobs, never the table.
drop function if exists public.reconciler_claim_due_jobs(text, integer, double precision);
create or replace function public.reconciler_claim_due_jobs(
    p_owner text,
    p_limit integer,
    p_lease_seconds double precision,
    p_per_project integer
)
returns jsonb
language sql
security definer
set search_path = ''
as $$
    with due as (
        select j.project_id, j.job_id, j.next_check_at,
               row_number() over (partition by j.project_id
                                  order by j.next_check_at, j.job_id collate "C") as turn
          from reconciler.jobs j
         where j.settled_at is null
           and j.next_check_at <= now()
           and (j.lease_expires_at is null or j.lease_expires_at <= now())
    ), picked as (
        select j.project_id, j.job_id
          from due d
          join reconciler.jobs j on j.project_id = d.project_id and j.job_id = d.job_id
         where (p_per_project is null or d.turn <= greatest(p_per_project, 1))
           and j.settled_at is null
           and j.next_check_at <= now()
           and (j.lease_expires_at is null or j.lease_expires_at <= now())
         order by d.turn, d.next_check_at
         limit greatest(p_limit, 0)
         for update of j skip locked
    ), claimed as (
        update reconciler.jobs j
           set lease_owner = p_owner,
               lease_expires_at = now() + make_interval(secs => p_lease_seconds)
          from picked
         where j.project_id = picked.project_id and j.job_id = picked.job_id
        returning j.job_id, j.project_id, j.attempts, j.first_seen_at
    )
    select coalesce(jsonb_agg(jsonb_build_object(
               'job_id', c.job_id, 'project_id', c.project_id, 'attempts', c.attempts,
               'age_seconds', extract(epoch from now() - c.first_seen_at))), '[]'::jsonb)
      from claimed c;
$$;


-- Least privilege (I8): only service_role may call in. Supabase's default privileges grant
-- EXECUTE on new public functions to anon and authenticated, so revoke explicitly, every time.
do $$
declare
    f record;
begin
    for f in
        select p.oid::regprocedure as sig, n.nspname = 'public' as exposed
          from pg_proc p
          join pg_namespace n on n.oid = p.pronamespace
         where (n.nspname = 'public' and p.proname like 'reconciler\_%')
            or n.nspname = 'reconciler'
    loop
        execute format('revoke all on function %s from public, anon, authenticated', f.sig);
        if f.exposed then
            execute format('grant execute on function %s to service_role', f.sig);
        end if;
    end loop;
    grant execute on function public.reconciler_caller_can_see_project(uuid) to authenticated;
end;
$$;
