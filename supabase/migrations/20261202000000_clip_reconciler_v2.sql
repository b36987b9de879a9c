-- Clip reconciler v2: invisible to the host database, work proportional to pending jobs.
--
-- Applied after 20261124000000_clip_reconciler.sql (v0.1, never edited). Idempotent, like it.
--
-- What changes, and why
--   * Nothing of ours on public.projects but one trigger. v0.1's GIN index on every project's
--     clip keys was paid by every write of projects, even writes that never touch a clip
--     (0.57x the app's own throughput), and overflowed on long keys (the app's write failed).
--   * The trigger fires only when clips changes and does O(1) work in the app's transaction:
--     it appends the project id to reconciler.changed_projects, an unindexed outbox. The
--     service drains it (reconciler_drain_changes): reads the project, tracks its new pending
--     jobs, applies results that arrived first. Measured with pgbench on 20,000 projects of 20
--     clips (bench/w6_host_tax.py and a probe of the alternatives): a trigger that reads the
--     clips and inserts (project, job) pairs ran the app's "add a pending clip" at
--     0.54-0.62x, 0.42x with a NOTIFY (NOTIFY takes a global lock at commit); the outbox
--     append at 0.72-0.80x (v0.1: 0.23x). Nothing is missed: the outbox row commits or rolls
--     back with the app's own write (I5).
--   * Jobs are tracked per (project, job): a job id held by several projects (an app that
--     duplicates a project) settles in each. Webhook results are kept (until retention) and
--     applied to every project that holds or later gets the job.
--   * Keys longer than any Runware task id (reconciler.is_trackable) are recorded as not
--     trackable instead of being inserted into an index they would overflow.
--   * Sweeps walk our own unsettled rows; a slow, throttled resync (reconciler_resync_page)
--     covers writes that bypass triggers (session_replication_role = replica, restores, rows
--     written before this migration, which also backfills them below).
--   * A poll round's whole outcome is one call (reconciler_finish_round).

-- --- What v0.1 put on projects, gone ------------------------------------------------------------

drop trigger if exists reconciler_notify_insert on public.projects;
drop trigger if exists reconciler_notify_update on public.projects;
drop function if exists reconciler.notify_new_pending_clips();
drop function if exists public.reconciler_find_project(text);
drop index if exists public.projects_clip_keys_idx;
drop function if exists reconciler.clip_keys(jsonb);
-- Poll outcomes are recorded by reconciler_finish_round now.
drop function if exists public.reconciler_record_checks(text, jsonb);


-- --- Which clip keys can be tracked ---------------------------------------------------------------

-- Runware task ids are UUIDs (36 characters). Anything much longer cannot be one, and would not
-- fit an index entry anyway (a btree entry holds at most ~2.7 kB).
create or replace function reconciler.is_trackable(p_job_id text)
returns boolean
language sql
immutable
parallel safe
set search_path = ''
as $$
    select length(p_job_id) between 1 and 255;
$$;

-- Why a key is not tracked, for people reading last_error (the service words it the same way:
-- reconciler/clips.py, untrackable_reason).
create or replace function reconciler.untrackable_reason(p_length integer)
returns text
language sql
immutable
set search_path = ''
as $$
    select format('job id of %s characters is too long to be a Runware task id'
                  ' (at most 255); it is not tracked', p_length);
$$;

