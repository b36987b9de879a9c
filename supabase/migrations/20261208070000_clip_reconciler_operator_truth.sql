-- Clip reconciler: the operator overview's "parked results" counts only results still parked.
--
-- Applied after 20261208060000_clip_reconciler_bounded_resync.sql (earlier files are never
-- edited). Idempotent, like them.
--
-- Every webhook result is kept in reconciler.parked_results until retention (the first result
-- wins, for every project that later holds the job), so counting the table counted every
-- applied webhook too: `reconciler status` and /admin showed dozens parked when none was.
-- A result is parked while no project holds its job: no row of reconciler.jobs names it
-- (a project that writes the job gets a row when it is reconciled, and the parked result is
-- applied then). The anti-join walks jobs_job_idx; parked_results is bounded by retention.
--
-- reconciler_failure_reasons (new) gives a check's answer the reason of a clip that had failed
-- before the check, so `reconciler check`, its JSON and the demo name it as /admin does.
-- reconciler_operator_find (new) lets /admin find a project by its id or by a job id.
-- reconciler_make_due_now (new) lets `reconciler sweep --now` check every pending job at once.

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
        'parked_results', (
            select count(*) from reconciler.parked_results pr
             where not exists (select 1 from reconciler.jobs j where j.job_id = pr.job_id)));
end;
$$;


-- Why each of a project's failed clips failed, for a check's answer: the reason kept on the
-- job's tracking row (Runware's, or ours: "gave up after …"), else the webhook's reason kept
-- with its result. At most 1000 jobs per call; a job with no reason recorded is left out.
create or replace function public.reconciler_failure_reasons(p_project_id uuid, p_job_ids text[])
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
    select coalesce(jsonb_object_agg(r.job_id, r.reason), '{}'::jsonb)
      from (select k.job_id, coalesce(j.last_error, pr.reason) as reason
              from (select distinct u.job_id
                      from unnest(coalesce(p_job_ids, '{}'::text[])) u(job_id)
                     limit 1000) k
              left join reconciler.jobs j
                on j.project_id = p_project_id and j.job_id = k.job_id
              left join reconciler.parked_results pr on pr.job_id = k.job_id) r
     where r.reason is not null;
$$;

-- The admin page's search: whether `p_id` is a project, and which projects hold it as a job
-- (Runware task ids are UUIDs too). Reads projects by primary key and our jobs by job_id
-- (jobs_job_idx): a job is found while its tracking row is kept (until retention after it
-- settled), never by a scan of projects' clips (I10). At most 100 projects.
create or replace function public.reconciler_operator_find(p_id uuid)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
    select jsonb_build_object(
               'project', exists (select 1 from public.projects p where p.id = p_id),
               'job_projects', coalesce((
                   select jsonb_agg(h.project_id order by h.project_id)
                     from (select distinct j.project_id from reconciler.jobs j
                            where j.job_id = p_id::text
                            order by j.project_id
                            limit 100) h), '[]'::jsonb));
$$;

-- `reconciler sweep --now`: up to p_limit unsettled jobs not yet due become due now (the
-- soonest first, on jobs_due_idx), so the sweep's poll rounds check every pending job at once
-- rather than only those whose backoff had run out. The caller repeats until it returns 0.
-- Rows another transaction holds are skipped (that one is checking or writing them already).
create or replace function public.reconciler_make_due_now(p_limit integer)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_count integer;
begin
    update reconciler.jobs j
       set next_check_at = now()
      from (select s.project_id, s.job_id
              from reconciler.jobs s
             where s.settled_at is null and s.next_check_at > now()
             order by s.next_check_at
             limit least(greatest(coalesce(p_limit, 0), 0), 10000)
               for update skip locked) picked
     where j.project_id = picked.project_id and j.job_id = picked.job_id;
    get diagnostics v_count = row_count;
    return v_count;
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
