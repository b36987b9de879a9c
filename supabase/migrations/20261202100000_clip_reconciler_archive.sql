-- Clip reconciler: archive finished videos into Supabase Storage before Runware deletes them.
--
-- Applied after 20261202000000_clip_reconciler_v2.sql (never edited). Idempotent, like it.
--
-- Runware deletes generated files after a retention period, so a clip holding a Runware URL
-- goes dead. With archiving on (RECONCILER_ARCHIVE=supabase) the service copies each finished
-- video into a Storage bucket and swaps the clip's value to the object's URL.
--
-- How nothing is missed
--   * reconciler.archive_settings says whether archiving is on; the service sets it at
--     start-up (reconciler_set_archiving).
--   * reconciler_apply_results is the one write path of results to clips (webhooks, polls,
--     checks, parked results all end there). It is redefined here to queue an archive task for
--     every URL it writes, in the same statement's transaction: a URL that committed has its
--     task, whatever happens to the process afterwards.
--   * Clips that held URLs before archiving was on are queued by the back-fill
--     (reconciler_archive_backfill_page, `reconciler archive --backfill`), a keyset page at a
--     time.
--   * Tasks are claimed with leases (FOR UPDATE SKIP LOCKED; an expired lease is claimable
--     again), so a kill -9 during an upload loses nothing: the task comes back after the lease.
--
-- I1 with archiving: a clip moves <Runware url> -> <archived url> only in
-- reconciler_archive_succeeded, in one guarded statement that requires the clip to hold exactly
-- the URL that was archived. If the app changed it meanwhile, the task ends 'superseded' and the
-- clip is left alone. A task given up (source gone, too large, not a video, too many attempts)
-- leaves the clip with its Runware URL.


-- --- State -----------------------------------------------------------------------------------------

-- One row: whether results written now must be archived.
create table if not exists reconciler.archive_settings (
    singleton  boolean primary key default true check (singleton),
    enabled    boolean not null default false,
    changed_at timestamptz not null default now()
);
insert into reconciler.archive_settings (singleton, enabled) values (true, false)
on conflict do nothing;

-- One task per (project, job): the Runware URL to copy and what became of it. Finished tasks
-- keep the original URL, size and checksum (the clip then holds the archived URL).
create table if not exists reconciler.archive_tasks (
    project_id      uuid not null,
    job_id          text not null,
    source_url      text not null,
    state           text not null default 'queued'
                    check (state in ('queued', 'archived', 'given_up', 'superseded')),
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    lease_owner     text,
    lease_until     timestamptz,
    last_error      text,
    size_bytes      bigint,
    sha256          text,
    object_path     text,
    archived_url    text,
    created_at      timestamptz not null default now(),
    finished_at     timestamptz,
    primary key (project_id, job_id)
);
-- Claims and the backlog read only unfinished tasks, in due order.
create index if not exists archive_tasks_unfinished_idx
    on reconciler.archive_tasks (next_attempt_at) where state = 'queued';

revoke all on all tables in schema reconciler from public;
revoke all on all tables in schema reconciler from anon, authenticated;


-- --- Queueing ----------------------------------------------------------------------------------------

-- Queue a task for each URL in p_values ({job: value}; "failed" and non-strings are skipped).
-- p_requeue: a clip that now holds a URL again (it went back to pending and got a result) gets
-- its task back even if one finished before; the back-fill passes false so that a task that
-- was given up is not retried on every page. Returns how many tasks were queued.
create or replace function reconciler.queue_archive(
    p_project_id uuid,
    p_values jsonb,
    p_requeue boolean
)
returns integer
language plpgsql
set search_path = ''
as $$
declare
    v_queued integer;
begin
    insert into reconciler.archive_tasks as t (project_id, job_id, source_url)
    select p_project_id, e.key, e.value #>> '{}'
      from jsonb_each(p_values) e
     where jsonb_typeof(e.value) = 'string'
       and e.value <> '"failed"'::jsonb and e.value <> '"pending"'::jsonb
       and reconciler.is_trackable(e.key)
    on conflict (project_id, job_id) do update
       set source_url = excluded.source_url, state = 'queued', attempts = 0,
           next_attempt_at = now(), lease_owner = null, lease_until = null, last_error = null,
           size_bytes = null, sha256 = null, object_path = null, archived_url = null,
           created_at = now(), finished_at = null
     where t.source_url is distinct from excluded.source_url
        or (p_requeue and t.state <> 'queued');
    get diagnostics v_queued = row_count;
    return v_queued;