-- Pending clips whose key is not trackable, per project: reported (metric, last_error, the
-- check endpoint's detail), never polled. Keyed by a hash: the key itself may be a megabyte.
create table if not exists reconciler.untrackable_clips (
    project_id    uuid not null,
    key_md5       text not null,
    key_length    integer not null,
    key_prefix    text not null,
    last_error    text not null,
    first_seen_at timestamptz not null default now(),
    primary key (project_id, key_md5)
);


-- --- Jobs per (project, job) ----------------------------------------------------------------------

do $$
begin
    -- v0.1 keyed jobs by job id alone. Rows too long for the new key move to untrackable_clips.
    if exists (
        select 1 from pg_constraint c
         where c.conname = 'jobs_pkey' and c.conrelid = 'reconciler.jobs'::regclass
           and cardinality(c.conkey) = 1
    ) then
        insert into reconciler.untrackable_clips
               (project_id, key_md5, key_length, key_prefix, last_error)
        select j.project_id, md5(j.job_id), length(j.job_id), left(j.job_id, 64),
               reconciler.untrackable_reason(length(j.job_id))
          from reconciler.jobs j
         where not reconciler.is_trackable(j.job_id) and j.settled_at is null
        on conflict do nothing;
        delete from reconciler.jobs j where not reconciler.is_trackable(j.job_id);
        alter table reconciler.jobs drop constraint jobs_pkey;
        alter table reconciler.jobs add constraint jobs_pkey primary key (project_id, job_id);
    end if;
    if not exists (
        select 1 from pg_constraint c
         where c.conname = 'jobs_job_id_trackable' and c.conrelid = 'reconciler.jobs'::regclass
    ) then
        alter table reconciler.jobs
            add constraint jobs_job_id_trackable check (reconciler.is_trackable(job_id));
    end if;
end;
$$;
-- Webhook look-ups: which projects hold this job.
create index if not exists jobs_job_idx on reconciler.jobs (job_id);
-- Sweeps: projects with unsettled jobs, in id order.
create index if not exists jobs_unsettled_project_idx
    on reconciler.jobs (project_id) where settled_at is null;
-- The primary key leads with project_id now.
drop index if exists reconciler.jobs_project_idx;


-- --- The outbox the trigger writes ----------------------------------------------------------------

-- One row per change of a project's clips by anyone but the reconciler. Unindexed and
-- append-only for the app (an insert never waits for a lock of ours: the drain takes row
-- locks only, with SKIP LOCKED), drained in batches by the service.
create table if not exists reconciler.changed_projects (
    project_id uuid not null,
    changed_at timestamptz not null default now()
);
-- Rows are deleted as fast as they come: vacuum often, so the drain never walks dead rows.
alter table reconciler.changed_projects set (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 1000
);

revoke all on all tables in schema reconciler from public;
revoke all on all tables in schema reconciler from anon, authenticated;

-- The one trigger on projects. SECURITY DEFINER because the app's roles may not write our
-- schema. It never reads the clips and cannot fail on them: any key length, any JSON shape.
-- The reconciler's own writes (pending -> result) set reconciler.own_write and are skipped:
-- they add no pending clip.
create or replace function reconciler.note_clips_changed()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    if tg_op = 'UPDATE' and new.clips is not distinct from old.clips then
        return null;
    end if;
    if current_setting('reconciler.own_write', true) = 'on' then
        return null;
    end if;
    insert into reconciler.changed_projects (project_id) values (new.id);
    return null;
end;
$$;

drop trigger if exists reconciler_clips_changed on public.projects;
create trigger reconciler_clips_changed
    after insert or update of clips on public.projects
    for each row execute function reconciler.note_clips_changed();


-- --- Settling, tracking, reconciling one project ---------------------------------------------------

-- Given a project's clips as now stored: its tracked jobs whose clip is no longer pending (or
-- is gone) are settled, keeping the row and outcome so a failure's reason stays readable.
-- Stored webhook results are kept until retention: another project may hold the same job.
create or replace function reconciler.settle_jobs(p_project_id uuid, p_clips jsonb)
returns void
language sql
set search_path = ''
as $$
    update reconciler.jobs j
       set settled_at = now(),
           outcome = coalesce(p_clips ->> j.job_id, 'removed'),
           lease_owner = null, lease_expires_at = null
     where j.project_id = p_project_id and j.settled_at is null
       and (p_clips -> j.job_id) is distinct from '"pending"'::jsonb;
$$;


