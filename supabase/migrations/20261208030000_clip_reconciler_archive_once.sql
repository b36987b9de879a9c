-- Clip reconciler: each video is copied once, however many clips hold it; finished archive
-- rows are purged after the retention period.
--
-- Applied after 20261202300000_clip_reconciler_operator_archive.sql (never edited).
-- Idempotent, like every file here.
--
-- Before this file there was one archive task per clip (project, job): a job id held by four
-- projects gave four downloads, four uploads and four objects, and setting an archived clip
-- back to "pending" copied the video again with its attempts reset, without limit.
--
-- Now
--   * reconciler.archive_tasks is the copy: one row per source URL (its primary key). Its
--     (project_id, job_id) is the clip the copy was first queued for; it names the object path
--     (RECONCILER_ARCHIVE_PATH) and is unique, so no two copies ever write one object.
--   * reconciler.archive_clips is one row per clip waiting for (or done with) a copy: which URL
--     it held and what became of it (queued, archived, superseded, given_up).
--   * A clip that gets a URL whose object is already stored is swapped to that object at once,
--     in the same transaction, with no download (re-pending an archived clip costs nothing).
--   * A copy that finished without an object (given up, or no clip held its URL at claim time)
--     is queued again by a new result at most reconciler.archive_max_requeues() times.
--   * public.reconciler_purge_archive forgets finished rows older than the retention period, a
--     batch per call, whatever became of their project.
--
-- Lock order, everywhere: the project rows (id order), then the copy (archive_tasks), then the
-- clip rows (archive_clips). reconciler_apply_results holds its project row when it queues.


-- --- State -----------------------------------------------------------------------------------------

create table if not exists reconciler.archive_clips (
    project_id  uuid not null,
    job_id      text not null,
    source_url  text not null,
    state       text not null default 'queued'
                check (state in ('queued', 'archived', 'given_up', 'superseded')),
    last_error  text,
    created_at  timestamptz not null default now(),
    finished_at timestamptz,
    primary key (project_id, job_id)
);
-- A finished copy finds the clips waiting for it; the purge checks a copy has none.
create index if not exists archive_clips_waiting_idx
    on reconciler.archive_clips (source_url) where state = 'queued';
-- The purge reads finished rows oldest first, never the whole table.
create index if not exists archive_clips_finished_idx
    on reconciler.archive_clips (finished_at) where state <> 'queued';

-- Upgrade from one task per clip: every task becomes its clip's row, then one task per URL is
-- kept as the copy (one whose object is stored first, then one still queued, then the newest).
-- Clips waiting for a URL whose object is already stored are swapped below, once the
-- functions exist. Objects stored more than once by the old files stay in the bucket.
do $$
begin
    if exists (select 1 from information_schema.columns
                where table_schema = 'reconciler' and table_name = 'archive_tasks'
                  and column_name = 'requeues') then
        return;
    end if;
    insert into reconciler.archive_clips
           (project_id, job_id, source_url, state, last_error, created_at, finished_at)
    select t.project_id, t.job_id, t.source_url, t.state, t.last_error, t.created_at,
           t.finished_at
      from reconciler.archive_tasks t
    on conflict do nothing;
    delete from reconciler.archive_tasks t
     using (select r.project_id, r.job_id,
                   row_number() over (
                       partition by r.source_url
                       order by (r.archived_url is not null) desc, (r.state = 'queued') desc,
                                r.created_at desc, r.project_id, r.job_id) as rank
              from reconciler.archive_tasks r) ranked
     where t.project_id = ranked.project_id and t.job_id = ranked.job_id and ranked.rank > 1;
    alter table reconciler.archive_tasks drop constraint archive_tasks_pkey;
    alter table reconciler.archive_tasks add primary key (source_url);
    alter table reconciler.archive_tasks
        add constraint archive_tasks_path_owner_key unique (project_id, job_id);
    -- Last: its presence says the conversion is done.
    alter table reconciler.archive_tasks add column requeues integer not null default 0;
end;
$$;

-- The purge reads finished copies oldest first.
create index if not exists archive_tasks_finished_idx
    on reconciler.archive_tasks (finished_at) where state <> 'queued';

revoke all on all tables in schema reconciler from public;
revoke all on all tables in schema reconciler from anon, authenticated;