end;
$$;


-- (a) Guarded merge, as in v2, plus: with archiving on, every URL it writes is queued for
-- archiving in the same transaction. Returns {"found", "changed", "clips"} as before.
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

    if v_changed <> '{}'::jsonb
       and (select s.enabled from reconciler.archive_settings s where s.singleton) then
        perform reconciler.queue_archive(p_project_id, v_changed, true);
    end if;

    return jsonb_build_object('found', true, 'changed', v_changed, 'clips', v_clips);
end;
$$;


-- The service says at start-up whether it archives. Off: results are no longer queued (tasks
-- already queued wait for archiving to be on again). Returns {"enabled", "backlog"}.
create or replace function public.reconciler_set_archiving(p_enabled boolean)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
    if p_enabled is null then
        raise exception 'enabled must be true or false' using errcode = '22004';
    end if;
    update reconciler.archive_settings
       set enabled = p_enabled, changed_at = now()
     where singleton and enabled is distinct from p_enabled;
    return jsonb_build_object(
        'enabled', p_enabled,
        'backlog', (select count(*) from reconciler.archive_tasks t where t.state = 'queued'));
end;
$$;


-- --- Working the queue -------------------------------------------------------------------------------

-- Claim up to p_limit due tasks for p_owner, leased for p_lease_seconds; a task whose lease
-- expired (its owner crashed) is claimable again. Each claim counts as an attempt, so a task
-- whose copy never finishes (it kills its worker every time) is given up once it has had
-- p_max_attempts, instead of being claimed for ever.
-- A task whose clip no longer holds its URL (the app changed or removed it, or the project is
-- gone) is finished as 'superseded' here, without downloading anything.
-- Returns [{"project_id", "job_id", "source_url", "attempts"}].
create or replace function public.reconciler_claim_archive_tasks(
    p_owner text,
    p_limit integer,
    p_lease_seconds double precision,
    p_max_attempts integer
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_claimed jsonb;
begin
    if p_owner is null or p_owner = '' then
        raise exception 'owner must be a non-empty string' using errcode = '22023';
    end if;

    create temporary table if not exists reconciler_archive_claim (
        project_id uuid, job_id text, source_url text, attempts integer, current boolean
    ) on commit drop;
    truncate reconciler_archive_claim;

    with due as (
        select t.project_id, t.job_id from reconciler.archive_tasks t
         where t.state = 'queued'
           and t.next_attempt_at <= now()
           and (t.lease_until is null or t.lease_until <= now())
         order by t.next_attempt_at
         limit greatest(p_limit, 0)
         for update skip locked
    ), claimed as (
        update reconciler.archive_tasks t
           set lease_owner = p_owner,
               lease_until = now() + make_interval(secs => greatest(p_lease_seconds, 1)),
               attempts = t.attempts + 1
          from due
         where t.project_id = due.project_id and t.job_id = due.job_id
        returning t.project_id, t.job_id, t.source_url, t.attempts
    )
    insert into reconciler_archive_claim
    select c.project_id, c.job_id, c.source_url, c.attempts,
           coalesce((select p.clips -> c.job_id = to_jsonb(c.source_url)
                       from public.projects p
                      where p.id = c.project_id and jsonb_typeof(p.clips) = 'object'), false)
      from claimed c;

    update reconciler.archive_tasks t
       set state = 'superseded', finished_at = now(), lease_owner = null, lease_until = null,
           last_error = 'the clip no longer holds this URL (changed or removed by the app)'
      from reconciler_archive_claim c
     where t.project_id = c.project_id and t.job_id = c.job_id and not c.current;

    update reconciler.archive_tasks t
       set state = 'given_up', finished_at = now(), lease_owner = null, lease_until = null,
           last_error = left(format('gave up after %s attempts that never finished (the process'
                                    ' stopped during each copy); last error: %s',
                                    c.attempts - 1, coalesce(t.last_error, 'none')), 1000)
      from reconciler_archive_claim c
     where t.project_id = c.project_id and t.job_id = c.job_id and c.current
       and c.attempts > greatest(p_max_attempts, 1);
    update reconciler_archive_claim c set current = false
     where c.attempts > greatest(p_max_attempts, 1);

    select coalesce(jsonb_agg(jsonb_build_object(
               'project_id', c.project_id, 'job_id', c.job_id, 'source_url', c.source_url,
               'attempts', c.attempts) order by c.project_id, c.job_id), '[]'::jsonb)
      into v_claimed
      from reconciler_archive_claim c where c.current;
    return v_claimed;
end;
$$;


-- Keep this owner's leases while its uploads run; returns how many were renewed.
create or replace function public.reconciler_renew_archive_leases(
    p_owner text,
    p_lease_seconds double precision
)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_renewed integer;
begin
    update reconciler.archive_tasks
       set lease_until = now() + make_interval(secs => greatest(p_lease_seconds, 1))
     where lease_owner = p_owner and state = 'queued';
    get diagnostics v_renewed = row_count;
    return v_renewed;
end;
$$;


-- A clean stop hands this owner's unfinished tasks back at once (a kill -9 leaves them to lease
-- expiry). The interrupted attempt is not counted: the stop was ours, not the video's.
create or replace function public.reconciler_release_archive_leases(p_owner text)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_released integer;
begin
    update reconciler.archive_tasks
       set lease_owner = null, lease_until = null, attempts = greatest(attempts - 1, 0)
     where lease_owner = p_owner and state = 'queued';
    get diagnostics v_released = row_count;
    return v_released;
