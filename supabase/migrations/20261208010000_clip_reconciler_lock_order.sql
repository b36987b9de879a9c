-- Clip reconciler: one lock order for every writer of a project, and the outbox sees every new
-- "pending" clip, whoever wrote it.
--
-- Applied after 20261202300000_clip_reconciler_operator_archive.sql (files are never edited).
-- Idempotent, like every file here.
--
-- LOCK ORDER (docs/architecture.md, "Lock order"). A transaction of ours takes, in this order
-- and never backwards:
--   1. the job's ingest slot: pg_advisory_xact_lock(hashtext('reconciler.ingest_result'),
--      hashtext(job id)), first thing in reconciler_ingest_result, so two deliveries of one
--      job never wait for each other's kept result while holding a project;
--   2. outbox rows (reconciler.changed_projects), taken by a drain before any project;
--   3. project rows (public.projects, FOR UPDATE), in ascending id when one step takes
--      several: the project row is the mutex for everything the reconciler keeps about it;
--   4. that project's job rows (reconciler.jobs), in jsonb's key order (length, then bytes),
--      only while holding the project's row;
--   5. rows nobody else waits for: kept results, archive tasks, untrackable clips, the
--      per-minute count deltas (insert-only; folds take a try-lock and skip when busy).
-- The app's own update takes only step 3 (its row) and appends to the outbox, which never
-- waits. Claims (FOR UPDATE SKIP LOCKED) never wait, so they cannot close a cycle.
--
-- The cycle this file removes (measured: 11 and 12 of 40P01 in two runs of 6 rounds of 16 webhooks, 8 app writers,
-- 2 drains and a poll round on one project,
-- tests/integration/test_concurrent_writers_to_one_project_never_deadlock.py): a webhook's drain
-- (or the poll round's progress and reasons) wrote job rows of project P without holding P, then
-- asked for P in reconciler_apply_results; another webhook held P in reconciler_apply_results and
-- waited for those job rows in reconciler.settle_jobs. App writers queued on P's row joined the
-- cycle as bystanders and were cancelled too. Now the drain, the webhook and the poll round lock
-- the project row before they write any of its jobs.
--
-- Item 7: reconciler.own_write hid the whole transaction from the outbox, so a BEFORE trigger of
-- the app that adds a pending clip while we settle another was never seen. The trigger now
-- records our own writes too when they leave a key newly "pending" (only our writes look at the
-- clips; the app's writes stay O(1)).


-- --- The outbox trigger ------------------------------------------------------------------------------

-- Whether new_clips holds a "pending" key that old_clips did not hold as "pending". Only our own
-- writes ask (they are pending -> result merges, so this is their size, never the app's cost).
create or replace function reconciler.adds_pending(p_old_clips jsonb, p_new_clips jsonb)
returns boolean
language sql
immutable
set search_path = ''
as $$
    select jsonb_typeof(p_new_clips) = 'object'
       and exists (select 1 from jsonb_each(p_new_clips) e
                    where e.value = '"pending"'::jsonb
                      and (case when jsonb_typeof(p_old_clips) = 'object'
                                then p_old_clips -> e.key end) is distinct from '"pending"'::jsonb);
$$;

-- App writes: one outbox insert, the clips never read (I9). Our own writes
-- (reconciler.own_write) add no pending clip themselves, but a BEFORE trigger of the app may add
-- one in the same statement: recorded whenever a key newly becomes "pending".
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
    if current_setting('reconciler.own_write', true) = 'on'
       and tg_op = 'UPDATE' and not reconciler.adds_pending(old.clips, new.clips) then
        return null;
    end if;
    insert into reconciler.changed_projects (project_id) values (new.id);
    return null;
end;
$$;


-- --- Step 3 before step 4 ------------------------------------------------------------------------------

-- Lock the rows of these projects, in ascending id (step 3). A project that is gone is skipped.
create or replace function reconciler.lock_projects(p_project_ids uuid[])
returns void
language plpgsql
set search_path = ''
as $$
begin
    -- PERFORM runs the query to its end: every row is locked, in the ORDER BY's order.
    perform 1 from public.projects p
      where p.id = any (p_project_ids)
      order by p.id
        for update;
end;
$$;

-- As in v2, with the job rows locked in the order in which reconciler.track_pending meets
-- them (jsonb's key order: shorter keys first, then bytewise), step 4: the caller holds the
-- project's row, and a writer that does not (reconcile_project behind a check or a sweep) then
-- takes the same rows in the same order.
create or replace function reconciler.settle_jobs(p_project_id uuid, p_clips jsonb)
returns void
language sql
set search_path = ''
as $$
    with settling as (
        select j.project_id, j.job_id from reconciler.jobs j
         where j.project_id = p_project_id and j.settled_at is null
           and (p_clips -> j.job_id) is distinct from '"pending"'::jsonb
         order by length(j.job_id), j.job_id collate "C"
           for update
    )
    update reconciler.jobs j
       set settled_at = now(),
           outcome = coalesce(p_clips ->> j.job_id, 'removed'),
           lease_owner = null, lease_expires_at = null
      from settling s
     where j.project_id = s.project_id and j.job_id = s.job_id;
$$;


-- (a) Guarded merge, as in 20261202100000_clip_reconciler_archive.sql: the project row first
-- (step 3), then its jobs (step 4), then the archive queue (step 5).
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
    -- Our own write adds no pending clip; the outbox trigger still records one that an app
    -- trigger adds in the same statement.
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

    if v_changed <> '{}'::jsonb
       and (select s.enabled from reconciler.archive_settings s where s.singleton) then
        perform reconciler.queue_archive(p_project_id, v_changed, true);
    end if;

    return jsonb_build_object('found', true, 'changed', v_changed, 'clips', v_clips);
end;
$$;


-- --- Draining ------------------------------------------------------------------------------------------

-- As in v2 (outbox rows, then each project in ascending id), with each project's row locked
-- before reconcile_project writes its jobs (step 3 before step 4). The answer also names the
-- projects reconciled ("project_ids"), for reconciler_ingest_result's order check.
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
    select array(select distinct t.project_id from taken t order by 1), count(*)
      into v_projects, v_taken
      from taken t;

    foreach v_project in array v_projects loop
        begin
            perform reconciler.lock_projects(array[v_project]);
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
        'rows', v_taken, 'projects', cardinality(v_projects), 'refused', v_refused,
        'project_ids', to_jsonb(v_projects));
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
        p_limit, p_first_check_delay_seconds, p_spread_seconds, false) - 'project_ids';
$$;


-- --- Webhooks --------------------------------------------------------------------------------------------

-- As in v2, in the lock order: the job's slot (step 1), the drain (steps 2-4), then each
-- project holding the job in ascending id (steps 3-4). A holder that sorts below a project
-- the drain already holds, and that the drain did not take (it started tracking the job
-- meanwhile), would be taken backwards: it is taken only if free (SKIP LOCKED); when busy, its
-- project goes back to the outbox, and the next drain applies the kept result.
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
    v_drained  uuid[] := '{}';
begin
    perform reconciler.assert_results(jsonb_build_object(p_job_id, p_result));
    if not reconciler.is_trackable(p_job_id) then
        raise exception 'job id of % characters cannot be a Runware task id', length(p_job_id)
            using errcode = '22023';
    end if;

    perform pg_advisory_xact_lock(hashtext('reconciler.ingest_result'), hashtext(p_job_id));

    -- Before the result is stored, so that this call (not the drain) applies it and says so.
    if not exists (select 1 from reconciler.jobs j where j.job_id = p_job_id)
       and exists (select 1 from reconciler.changed_projects) then
        select coalesce(array(select jsonb_array_elements_text(
                   reconciler.drain_changes(100, p_first_check_delay_seconds, 0, true)
                   -> 'project_ids')::uuid), '{}')
          into v_drained;
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
        if not (v_project = any (v_drained))
           and exists (select 1 from unnest(v_drained) d where d > v_project) then
            perform 1 from public.projects p where p.id = v_project for update skip locked;
            if not found then
                insert into reconciler.changed_projects (project_id) values (v_project);
                continue;
            end if;
        end if;
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


-- --- Poll rounds -------------------------------------------------------------------------------------------

-- As in v2, with every project of the round locked first, in ascending id (step 3), before any
-- of their jobs is written (step 4), and the results applied in the same order.
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

    perform reconciler.lock_projects(array(select distinct r.project_id from reconciler_round r));

    -- Reasons first: a failure's reason stays on the job it settles.
    update reconciler.jobs j
       set last_error = left(r.reason, 1000)
      from reconciler_round r
     where j.project_id = r.project_id and j.job_id = r.job_id and r.result is not null
       and r.reason is not null;

    for v_project, v_results in
        select r.project_id, jsonb_object_agg(r.job_id, r.result)
          from reconciler_round r where r.result is not null
         group by r.project_id order by r.project_id
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

-- As in 20261202200000_clip_reconciler_operator.sql, with the round's projects locked (step 3)
-- before the progress of their jobs is written (step 4).
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
    perform reconciler.lock_projects(array(
        select distinct o.project_id
          from jsonb_to_recordset(p_outcomes) as o(project_id uuid)));
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