-- --- Shared steps ------------------------------------------------------------------------------------

-- How often a URL's copy that finished without an object (given up, or superseded before any
-- download) is queued again by a new result: a bound on what re-pending a clip can cost.
create or replace function reconciler.archive_max_requeues()
returns integer
language sql
immutable
set search_path = ''
as $$ select 2 $$;


-- Swap the clips of one project that wait for p_source_url and still hold it to the stored
-- object; the others end superseded. One guarded statement under the project's row lock (I1):
-- a clip the app changed meanwhile is left alone. Returns how many clips were swapped.
create or replace function reconciler.swap_to_object(
    p_project_id uuid,
    p_source_url text,
    p_archived_url text
)
returns integer
language plpgsql
set search_path = ''
as $$
declare
    v_keys text[];
begin
    select coalesce(array_agg(k.job_id), '{}') into v_keys
      from reconciler.archive_clips k
      join public.projects p on p.id = k.project_id
     where k.project_id = p_project_id and k.source_url = p_source_url and k.state = 'queued'
       and jsonb_typeof(p.clips) = 'object'
       and p.clips -> k.job_id = to_jsonb(p_source_url);
    if cardinality(v_keys) > 0 then
        -- Our own write adds no pending clip: the outbox trigger skips it.
        perform set_config('reconciler.own_write', 'on', true);
        update public.projects p
           set clips = p.clips || (select jsonb_object_agg(j, to_jsonb(p_archived_url))
                                     from unnest(v_keys) j)
         where p.id = p_project_id;
    end if;
    update reconciler.archive_clips k
       set state = case when k.job_id = any(v_keys) then 'archived' else 'superseded' end,
           finished_at = now(),
           last_error = case when k.job_id = any(v_keys) then null
                             else 'the clip no longer holds this URL (changed or removed by the'
                                  ' app)' end
     where k.project_id = p_project_id and k.source_url = p_source_url and k.state = 'queued';
    return cardinality(v_keys);
end;
$$;


-- --- Queueing ----------------------------------------------------------------------------------------

-- Queue each URL in p_values ({job: value}; "failed", "pending" and non-strings are skipped)
-- for the clips of p_project_id. Per URL there is one copy:
--   * its object is stored already: the clip is swapped to it now (no download);
--   * it is queued: the clip waits for it;
--   * it finished without an object: it is queued again (attempts anew) when p_requeue (a
--     new result; the back-fill passes false, so a copy given up is not retried on every page)
--     or when it was only superseded, at most archive_max_requeues() times; otherwise the clip
--     is given up with the copy's reason and keeps its URL;
--   * there is none: it is created, named after this clip.
-- Returns how many clips were queued or swapped.
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
    v_entry   record;
    v_clip    reconciler.archive_clips%rowtype;
    v_copy    reconciler.archive_tasks%rowtype;
    v_owner   reconciler.archive_tasks%rowtype;
    v_done    integer := 0;
    v_reason  text;
    v_stored  text;
