-- Clip reconciler: a lean read and write for the check endpoint (issue 18, items 2 and 3).
--
-- A check needs the pending jobs it asks Runware about and the clip counts; it needs the clips
-- themselves only to answer with them. A user's project may hold a 20 MB clips column, which
-- the check used to read whole, then read whole again after its write, then answer with twice.
-- These functions return at most p_max_jobs pending jobs to ask about, the counts, and the
-- clips only while their JSON text is at most p_max_clips_bytes (a null cap: no cap, the
-- backends' check). Jobs beyond p_max_jobs are tracked here, so their scheduled poll covers
-- them. Idempotent, like every file here.

-- The part of a project's clips a check answers with: the counts always, the clips themselves
-- only while their JSON text is at most p_max_clips_bytes (null: always).
create or replace function reconciler.check_view(p_clips jsonb, p_max_clips_bytes integer)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
    v_counts jsonb;
begin
    if jsonb_typeof(p_clips) is distinct from 'object' then
        p_clips := '{}'::jsonb;
    end if;
    -- A video URL is any string but "pending" and "failed" (clips.is_video_url).
    select jsonb_build_object(
               'total', count(*),
               'completed', count(*) filter (where jsonb_typeof(e.value) = 'string'
                                               and e.value not in ('"pending"'::jsonb,
                                                                   '"failed"'::jsonb)),
               'pending', count(*) filter (where e.value = '"pending"'::jsonb),
               'failed', count(*) filter (where e.value = '"failed"'::jsonb))
      into v_counts
      from jsonb_each(p_clips) e;
    return jsonb_build_object(
        'counts', v_counts,
        'clips', case
                     when p_max_clips_bytes is null
                       or octet_length(p_clips::text) <= p_max_clips_bytes then p_clips
                 end);
end;
$$;


-- Read a project for a check: reconcile it (parked results applied, nothing tracked yet, as
-- reconciler_read_project with p_track false), then return
-- {"found", "counts", "clips" (null when over the cap),
--  "asked": [{"job_id", "age_seconds" (null: not tracked yet)}], "more_pending": n}.
-- "asked" holds up to p_max_jobs trackable pending jobs (null: all): those tracked longest
-- first, then those not tracked yet by key; when more are pending, every pending job is
-- tracked now, so the poller covers them.
create or replace function public.reconciler_read_for_check(
    p_project_id uuid,
    p_first_check_delay_seconds double precision,
    p_max_jobs integer,
    p_max_clips_bytes integer
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_result  jsonb;
    v_clips   jsonb;
    v_asked   jsonb;
    v_tracked jsonb;
    v_pending bigint;
    v_more    bigint;
begin
    if p_max_jobs is not null and p_max_jobs < 0 then
        raise exception 'p_max_jobs must be >= 0 or null' using errcode = '22023';
    end if;
    if p_max_clips_bytes is not null and p_max_clips_bytes < 0 then
        raise exception 'p_max_clips_bytes must be >= 0 or null' using errcode = '22023';
    end if;
    v_result := reconciler.reconcile_project(
        p_project_id, p_first_check_delay_seconds, 0, false);
    if not (v_result ->> 'found')::boolean then
        return jsonb_build_object('found', false);
    end if;
    v_clips := v_result -> 'clips';

    -- The project's tracked pending jobs, oldest first: a range scan of its own jobs, each
    -- looked up in the clips (a join of jsonb_each with the jobs was planned as a nested loop
    -- over the project's index: quadratic, 3 s at 5,000 jobs).
    select coalesce(jsonb_agg(jsonb_build_object(
               'job_id', t.job_id,
               'age_seconds', extract(epoch from now() - t.first_seen_at))
               order by t.first_seen_at, t.job_id), '[]'::jsonb),
           coalesce(jsonb_object_agg(t.job_id, true), '{}'::jsonb)
      into v_asked, v_tracked
      from (select j.job_id, j.first_seen_at
              from reconciler.jobs j
             where j.project_id = p_project_id and j.settled_at is null
               and v_clips -> j.job_id = '"pending"'::jsonb
               and reconciler.is_trackable(j.job_id)
             order by j.first_seen_at, j.job_id
             limit p_max_jobs) t;

    select count(*) into v_pending
      from jsonb_each(v_clips) e
     where e.value = '"pending"'::jsonb and reconciler.is_trackable(e.key);

    -- Room left: the jobs not tracked yet, by key. Room is left only when every tracked
    -- pending job is already in v_asked, so v_tracked names them all.
    if p_max_jobs is null or jsonb_array_length(v_asked) < p_max_jobs then
        select v_asked || coalesce(jsonb_agg(jsonb_build_object(
                   'job_id', u.key, 'age_seconds', null) order by u.key), '[]'::jsonb)
          into v_asked
          from (select e.key
                  from jsonb_each(v_clips) e
                 where e.value = '"pending"'::jsonb and reconciler.is_trackable(e.key)
                   and not (v_tracked ? e.key)
                 order by e.key
                 limit p_max_jobs - jsonb_array_length(v_asked)) u;
    end if;
    v_more := v_pending - jsonb_array_length(v_asked);

    if v_more > 0 then
        -- Not asked about in this check: tracked now, so the poller asks in its turn.
        perform reconciler.track_pending(
            p_project_id, v_clips, null, p_first_check_delay_seconds, 0);
    end if;

    return jsonb_build_object('found', true, 'asked', v_asked, 'more_pending', v_more)
           || reconciler.check_view(v_clips, p_max_clips_bytes);
end;
$$;


-- A check's guarded write (reconciler_apply_results), answered leanly: {"found", "changed",
-- "counts", "clips" (null when over the cap), "values": {key: value now} for p_keys}.
create or replace function public.reconciler_apply_check_results(
    p_project_id uuid,
    p_results jsonb,
    p_keys text[],
    p_max_clips_bytes integer
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_outcome jsonb;
    v_clips   jsonb;
begin
    if p_max_clips_bytes is not null and p_max_clips_bytes < 0 then
        raise exception 'p_max_clips_bytes must be >= 0 or null' using errcode = '22023';
    end if;
    v_outcome := public.reconciler_apply_results(p_project_id, p_results);
    if not (v_outcome ->> 'found')::boolean then
        return jsonb_build_object('found', false, 'changed', '{}'::jsonb);
    end if;
    v_clips := v_outcome -> 'clips';
    if jsonb_typeof(v_clips) is distinct from 'object' then
        v_clips := '{}'::jsonb;
    end if;
    return jsonb_build_object(
               'found', true,
               'changed', v_outcome -> 'changed',
               'values', (select coalesce(jsonb_object_agg(k.key, v_clips -> k.key),
                                          '{}'::jsonb)
                            from unnest(coalesce(p_keys, '{}'::text[])) as k(key)
                           where v_clips ? k.key))
           || reconciler.check_view(v_clips, p_max_clips_bytes);
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