-- Start tracking those of p_job_ids (all when null) that are pending in p_clips: first check
-- after p_first_check_delay_seconds plus a random share of p_spread_seconds, so many new jobs
-- do not all become due at once. A job settled before and pending again (the app reset it)
-- is tracked afresh. Pending keys that cannot be tracked are recorded as such.
drop function if exists reconciler.track_pending(uuid, jsonb, text[], double precision, double precision);
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
begin
    if jsonb_typeof(p_clips) is distinct from 'object' then
        p_clips := '{}'::jsonb;
    end if;
    insert into reconciler.jobs as j (project_id, job_id, next_check_at)
    select p_project_id, e.key,
           now() + make_interval(secs => greatest(p_first_check_delay_seconds, 0)
                                         + random() * greatest(p_spread_seconds, 0))
      from jsonb_each(p_clips) e
     where e.value = '"pending"'::jsonb
       and reconciler.is_trackable(e.key)
       and (p_job_ids is null or e.key = any (p_job_ids))
    on conflict (project_id, job_id) do update
       set settled_at = null, outcome = null, attempts = 0, first_seen_at = now(),
           next_check_at = excluded.next_check_at, last_error = null, last_checked_at = null
     where j.settled_at is not null;

    if p_job_ids is null then
        insert into reconciler.untrackable_clips
               (project_id, key_md5, key_length, key_prefix, last_error)
        select p_project_id, md5(e.key), length(e.key), left(e.key, 64),
               reconciler.untrackable_reason(length(e.key))
          from jsonb_each(p_clips) e
         where e.value = '"pending"'::jsonb and not reconciler.is_trackable(e.key)
        on conflict do nothing;
        delete from reconciler.untrackable_clips u
         where u.project_id = p_project_id
           and not exists (select 1 from jsonb_each(p_clips) e
                            where e.value = '"pending"'::jsonb
                              and not reconciler.is_trackable(e.key)
                              and md5(e.key) = u.key_md5);
    end if;
end;
$$;