begin
    -- Lock order: the project first (reconciler_apply_results holds it already).
    perform 1 from public.projects p where p.id = p_project_id for update;

    for v_entry in
        select e.key as job_id, e.value #>> '{}' as url
          from jsonb_each(p_values) e
         where jsonb_typeof(e.value) = 'string'
           and e.value <> '"failed"'::jsonb and e.value <> '"pending"'::jsonb
           and reconciler.is_trackable(e.key)
         order by e.value #>> '{}', e.key
    loop
        select * into v_clip from reconciler.archive_clips k
         where k.project_id = p_project_id and k.job_id = v_entry.job_id;
        if found and v_clip.source_url = v_entry.url and v_clip.state = 'queued' then
            -- Waiting already; swapped if its object got stored meanwhile.
            select t.archived_url into v_stored from reconciler.archive_tasks t
             where t.source_url = v_entry.url;
            if v_stored is not null then
                v_done := v_done
                          + reconciler.swap_to_object(p_project_id, v_entry.url, v_stored);
            end if;
            continue;
        elsif found and v_clip.source_url = v_entry.url and not p_requeue then
            continue;  -- the back-fill meets a clip it handled before
        end if;

        -- The copy for this URL, locked; a new one is named after this clip, unless this
        -- clip already names another URL's copy (then that one is made room for, or kept).
        select * into v_copy from reconciler.archive_tasks t
         where t.source_url = v_entry.url for update;
        if not found then
            select * into v_owner from reconciler.archive_tasks t
             where t.project_id = p_project_id and t.job_id = v_entry.job_id for update;
            if found and v_owner.state <> 'queued' and v_owner.archived_url is null then
                delete from reconciler.archive_tasks t where t.source_url = v_owner.source_url;
            elsif found then
                v_reason := 'its object path already names the copy of another URL of this'
                            ' clip (' || v_owner.state || ')';
                insert into reconciler.archive_clips as k
                       (project_id, job_id, source_url, state, last_error, finished_at)
                values (p_project_id, v_entry.job_id, v_entry.url, 'given_up', v_reason, now())
                on conflict (project_id, job_id) do update
                   set source_url = excluded.source_url, state = 'given_up',
                       last_error = excluded.last_error, created_at = now(),
                       finished_at = now();
                continue;
            end if;
            -- Another project's transaction may be queueing the same URL right now.
            insert into reconciler.archive_tasks (source_url, project_id, job_id)
            values (v_entry.url, p_project_id, v_entry.job_id)
            on conflict (source_url) do nothing;
            select * into v_copy from reconciler.archive_tasks t
             where t.source_url = v_entry.url for update;
        end if;
        if v_copy.state <> 'queued' and v_copy.archived_url is null then
            if (p_requeue or v_copy.state = 'superseded')
               and v_copy.requeues < reconciler.archive_max_requeues() then
                -- Still named after the clip it was first queued for: that path is its own.
                update reconciler.archive_tasks t
                   set state = 'queued', attempts = 0, requeues = t.requeues + 1,
                       next_attempt_at = now(), lease_owner = null, lease_until = null,
                       last_error = null, created_at = now(), finished_at = null
                 where t.source_url = v_entry.url
                returning * into v_copy;
            else
                v_reason := case
                    when v_copy.requeues >= reconciler.archive_max_requeues()
                    then format('not copied again: this URL was queued %s times already; last'
                                ' error: %s', v_copy.requeues + 1,
                                coalesce(v_copy.last_error, 'none'))
                    else coalesce(v_copy.last_error, 'the copy of this URL was given up') end;
                insert into reconciler.archive_clips as k
                       (project_id, job_id, source_url, state, last_error, finished_at)
                values (p_project_id, v_entry.job_id, v_entry.url, 'given_up',
                        left(v_reason, 1000), now())
                on conflict (project_id, job_id) do update
                   set source_url = excluded.source_url, state = 'given_up',
                       last_error = excluded.last_error, created_at = now(),
                       finished_at = now();
                continue;
            end if;
        end if;

        insert into reconciler.archive_clips as k (project_id, job_id, source_url)
        values (p_project_id, v_entry.job_id, v_entry.url)
        on conflict (project_id, job_id) do update
           set source_url = excluded.source_url, state = 'queued', last_error = null,
               created_at = now(), finished_at = null;
        v_done := v_done + 1;

        if v_copy.archived_url is not null then
            perform reconciler.swap_to_object(p_project_id, v_entry.url, v_copy.archived_url);
        end if;
    end loop;
    return v_done;
end;
$$;


-- Copies stored by the previous files whose clips still wait (a job held by several projects
-- queued one task per clip): swapped now, as a new result for them would be.
do $$
declare
    v_row record;
begin
    for v_row in
        select k.project_id, k.source_url, t.archived_url
          from reconciler.archive_clips k
          join reconciler.archive_tasks t on t.source_url = k.source_url
         where k.state = 'queued' and t.archived_url is not null
         group by k.project_id, k.source_url, t.archived_url
         order by k.project_id
    loop
        perform 1 from public.projects p where p.id = v_row.project_id for update;
        perform reconciler.swap_to_object(v_row.project_id, v_row.source_url, v_row.archived_url);
    end loop;
end;
$$;


-- --- Working the queue -------------------------------------------------------------------------------