end;
$$;


-- The object is in Storage. One guarded statement swaps the clip to the archived URL only if it
-- still holds exactly p_source_url (I1); otherwise the task ends 'superseded' and the clip is
-- left alone. Either way the task keeps the original URL, size, checksum and object path.
-- Only a task still queued for this very URL is finished (another replica may have finished
-- it after this one's lease expired: the upload went to the same path, nothing to do).
-- Returns {"state": "archived"|"superseded"|"not_queued"}.
create or replace function public.reconciler_archive_succeeded(
    p_project_id uuid,
    p_job_id text,
    p_source_url text,
    p_archived_url text,
    p_object_path text,
    p_size_bytes bigint,
    p_sha256 text
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_swapped integer;
    v_state   text;
begin
    if p_archived_url is null or p_archived_url !~ '^https?://' then
        raise exception 'archived URL must be an http(s) URL' using errcode = '22023';
    end if;
    if p_object_path is null or p_object_path = '' or p_size_bytes is null or p_size_bytes < 0
       or p_sha256 is null or p_sha256 !~ '^[0-9a-f]{64}$' then
        raise exception 'object path, size and sha256 (hex) are required' using errcode = '22023';
    end if;

    perform 1 from reconciler.archive_tasks t
     where t.project_id = p_project_id and t.job_id = p_job_id
       and t.source_url = p_source_url and t.state = 'queued'
       for update;
    if not found then
        return jsonb_build_object('state', 'not_queued');
    end if;

    -- Our own write adds no pending clip: the outbox trigger skips it.
    perform set_config('reconciler.own_write', 'on', true);
    update public.projects p
       set clips = jsonb_set(p.clips, array[p_job_id], to_jsonb(p_archived_url))
     where p.id = p_project_id
       and jsonb_typeof(p.clips) = 'object'
       and p.clips -> p_job_id = to_jsonb(p_source_url);
    get diagnostics v_swapped = row_count;
    v_state := case when v_swapped = 1 then 'archived' else 'superseded' end;

    update reconciler.archive_tasks t
       set state = v_state, finished_at = now(), lease_owner = null, lease_until = null,
           size_bytes = p_size_bytes, sha256 = p_sha256, object_path = p_object_path,
           archived_url = p_archived_url,
           last_error = case when v_swapped = 1 then null
                             else 'the clip no longer holds this URL (changed or removed by the'
                                  ' app); the object stays in Storage' end
     where t.project_id = p_project_id and t.job_id = p_job_id;
    return jsonb_build_object('state', v_state);
end;
$$;


-- The copy failed. Permanent (source gone, too large, not a video), or the attempts reached
-- p_max_attempts: the task is given up with the reason and the clip keeps its Runware URL.
-- Otherwise it is due again after p_retry_in_seconds (the caller's backoff from attempts),
-- bounded to a day. Returns {"state": "queued"|"given_up"|"not_queued"}.
create or replace function public.reconciler_archive_failed(
    p_project_id uuid,
    p_job_id text,
    p_source_url text,
    p_error text,
    p_permanent boolean,
    p_retry_in_seconds double precision,
    p_max_attempts integer
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_attempts integer;
    v_give_up  boolean;
begin
    select t.attempts into v_attempts from reconciler.archive_tasks t
     where t.project_id = p_project_id and t.job_id = p_job_id
       and t.source_url = p_source_url and t.state = 'queued'
       for update;
    if not found then
        return jsonb_build_object('state', 'not_queued');
    end if;
    v_give_up := coalesce(p_permanent, false) or v_attempts >= greatest(p_max_attempts, 1);

    update reconciler.archive_tasks t
       set state = case when v_give_up then 'given_up' else 'queued' end,
           finished_at = case when v_give_up then now() end,
           next_attempt_at = now() + make_interval(
               secs => least(greatest(coalesce(p_retry_in_seconds, 0), 0), 86400)),
           lease_owner = null, lease_until = null,
           last_error = left(
               case when v_give_up and not coalesce(p_permanent, false)
                    then format('gave up after %s attempts: %s', v_attempts, p_error)
                    else p_error end, 1000)
     where t.project_id = p_project_id and t.job_id = p_job_id;
    return jsonb_build_object('state', case when v_give_up then 'given_up' else 'queued' end);
end;
$$;


-- --- Back-fill and stats ------------------------------------------------------------------------------

-- One keyset page of projects after p_after (id order): every clip holding a URL that starts
-- with one of p_source_prefixes (the allow-listed origins videos come from, `scheme://host/`,
-- lower case) and not with p_archived_prefix (the bucket's public URL: already archived) is
-- queued, unless a task for that very URL exists. URLs the app wrote from elsewhere are left
-- alone. Work per call: one page of projects.
-- Returns {"last": <last id or null when done>, "scanned", "queued"}.
drop function if exists public.reconciler_archive_backfill_page(uuid, integer, text);
create or replace function public.reconciler_archive_backfill_page(
    p_after uuid,
    p_limit integer,
    p_source_prefixes text[],
    p_archived_prefix text
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_row     record;
    v_last    uuid;
    v_scanned integer := 0;
    v_queued  integer := 0;
begin
    if p_archived_prefix is null or p_archived_prefix !~ '^https?://' then
        raise exception 'archived prefix must be an http(s) URL' using errcode = '22023';
    end if;
    if coalesce(cardinality(p_source_prefixes), 0) = 0
       or exists (select 1 from unnest(p_source_prefixes) x
                   where x is null or x !~ '^https?://[^/]+/$') then
        raise exception 'source prefixes must be http(s) origins ending in /'
            using errcode = '22023';
    end if;
    for v_row in
        select p.id,
               case when jsonb_typeof(p.clips) = 'object' then
                   (select jsonb_object_agg(e.key, e.value) from jsonb_each(p.clips) e
                     where jsonb_typeof(e.value) = 'string'
                       and exists (select 1 from unnest(p_source_prefixes) x
                                    where starts_with(lower(e.value #>> '{}'), x))
                       and not starts_with(e.value #>> '{}', p_archived_prefix))
               end as urls
          from public.projects p
         where p_after is null or p.id > p_after
         order by p.id
         limit greatest(p_limit, 0)
    loop
        v_scanned := v_scanned + 1;
        v_last := v_row.id;
        if v_row.urls is not null then
            v_queued := v_queued + reconciler.queue_archive(v_row.id, v_row.urls, false);
        end if;
    end loop;
    return jsonb_build_object(
        'last', case when v_scanned < greatest(p_limit, 0) then null else v_last end,
        'scanned', v_scanned, 'queued', v_queued);
end;
$$;


-- For metrics and the operator: the backlog and its oldest task read the partial index
-- (unfinished tasks only: O(backlog)); the counts by state (p_by_state, for `reconciler
-- archive`) are one aggregate over every task ever queued, so metrics do not ask for them.
-- Returns {"enabled", "backlog", "oldest_age_seconds", "by_state": {state: n}}.
create or replace function public.reconciler_archive_stats(p_by_state boolean)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
    select jsonb_build_object(
        'enabled', coalesce((select s.enabled from reconciler.archive_settings s
                              where s.singleton), false),
        'backlog', (select count(*) from reconciler.archive_tasks t where t.state = 'queued'),
        'oldest_age_seconds',
        coalesce((select extract(epoch from now() - min(t.created_at))
                    from reconciler.archive_tasks t where t.state = 'queued'), 0),
        'by_state',
        case when p_by_state then (select jsonb_build_object(
                    'queued', count(*) filter (where t.state = 'queued'),
                    'archived', count(*) filter (where t.state = 'archived'),
                    'given_up', count(*) filter (where t.state = 'given_up'),
                    'superseded', count(*) filter (where t.state = 'superseded'))
           from reconciler.archive_tasks t) else '{}'::jsonb end);
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