-- (a) Guarded merge: apply results to one project in a single statement (unchanged in its
-- contract). Returns {"found": bool, "changed": {job: value}, "clips": <clips as stored now>}.
create or replace function public.reconciler_apply_results(p_project_id uuid, p_results jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_found   boolean;
    v_changed jsonb;
    v_clips   jsonb;
begin
    perform reconciler.assert_results(p_results);
    -- Our own write adds no pending clip: the outbox trigger skips it.
    perform set_config('reconciler.own_write', 'on', true);

    -- The row lock taken by FOR UPDATE makes the read of "pending" and the write one step:
    -- a concurrent writer (the app adding keys, another replica) is waited for, then seen.
    with locked as (
        select p.id, p.clips from public.projects p where p.id = p_project_id for update
    ), delta as (
        select coalesce(jsonb_object_agg(r.key, r.value), '{}'::jsonb) as changed
          from locked l
          cross join lateral jsonb_each(p_results) r
         where jsonb_typeof(l.clips) = 'object'
           and l.clips -> r.key = '"pending"'::jsonb
    ), updated as (
        update public.projects p
           set clips = p.clips || d.changed
          from delta d
         where p.id = p_project_id and d.changed <> '{}'::jsonb
        returning p.clips
    )
    select true, d.changed, coalesce((select u.clips from updated u), l.clips)
      into v_found, v_changed, v_clips
      from locked l cross join delta d;

    if v_found is null then
        -- The project is gone: nothing of it is left to poll.
        update reconciler.jobs
           set settled_at = now(), outcome = 'project deleted',
               lease_owner = null, lease_expires_at = null
         where project_id = p_project_id and settled_at is null;
        delete from reconciler.untrackable_clips where project_id = p_project_id;
        return jsonb_build_object('found', false, 'changed', '{}'::jsonb, 'clips', null);
    end if;

    perform reconciler.settle_jobs(p_project_id, v_clips);

    return jsonb_build_object('found', true, 'changed', v_changed, 'clips', v_clips);
end;
$$;


-- Reconcile one project in the database: apply stored results to its pending jobs, then
-- (p_track) track its pending jobs and settle the ones whose clip left "pending".
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
    select p.clips into v_clips from public.projects p where p.id = p_project_id;
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
        perform reconciler.track_pending(
            p_project_id, v_clips, null, p_first_check_delay_seconds, p_spread_seconds);
        perform reconciler.settle_jobs(p_project_id, v_clips);
    end if;
    return jsonb_build_object('found', true, 'clips', v_clips, 'applied_parked', v_applied);
end;
$$;


-- Read a project for reconciling (see reconcile_project) and return
-- {"found", "clips", "applied_parked", "pending_jobs": {job: {attempts, age_seconds}},
--  "untrackable": {prefix: length}}. Writes nothing when there is nothing new.
create or replace function public.reconciler_read_project(
    p_project_id uuid,
    p_first_check_delay_seconds double precision,
    p_spread_seconds double precision,
    p_track boolean
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_result jsonb;
    v_jobs   jsonb;
    v_long   jsonb;
begin
    v_result := reconciler.reconcile_project(
        p_project_id, p_first_check_delay_seconds, p_spread_seconds, p_track);
    if not (v_result ->> 'found')::boolean then
        return v_result;
    end if;

    select coalesce(jsonb_object_agg(j.job_id, jsonb_build_object(
               'attempts', j.attempts,
               'age_seconds', extract(epoch from now() - j.first_seen_at))), '{}'::jsonb)
      into v_jobs
      from reconciler.jobs j
     where j.project_id = p_project_id and j.settled_at is null;

    -- Long keys are named by their first characters: the key itself may be a megabyte.
    select coalesce(jsonb_object_agg(left(e.key, 64), length(e.key)), '{}'::jsonb)
      into v_long
      from jsonb_each(v_result -> 'clips') e
     where e.value = '"pending"'::jsonb and not reconciler.is_trackable(e.key);

    return v_result || jsonb_build_object('pending_jobs', v_jobs, 'untrackable', v_long);
end;
$$;


-- Track jobs of a project that are still pending (after a check that did not settle them).
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
    select p.clips into v_clips from public.projects p where p.id = p_project_id;
    if found then
        perform reconciler.track_pending(
            p_project_id, v_clips, p_job_ids, p_first_check_delay_seconds, 0);
    end if;
end;
$$;


-- A webhook result. Kept (first result wins) for any project that holds the job or gets it
-- later, and applied (guarded) to every project that holds it now: an index look-up in our own
-- jobs table. When none does yet but the outbox holds changes not looked at (the app's
-- "pending" write may be among them), a small batch of it is drained first, so a webhook that
-- follows the app's write closely is applied rather than parked.
-- Returns {"outcome": "applied"|"parked"|"duplicate", "project_ids": [...]}: applied to at
-- least one project; kept because no project holds the job; or nothing new.
drop function if exists public.reconciler_ingest_result(text, text, text);
create or replace function public.reconciler_ingest_result(
    p_job_id text,
    p_result text,
    p_reason text,
    p_first_check_delay_seconds double precision
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_result   text;
    v_reason   text;
    v_stored   integer;
    v_project  uuid;
    v_outcome  jsonb;
    v_holders  integer := 0;
    v_applied  uuid[] := '{}';
begin
    perform reconciler.assert_results(jsonb_build_object(p_job_id, p_result));
    if not reconciler.is_trackable(p_job_id) then
        raise exception 'job id of % characters cannot be a Runware task id', length(p_job_id)
            using errcode = '22023';
    end if;

    -- Before the result is stored, so that this call (not the drain) applies it and says so.
    if not exists (select 1 from reconciler.jobs j where j.job_id = p_job_id)
       and exists (select 1 from reconciler.changed_projects) then
        perform reconciler.drain_changes(100, p_first_check_delay_seconds, 0, true);
    end if;

    insert into reconciler.parked_results (job_id, result, reason)
    values (p_job_id, p_result, p_reason)
    on conflict (job_id) do nothing;
    get diagnostics v_stored = row_count;
    -- The first terminal result wins, for every project.
    select pr.result, pr.reason into v_result, v_reason
      from reconciler.parked_results pr where pr.job_id = p_job_id;

    for v_project in
        select j.project_id from reconciler.jobs j where j.job_id = p_job_id order by j.project_id
    loop
        v_holders := v_holders + 1;
        v_outcome := public.reconciler_apply_results(
            v_project, jsonb_build_object(p_job_id, v_result));
        if v_outcome -> 'changed' ? p_job_id then
            v_applied := v_applied || v_project;
        end if;
        if v_reason is not null and (v_outcome -> 'changed' ? p_job_id
                                     or (v_outcome -> 'clips') ->> p_job_id = v_result) then
            update reconciler.jobs set last_error = left(v_reason, 1000)
             where project_id = v_project and job_id = p_job_id and last_error is null;
        end if;
    end loop;

    return jsonb_build_object(
        'outcome', case when cardinality(v_applied) > 0 then 'applied'
                        when v_holders = 0 and v_stored = 1 then 'parked'
                        else 'duplicate' end,
        'project_ids', to_jsonb(v_applied));
end;
$$;


-- Record why a job's result was not written (e.g. a webhook URL outside the allow-list), on
-- every project that tracks it unsettled; returns whether one was recorded.
create or replace function public.reconciler_note_job_error(p_job_id text, p_error text)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
    update reconciler.jobs set last_error = left(p_error, 1000)
     where job_id = p_job_id and settled_at is null;
    return found;
end;
$$;


-- --- Draining the outbox, sweeping, resyncing -------------------------------------------------------

-- Errors that say "this project cannot be reconciled as it is" (bad data, a limit, an app
-- trigger that raises): recorded and skipped. Anything else (deadlock, cancel, shutdown) is
-- retried later.
create or replace function reconciler.is_refusal(p_sqlstate text)
returns boolean
language sql
immutable
set search_path = ''
as $$
    select left(p_sqlstate, 2) in ('22', '23', '42', '54', 'P0', '2F', '39', '44');
$$;


-- Take up to p_limit rows of the outbox and reconcile each project they name, each on its own:
-- one project that fails is reported in "refused" (and not retried until the next sweep or
-- resync), or put back for a later drain when the failure may pass.
-- p_wait false (the engine): SKIP LOCKED, replicas drain side by side. p_wait true (a webhook
-- that found no project for its job): wait for rows another transaction is draining, so that
-- the tracking it commits is seen — else the result would be parked beside a job tracked a
-- moment later, and stay unapplied until the next poll or sweep.
-- Returns {"rows", "projects", "refused": {project: message}}.
create or replace function reconciler.drain_changes(
    p_limit integer,
    p_first_check_delay_seconds double precision,
    p_spread_seconds double precision,
    p_wait boolean
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_rows     tid[];
    v_projects uuid[];
    v_taken    integer;
    v_project  uuid;
    v_refused  jsonb := '{}'::jsonb;
begin
    if p_wait then
        v_rows := array(select s.ctid from reconciler.changed_projects s
                         limit greatest(p_limit, 0) for update);
    else
        v_rows := array(select s.ctid from reconciler.changed_projects s
                         limit greatest(p_limit, 0) for update skip locked);
    end if;
    with taken as (
        delete from reconciler.changed_projects c where c.ctid = any (v_rows)
        returning c.project_id
    )
    select array_agg(distinct t.project_id), count(*) into v_projects, v_taken from taken t;

    foreach v_project in array coalesce(v_projects, '{}'::uuid[]) loop
        begin
            perform reconciler.reconcile_project(
                v_project, p_first_check_delay_seconds, p_spread_seconds, true);
        exception when others then
            if reconciler.is_refusal(sqlstate) then
                v_refused := v_refused || jsonb_build_object(v_project::text, sqlerrm);
            else
                insert into reconciler.changed_projects (project_id) values (v_project);
            end if;
        end;
    end loop;
    return jsonb_build_object(
        'rows', v_taken, 'projects', coalesce(cardinality(v_projects), 0), 'refused', v_refused);
end;
$$;

create or replace function public.reconciler_drain_changes(
    p_limit integer,
    p_first_check_delay_seconds double precision,
    p_spread_seconds double precision
)
returns jsonb
language sql
security definer
set search_path = ''
as $$
    select reconciler.drain_changes(
        p_limit, p_first_check_delay_seconds, p_spread_seconds, false);
$$;


-- Projects with unsettled jobs, in id order after p_after (keyset pages for sweeps): work in
-- proportion to what is pending, never to the size of projects.
create or replace function public.reconciler_projects_with_pending(p_after uuid, p_limit integer)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
    select coalesce(jsonb_agg(s.project_id order by s.project_id), '[]'::jsonb)
      from (select distinct j.project_id from reconciler.jobs j
             where j.settled_at is null
               and (p_after is null or j.project_id > p_after)
             order by j.project_id
             limit greatest(p_limit, 0)) s;
$$;


-- One page of the full resync, for writes our trigger never saw (triggers disabled with
-- session_replication_role = replica, restores): the next p_limit projects after p_after in id
-- order; each one with a pending clip is reconciled on its own, as in the drain.
-- Returns {"last": <last id or null when done>, "scanned", "reconciled", "refused"}.
create or replace function public.reconciler_resync_page(
    p_after uuid,
    p_limit integer,
    p_first_check_delay_seconds double precision,
    p_spread_seconds double precision
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_row        record;
    v_last       uuid;
    v_scanned    integer := 0;
    v_reconciled integer := 0;
    v_refused    jsonb := '{}'::jsonb;
begin
    for v_row in
        select p.id,
               jsonb_typeof(p.clips) = 'object'
               and jsonb_path_exists(p.clips, '$.* ? (@ == "pending")') as has_pending
          from public.projects p
         where p_after is null or p.id > p_after
         order by p.id
         limit greatest(p_limit, 0)
    loop
        v_scanned := v_scanned + 1;
        v_last := v_row.id;
        continue when not coalesce(v_row.has_pending, false);
        begin
            perform reconciler.reconcile_project(
                v_row.id, p_first_check_delay_seconds, p_spread_seconds, true);
            v_reconciled := v_reconciled + 1;
        exception when others then
            v_refused := v_refused || jsonb_build_object(v_row.id::text, sqlerrm);
        end;
    end loop;
    return jsonb_build_object(
        'last', case when v_scanned < greatest(p_limit, 0) then null else v_last end,
        'scanned', v_scanned, 'reconciled', v_reconciled, 'refused', v_refused);
end;
$$;


-- --- Polling ----------------------------------------------------------------------------------------

-- Claim up to p_limit due jobs for p_owner; a lease that expired (its owner crashed) is
-- claimable again. SKIP LOCKED lets replicas claim side by side without waiting (I6).
create or replace function public.reconciler_claim_due_jobs(
    p_owner text,
    p_limit integer,
    p_lease_seconds double precision
)
returns jsonb
language sql
security definer
set search_path = ''
as $$
    with due as (
        select j.project_id, j.job_id from reconciler.jobs j
         where j.settled_at is null
           and j.next_check_at <= now()
           and (j.lease_expires_at is null or j.lease_expires_at <= now())
         order by j.next_check_at
         limit greatest(p_limit, 0)
         for update skip locked
    ), claimed as (
        update reconciler.jobs j
           set lease_owner = p_owner,
               lease_expires_at = now() + make_interval(secs => p_lease_seconds)
          from due
         where j.project_id = due.project_id and j.job_id = due.job_id
        returning j.job_id, j.project_id, j.attempts, j.first_seen_at
    )
    select coalesce(jsonb_agg(jsonb_build_object(
               'job_id', c.job_id, 'project_id', c.project_id, 'attempts', c.attempts,
               'age_seconds', extract(epoch from now() - c.first_seen_at))), '[]'::jsonb)
      from claimed c;
$$;


-- A poll round's whole outcome in one call. p_outcomes is an array of
-- {"project_id", "job_id", "result": <url>|"failed"|null, "reason": text|null,
--  "next_check_in_seconds": number}:
--   * results are applied per project, each in its own guarded merge; a project the database
--     refuses is reported and its jobs rescheduled like the unanswered ones;
--   * reasons are recorded (on settled jobs too: a failure's reason stays readable);
--   * every other job gets attempts + 1 and its next check; the caller's leases are released.
-- Returns {"changed": {project: {job: value}}, "refused": {project: message}, "rescheduled": n}.
create or replace function public.reconciler_finish_round(p_owner text, p_outcomes jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_project     uuid;
    v_results     jsonb;
    v_outcome     jsonb;
    v_changed     jsonb := '{}'::jsonb;
    v_refused     jsonb := '{}'::jsonb;
    v_rescheduled integer;
begin
    if p_outcomes is null or jsonb_typeof(p_outcomes) <> 'array' then
        raise exception 'outcomes must be a JSON array' using errcode = '22023';
    end if;

    create temporary table if not exists reconciler_round (
        project_id uuid, job_id text, result text, reason text,
        next_check_in_seconds double precision
    ) on commit drop;
    truncate reconciler_round;
    insert into reconciler_round
    select o.project_id, o.job_id, o.result, o.reason, o.next_check_in_seconds
      from jsonb_to_recordset(p_outcomes) as o(
               project_id uuid, job_id text, result text, reason text,
               next_check_in_seconds double precision);

    -- Reasons first: a failure's reason stays on the job it settles.
    update reconciler.jobs j
       set last_error = left(r.reason, 1000)
      from reconciler_round r
     where j.project_id = r.project_id and j.job_id = r.job_id and r.result is not null
       and r.reason is not null;

    for v_project, v_results in
        select r.project_id, jsonb_object_agg(r.job_id, r.result)
          from reconciler_round r where r.result is not null group by r.project_id
    loop
        begin
            v_outcome := public.reconciler_apply_results(v_project, v_results);
            if v_outcome -> 'changed' <> '{}'::jsonb then
                v_changed := v_changed || jsonb_build_object(v_project::text, v_outcome -> 'changed');
            end if;
        exception when others then
            if not reconciler.is_refusal(sqlstate) then
                raise;
            end if;
            v_refused := v_refused || jsonb_build_object(v_project::text, sqlerrm);
        end;
    end loop;

    update reconciler.jobs j
       set attempts = j.attempts + 1,
           last_checked_at = now(),
           next_check_at = now() + make_interval(secs => greatest(r.next_check_in_seconds, 0)),
           last_error = case when r.result is null then left(r.reason, 1000)
                             else coalesce(left(r.reason, 1000), j.last_error) end,
           lease_owner = null,
           lease_expires_at = null
      from reconciler_round r
     where j.project_id = r.project_id and j.job_id = r.job_id
       and j.settled_at is null
       and (j.lease_owner is null or j.lease_owner = p_owner or j.lease_expires_at <= now());
    get diagnostics v_rescheduled = row_count;

    return jsonb_build_object(
        'changed', v_changed, 'refused', v_refused, 'rescheduled', v_rescheduled);
end;
$$;


create or replace function public.reconciler_job_states(p_job_ids text[])
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
    select coalesce(jsonb_object_agg(j.job_id, jsonb_build_object(
               'project_id', j.project_id,
               'attempts', j.attempts,
               'age_seconds', extract(epoch from now() - j.first_seen_at),
               'next_check_in_seconds', extract(epoch from j.next_check_at - now()),
               'lease_owner', j.lease_owner,
               'last_error', j.last_error,
               'settled', j.settled_at is not null,
               'outcome', j.outcome)), '{}'::jsonb)
      from reconciler.jobs j
     where j.job_id = any(p_job_ids);
$$;


-- Retention: forget settled jobs and stored webhook results older than p_older_than_seconds.
-- Bounded per call so a large backlog is worked off over several sweeps without long locks.
-- Returns {"jobs": n, "parked": n}.
create or replace function public.reconciler_purge(
    p_older_than_seconds double precision,
    p_limit integer
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_cutoff timestamptz := now() - make_interval(secs => greatest(p_older_than_seconds, 0));
    v_jobs   integer;
    v_parked integer;
begin
    delete from reconciler.jobs j
     where (j.project_id, j.job_id) in (
               select s.project_id, s.job_id from reconciler.jobs s
                where s.settled_at < v_cutoff limit greatest(p_limit, 0));
    get diagnostics v_jobs = row_count;
    delete from reconciler.parked_results pr
     where pr.job_id in (select s.job_id from reconciler.parked_results s
                          where s.received_at < v_cutoff limit greatest(p_limit, 0));
    get diagnostics v_parked = row_count;
    return jsonb_build_object('jobs', v_jobs, 'parked', v_parked);
end;
$$;


-- For the metrics endpoint: our own aggregates, never a scan of projects.
create or replace function public.reconciler_pending_stats()
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
    select jsonb_build_object(
               'pending', count(*),
               'oldest_age_seconds',
               coalesce(extract(epoch from now() - min(j.first_seen_at)), 0),
               'untrackable', (select count(*) from reconciler.untrackable_clips),
               'changes_waiting', (select count(*) from reconciler.changed_projects))
      from reconciler.jobs j
     where j.settled_at is null;
$$;


-- --- Back-fill: pending clips that exist now --------------------------------------------------------

-- Rows written before this migration (or while it was not installed) were never seen by the
-- trigger. One pass here; the throttled resync repeats it for writes that bypass triggers.
do $$
declare
    v_id uuid;
begin
    for v_id in
        select p.id from public.projects p
         where jsonb_typeof(p.clips) = 'object'
           and jsonb_path_exists(p.clips, '$.* ? (@ == "pending")')
    loop
        perform reconciler.reconcile_project(v_id, 0, 60, true);
    end loop;
end;
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
