-- Clip reconciler: the operator's view (`reconciler status`, `GET /admin`).
--
-- Applied after 20261202000000_clip_reconciler_v2.sql (never edited). Idempotent, like it.
--
-- What it adds, and why
--   * reconciler.replicas: each running replica upserts a heartbeat every few seconds (its
--     change feed's state, leases held, last sweep). A replica that stops beating is shown as
--     not alive after a few missed beats, and its row is deleted after many more by the
--     heartbeat function itself (a few rows per call), so a crashed replica needs no clean-up.
--   * reconciler.jobs.progress: Runware's last progress report (0-100) for a job still working,
--     written with the poll round (reconciler_finish_poll_round wraps reconciler_finish_round,
--     so the round stays one call and whatever migration defines finish_round last is used).
--   * reconciler.unsettled_by_minute: unsettled jobs counted per minute of first_seen_at,
--     kept by row triggers on reconciler.jobs as insert-only deltas (no row lock, so no
--     writer ever waits on a counter), folded by the heartbeat and the overview itself. The overview's age
--     buckets sum it: their cost follows the minutes spanned, not the number of jobs, so
--     `reconciler status` stays as fast with 100,000 unsettled jobs as with 1,000.
--   * Two reads, one call each, bounded by our own rows (I10): the overview reads the counts
--     above, the N oldest unsettled jobs (a partial index on first_seen_at), the last 24 h of
--     failures (the settled_at index) and the replicas; the project view reads one project by
--     its key and its job rows by (project_id, job_id). Neither ever scans public.projects.

-- --- Replicas' heartbeats ---------------------------------------------------------------------------

create table if not exists reconciler.replicas (
    owner             text primary key,
    version           text not null,
    started_at        timestamptz not null,
    last_seen_at      timestamptz not null default now(),
    -- How often this replica beats: readers judge liveness without knowing its settings.
    heartbeat_seconds double precision not null,
    feed_state        text not null,
    leases_held       integer not null default 0,
    last_sweep_at     timestamptz
);
revoke all on reconciler.replicas from public, anon, authenticated;

-- Missed beats before a replica is shown as not alive, and before its row is forgotten.
create or replace function reconciler.replica_alive(
    p_last_seen_at timestamptz, p_heartbeat_seconds double precision)
returns boolean
language sql
stable
set search_path = ''
as $$
    select p_last_seen_at >= now() - make_interval(secs => 3 * p_heartbeat_seconds);
$$;

create or replace function reconciler.replica_forgotten(
    p_last_seen_at timestamptz, p_heartbeat_seconds double precision)
returns boolean
language sql
stable
set search_path = ''
as $$
    -- At least ten minutes: an operator looking at an incident still sees the dead replica.
    select p_last_seen_at < now() - make_interval(secs => greatest(120 * p_heartbeat_seconds, 600));
$$;

create or replace function public.reconciler_record_heartbeat(
    p_owner text,
    p_version text,
    p_started_at timestamptz,
    p_heartbeat_seconds double precision,
    p_feed_state text,
    p_leases_held integer,
    p_last_sweep_at timestamptz
)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
    if p_owner is null or length(p_owner) not between 1 and 200 then
        raise exception 'owner must be 1 to 200 characters' using errcode = '22023';
    end if;
    if p_heartbeat_seconds is null or not p_heartbeat_seconds > 0
       or p_heartbeat_seconds > 86400 then
        raise exception 'heartbeat_seconds must be above 0 and at most 86400'
            using errcode = '22023';
    end if;
    if p_started_at is null then
        raise exception 'started_at is required' using errcode = '22023';
    end if;
    insert into reconciler.replicas as r
           (owner, version, started_at, last_seen_at, heartbeat_seconds, feed_state,
            leases_held, last_sweep_at)
    values (p_owner, left(coalesce(p_version, ''), 100), p_started_at, now(),
            p_heartbeat_seconds, left(coalesce(p_feed_state, 'unknown'), 40),
            greatest(coalesce(p_leases_held, 0), 0), p_last_sweep_at)
    on conflict (owner) do update
       set version = excluded.version,
           started_at = excluded.started_at,
           last_seen_at = now(),
           heartbeat_seconds = excluded.heartbeat_seconds,
           feed_state = excluded.feed_state,
           leases_held = excluded.leases_held,
           last_sweep_at = coalesce(excluded.last_sweep_at, r.last_sweep_at);
    perform reconciler.fold_unsettled_counts();
    -- Dead replicas age out here, a few per beat: the table stays as small as the fleet.
    delete from reconciler.replicas d
     where d.owner in (select o.owner from reconciler.replicas o
                        where reconciler.replica_forgotten(o.last_seen_at, o.heartbeat_seconds)
                          and o.owner <> p_owner
                        limit 10);
end;
$$;

create or replace function public.reconciler_forget_replica(p_owner text)
returns void
language sql
security definer
set search_path = ''
as $$
    delete from reconciler.replicas where owner = p_owner;
$$;


-- --- Runware's progress per job ------------------------------------------------------------------

alter table reconciler.jobs add column if not exists progress smallint;

-- The poll round as one call: progress of the jobs still working, then the round itself.
create or replace function public.reconciler_finish_poll_round(p_owner text, p_outcomes jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
    if p_outcomes is null or jsonb_typeof(p_outcomes) <> 'array' then
        raise exception 'outcomes must be a JSON array' using errcode = '22023';
    end if;
    -- The last report is kept when a check brings none (our own check failed, or Runware
    -- sent no percentage); a job only rewrites its row when the figure moved.
    update reconciler.jobs j
       set progress = o.progress
      from jsonb_to_recordset(p_outcomes) as o(project_id uuid, job_id text, result text,
                                                progress integer)
     where j.project_id = o.project_id and j.job_id = o.job_id and o.result is null
       and o.progress between 0 and 100
       and j.settled_at is null
       and j.progress is distinct from o.progress;
    return public.reconciler_finish_round(p_owner, p_outcomes);
end;
$$;



-- --- Unsettled jobs per minute of first_seen_at ---------------------------------------------------

-- Rows are deltas: (minute, +1) when a job becomes unsettled, (minute, -1) when it settles or
-- goes. The count for a minute is the sum of its rows; reconciler.fold_unsettled_counts folds
-- them to one row per minute. Unindexed and insert-only for writers, like the outbox.
create table if not exists reconciler.unsettled_by_minute (
    minute timestamptz not null,
    jobs   bigint not null
);
revoke all on reconciler.unsettled_by_minute from public, anon, authenticated;
-- Rows are folded away as fast as they come: vacuum often, so reads never walk dead rows.
alter table reconciler.unsettled_by_minute set (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 1000
);

-- Row triggers with WHEN conditions: the many updates that change no count (a poll
-- rescheduling its jobs, a reason noted) skip the trigger entirely, evaluated in C.
create or replace function reconciler.count_unsettled_change()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if tg_op in ('UPDATE', 'DELETE') and old.settled_at is null then
        insert into reconciler.unsettled_by_minute (minute, jobs)
        values (date_trunc('minute', old.first_seen_at), -1);
    end if;
    if tg_op in ('INSERT', 'UPDATE') and new.settled_at is null then
        insert into reconciler.unsettled_by_minute (minute, jobs)
        values (date_trunc('minute', new.first_seen_at), 1);
    end if;
    return null;
end;
$$;

create or replace function reconciler.forget_unsettled_counts()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    delete from reconciler.unsettled_by_minute;
    return null;
end;
$$;

drop trigger if exists jobs_count_unsettled_insert on reconciler.jobs;
create trigger jobs_count_unsettled_insert
    after insert on reconciler.jobs
    for each row when (new.settled_at is null)
    execute function reconciler.count_unsettled_change();
drop trigger if exists jobs_count_unsettled_update on reconciler.jobs;
create trigger jobs_count_unsettled_update
    after update of settled_at, first_seen_at on reconciler.jobs
    for each row when (old.settled_at is distinct from new.settled_at
                       or (new.settled_at is null
                           and date_trunc('minute', old.first_seen_at)
                               is distinct from date_trunc('minute', new.first_seen_at)))
    execute function reconciler.count_unsettled_change();
drop trigger if exists jobs_count_unsettled_delete on reconciler.jobs;
create trigger jobs_count_unsettled_delete
    after delete on reconciler.jobs
    for each row when (old.settled_at is null)
    execute function reconciler.count_unsettled_change();
drop trigger if exists jobs_count_unsettled_truncate on reconciler.jobs;
create trigger jobs_count_unsettled_truncate
    after truncate on reconciler.jobs
    for each statement execute function reconciler.forget_unsettled_counts();

-- The counts as the rows are now (also when this file runs again): writers of jobs wait for
-- the few statements of this rebuild, so no delta is counted twice or missed.
lock table reconciler.jobs in share row exclusive mode;
delete from reconciler.unsettled_by_minute;
insert into reconciler.unsettled_by_minute (minute, jobs)
select date_trunc('minute', j.first_seen_at), count(*)
  from reconciler.jobs j where j.settled_at is null group by 1;

-- One row per minute again; minutes whose jobs all settled disappear. One folder at a time
-- (the others skip); rows inserted meanwhile stay for the next fold.
create or replace function reconciler.fold_unsettled_counts()
returns void
language plpgsql
set search_path = ''
as $$
begin
    if not pg_try_advisory_xact_lock(hashtext('reconciler.fold_unsettled_counts')) then
        return;
    end if;
    with folded as (
        select u.minute from reconciler.unsettled_by_minute u
         group by u.minute having count(*) > 1 or sum(u.jobs) = 0
    ), gone as (
        delete from reconciler.unsettled_by_minute u using folded f
         where u.minute = f.minute
        returning u.minute, u.jobs
    )
    insert into reconciler.unsettled_by_minute (minute, jobs)
    select g.minute, sum(g.jobs) from gone g group by g.minute having sum(g.jobs) <> 0;
end;
$$;


-- --- The operator's reads ---------------------------------------------------------------------------

-- Unsettled jobs by age and the oldest first: both walk this partial index, never settled rows.
create index if not exists jobs_unsettled_age_idx
    on reconciler.jobs (first_seen_at) where settled_at is null;

-- Everything `reconciler status` shows, in one call. p_oldest_limit bounds the stuck-job list;
-- failures list the 50 most recent of the last 24 h, their reasons are grouped over all of
-- them (numbers folded, so "gave up after 3601 s" and "… 3723 s" count as one reason).
-- Volatile: it folds the count deltas first, so a read never sums more than a few seconds of
-- them even when no replica is running to fold.
create or replace function public.reconciler_operator_overview(p_oldest_limit integer)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_limit integer := least(greatest(coalesce(p_oldest_limit, 20), 0), 1000);
    v_since timestamptz := now() - interval '24 hours';
begin
    perform reconciler.fold_unsettled_counts();
    return jsonb_build_object(
        'generated_at', now(),
        'replicas', coalesce((
            select jsonb_agg(jsonb_build_object(
                       'owner', r.owner,
                       'version', r.version,
                       'started_at', r.started_at,
                       'last_seen_at', r.last_seen_at,
                       'feed_state', r.feed_state,
                       'leases_held', r.leases_held,
                       'last_sweep_at', r.last_sweep_at,
                       'alive', reconciler.replica_alive(r.last_seen_at, r.heartbeat_seconds))
                   order by r.owner)
              from reconciler.replicas r), '[]'::jsonb),
        -- To the minute: a minute's jobs count in the bucket of its oldest possible age.
        'age_buckets', (
            select jsonb_build_array(
                       jsonb_build_object('label', '<1m', 'count', coalesce(
                           sum(m.jobs) filter (where m.age < interval '1 minute'), 0)),
                       jsonb_build_object('label', '1-10m', 'count', coalesce(
                           sum(m.jobs) filter (where m.age >= interval '1 minute'
                                                 and m.age < interval '10 minutes'), 0)),
                       jsonb_build_object('label', '10-60m', 'count', coalesce(
                           sum(m.jobs) filter (where m.age >= interval '10 minutes'
                                                 and m.age < interval '1 hour'), 0)),
                       jsonb_build_object('label', '1-6h', 'count', coalesce(
                           sum(m.jobs) filter (where m.age >= interval '1 hour'
                                                 and m.age < interval '6 hours'), 0)),
                       jsonb_build_object('label', '>6h', 'count', coalesce(
                           sum(m.jobs) filter (where m.age >= interval '6 hours'), 0)))
              from (select now() - u.minute as age, sum(u.jobs) as jobs
                      from reconciler.unsettled_by_minute u
                     group by u.minute) m),
        'oldest', coalesce((
            select jsonb_agg(jsonb_build_object(
                       'project_id', o.project_id,
                       'job_id', o.job_id,
                       'first_seen_at', o.first_seen_at,
                       'attempts', o.attempts,
                       'next_check_at', o.next_check_at,
                       'last_error', o.last_error,
                       'progress', o.progress) order by o.first_seen_at, o.project_id, o.job_id)
              from (select j.project_id, j.job_id, j.first_seen_at, j.attempts,
                           j.next_check_at, j.last_error, j.progress
                      from reconciler.jobs j
                     where j.settled_at is null
                     order by j.first_seen_at
                     limit v_limit) o), '[]'::jsonb),
        'failures_24h', coalesce((
            select jsonb_agg(jsonb_build_object(
                       'project_id', f.project_id,
                       'job_id', f.job_id,
                       'settled_at', f.settled_at,
                       'reason', f.reason) order by f.settled_at desc, f.project_id, f.job_id)
              from (select j.project_id, j.job_id, j.settled_at,
                           coalesce(j.last_error, 'no reason recorded') as reason
                      from reconciler.jobs j
                     where j.settled_at >= v_since and j.outcome = 'failed'
                     order by j.settled_at desc
                     limit 50) f), '[]'::jsonb),
        'failure_reasons_24h', coalesce((
            select jsonb_agg(jsonb_build_object('reason', g.reason, 'count', g.n)
                             order by g.n desc, g.reason)
              from (select regexp_replace(coalesce(j.last_error, 'no reason recorded'),
                                          '[0-9]+', 'N', 'g') as reason,
                           count(*) as n
                      from reconciler.jobs j
                     where j.settled_at >= v_since and j.outcome = 'failed'
                     group by 1
                     order by 2 desc, 1
                     limit 20) g), '[]'::jsonb),
        'parked_results', (select count(*) from reconciler.parked_results));
end;
$$;

-- Every clip of one project, with its job row where it has one. Null: no such project.
create or replace function public.reconciler_operator_project(p_project_id uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_clips jsonb;
begin
    select p.clips into v_clips from public.projects p where p.id = p_project_id;
    if not found then
        return null;
    end if;
    return jsonb_build_object(
        'project_id', p_project_id,
        'clips', coalesce((
            select jsonb_agg(jsonb_build_object(
                       'job_id', c.key,
                       'value', c.value,
                       'status', case
                           when c.value = '"pending"'::jsonb then 'pending'
                           when c.value = '"failed"'::jsonb then 'failed'
                           when jsonb_typeof(c.value) = 'string' then 'completed'
                           else 'unknown' end,
                       'attempts', j.attempts,
                       'next_check_at', case when j.settled_at is null then j.next_check_at end,
                       'last_error', j.last_error,
                       'progress', case when j.settled_at is null then j.progress end)
                   order by c.key)
              from jsonb_each(case when jsonb_typeof(v_clips) = 'object'
                                   then v_clips else '{}'::jsonb end) c
              left join reconciler.jobs j
                on j.project_id = p_project_id and j.job_id = c.key), '[]'::jsonb));
end;
$$;


-- Least privilege (I8): only service_role may call what this file adds.
do $$
declare
    f record;
begin
    for f in
        select p.oid::regprocedure as sig, n.nspname = 'public' as exposed
          from pg_proc p
          join pg_namespace n on n.oid = p.pronamespace
         where (n.nspname = 'public' and p.proname in (
                    'reconciler_record_heartbeat', 'reconciler_forget_replica',
                    'reconciler_finish_poll_round', 'reconciler_operator_overview',
                    'reconciler_operator_project'))
            or (n.nspname = 'reconciler' and p.proname in (
                    'replica_alive', 'replica_forgotten', 'count_unsettled_change',
                    'forget_unsettled_counts', 'fold_unsettled_counts'))
    loop
        execute format('revoke all on function %s from public, anon, authenticated', f.sig);
        if f.exposed then
            execute format('grant execute on function %s to service_role', f.sig);
        end if;
    end loop;
end;
$$;