-- Claim up to p_limit due copies for p_owner, leased for p_lease_seconds; an expired lease is
-- claimable again. Each claim counts as an attempt; a copy claimed more than p_max_attempts
-- times (it never finished) is given up with its clips. Clips that no longer hold the URL end
-- superseded here; a copy no clip holds any more ends superseded without a download.
-- Returns [{"project_id", "job_id" (the clip naming the object path), "source_url",
-- "attempts"}].
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
        source_url text, project_id uuid, job_id text, attempts integer, current boolean
    ) on commit drop;
    truncate reconciler_archive_claim;

    with due as (
        select t.source_url from reconciler.archive_tasks t
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
         where t.source_url = due.source_url
        returning t.source_url, t.project_id, t.job_id, t.attempts
    )
    insert into reconciler_archive_claim
    select c.source_url, c.project_id, c.job_id, c.attempts, false from claimed c;

    -- Clips that no longer hold the URL (changed, removed, project deleted) stop waiting.
    update reconciler.archive_clips k
       set state = 'superseded', finished_at = now(),
           last_error = 'the clip no longer holds this URL (changed or removed by the app)'
      from reconciler_archive_claim c
     where k.source_url = c.source_url and k.state = 'queued'
       and not exists (select 1 from public.projects p
                        where p.id = k.project_id and jsonb_typeof(p.clips) = 'object'
                          and p.clips -> k.job_id = to_jsonb(k.source_url));
    update reconciler_archive_claim c
       set current = exists (select 1 from reconciler.archive_clips k
                              where k.source_url = c.source_url and k.state = 'queued');

    update reconciler.archive_tasks t
       set state = 'superseded', finished_at = now(), lease_owner = null, lease_until = null,
           last_error = 'no clip holds this URL any more (changed or removed by the app)'
      from reconciler_archive_claim c
     where t.source_url = c.source_url and not c.current;

    update reconciler.archive_tasks t
       set state = 'given_up', finished_at = now(), lease_owner = null, lease_until = null,
           last_error = left(format('gave up after %s attempts that never finished (the process'
                                    ' stopped during each copy); last error: %s',
                                    c.attempts - 1, coalesce(t.last_error, 'none')), 1000)
      from reconciler_archive_claim c
     where t.source_url = c.source_url and c.current
       and c.attempts > greatest(p_max_attempts, 1);
    update reconciler.archive_clips k
       set state = 'given_up', finished_at = now(), last_error = t.last_error
      from reconciler_archive_claim c
      join reconciler.archive_tasks t on t.source_url = c.source_url
     where k.source_url = c.source_url and k.state = 'queued' and c.current
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


-- The object is in Storage. Every clip waiting for this URL that still holds it is swapped to
-- the object, each by one guarded statement under its project's row lock (I1); the others end
-- superseded and are left alone. The copy keeps the original URL, size, checksum and path.
-- Only a copy still queued for this URL and named after (p_project_id, p_job_id) is finished
-- (another replica may have finished it after this one's lease expired).
-- Returns {"state": "archived" (at least one clip swapped) | "superseded" (none) |
-- "not_queued", "swapped": n}.
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
    v_project uuid;
    v_swapped integer := 0;
    v_state   text;
begin
    if p_archived_url is null or p_archived_url !~ '^https?://' then
        raise exception 'archived URL must be an http(s) URL' using errcode = '22023';
    end if;
    if p_object_path is null or p_object_path = '' or p_size_bytes is null or p_size_bytes < 0
       or p_sha256 is null or p_sha256 !~ '^[0-9a-f]{64}$' then
        raise exception 'object path, size and sha256 (hex) are required' using errcode = '22023';
    end if;

    -- Lock order: the waiting clips' projects (id order), then the copy, then the clips.
    perform 1 from public.projects p
     where p.id in (select k.project_id from reconciler.archive_clips k
                     where k.source_url = p_source_url and k.state = 'queued')
     order by p.id
       for update;
    perform 1 from reconciler.archive_tasks t
     where t.source_url = p_source_url and t.state = 'queued'
       and t.project_id = p_project_id and t.job_id = p_job_id
       for update;
    if not found then
        return jsonb_build_object('state', 'not_queued', 'swapped', 0);
    end if;

    for v_project in
        select distinct k.project_id from reconciler.archive_clips k
         where k.source_url = p_source_url and k.state = 'queued'
         order by k.project_id
    loop
        v_swapped := v_swapped
                     + reconciler.swap_to_object(v_project, p_source_url, p_archived_url);
    end loop;
    v_state := case when v_swapped > 0 then 'archived' else 'superseded' end;

    update reconciler.archive_tasks t
       set state = v_state, finished_at = now(), lease_owner = null, lease_until = null,
           size_bytes = p_size_bytes, sha256 = p_sha256, object_path = p_object_path,
           archived_url = p_archived_url,
           last_error = case when v_swapped > 0 then null
                             else 'no clip holds this URL any more (changed or removed by the'
                                  ' app); the object stays in Storage' end
     where t.source_url = p_source_url;
    return jsonb_build_object('state', v_state, 'swapped', v_swapped);
end;
$$;


-- The copy failed. Permanent (source gone, too large, not a video), or the attempts reached
-- p_max_attempts: the copy and every clip waiting for it are given up with the reason, and the
-- clips keep their Runware URL. Otherwise it is due again after p_retry_in_seconds, bounded to
-- a day. Returns {"state": "queued"|"given_up"|"not_queued"}.
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
    v_error    text;
begin
    select t.attempts into v_attempts from reconciler.archive_tasks t
     where t.source_url = p_source_url and t.state = 'queued'
       and t.project_id = p_project_id and t.job_id = p_job_id
       for update;
    if not found then
        return jsonb_build_object('state', 'not_queued');
    end if;
    v_give_up := coalesce(p_permanent, false) or v_attempts >= greatest(p_max_attempts, 1);
    v_error := left(case when v_give_up and not coalesce(p_permanent, false)
                         then format('gave up after %s attempts: %s', v_attempts, p_error)
                         else p_error end, 1000);

    update reconciler.archive_tasks t
       set state = case when v_give_up then 'given_up' else 'queued' end,
           finished_at = case when v_give_up then now() end,
           next_attempt_at = now() + make_interval(
               secs => least(greatest(coalesce(p_retry_in_seconds, 0), 0), 86400)),
           lease_owner = null, lease_until = null, last_error = v_error
     where t.source_url = p_source_url;
    if v_give_up then
        update reconciler.archive_clips k
           set state = 'given_up', finished_at = now(), last_error = v_error
         where k.source_url = p_source_url and k.state = 'queued';
    end if;
    return jsonb_build_object('state', case when v_give_up then 'given_up' else 'queued' end);
end;
$$;


-- --- Operator, purge --------------------------------------------------------------------------------

-- The archive state of every clip of one project that has one: a range scan of the clip
-- rows' primary key (project_id, job_id), bounded by the project's clips (I10).
create or replace function public.reconciler_project_archive_states(p_project_id uuid)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
    select coalesce(jsonb_object_agg(k.job_id, k.state), '{}'::jsonb)
      from reconciler.archive_clips k
     where k.project_id = p_project_id;
$$;


-- Forget finished clip rows and finished copies older than p_older_than_seconds, at most
-- p_limit of each per call (the sweep calls it after reconciler_purge, as for jobs), whether
-- or not their project still exists. A copy is kept while a clip still waits for it; a
-- forgotten stored copy means a later result with its URL is copied again (by then Runware
-- has usually deleted the source: the copy is given up and the clip keeps its URL).
-- Returns {"clips", "copies"} deleted.
create or replace function public.reconciler_purge_archive(
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
    v_clips  integer;
    v_copies integer;
begin
    if p_older_than_seconds is null or p_limit is null or p_limit < 0 then
        raise exception 'age and limit must be given, the limit not negative'
            using errcode = '22023';
    end if;
    delete from reconciler.archive_clips k
     where (k.project_id, k.job_id) in (
               select s.project_id, s.job_id from reconciler.archive_clips s
                where s.state <> 'queued' and s.finished_at < v_cutoff
                order by s.finished_at
                limit p_limit);
    get diagnostics v_clips = row_count;
    delete from reconciler.archive_tasks t
     where t.source_url in (
               select s.source_url from reconciler.archive_tasks s
                where s.state <> 'queued' and s.finished_at < v_cutoff
                  and not exists (select 1 from reconciler.archive_clips k
                                   where k.source_url = s.source_url and k.state = 'queued')
                order by s.finished_at
                limit p_limit);
    get diagnostics v_copies = row_count;
    return jsonb_build_object('clips', v_clips, 'copies', v_copies);
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
