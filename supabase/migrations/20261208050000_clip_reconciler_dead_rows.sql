-- Clip reconciler: a long transaction does not stall the poller (issue 19, item 5).
--
-- Applied after 20261208030000_clip_reconciler_archive_once.sql (earlier files are never edited).
-- Idempotent, like them.
--
-- Why
--   An app transaction left open holds back vacuum: the job rows the reconciler settles and
--   purges, and every earlier version of a job it claimed and rescheduled, stay in the table
--   as dead rows, and their entries stay in jobs_due_idx (the entries of due versions are due
--   too: no index key tells a claimed version from a live due one, only the heap does).
--   The claim read the due rows through jobs_due_idx twice (once to rank them, once more to
--   lock them), and with statistics taken before the churn the planner chose a plain index
--   scan, which fetches one heap row per dead entry. Measured with 1,000 due jobs and 100,000
--   jobs churned under an open transaction: 220,000 buffers and 0.2-5 s (over several runs)
--   per claim of 500, against 11,000 buffers and 15 ms without the dead rows.
--
-- Now
--   The due rows are read once, by a bitmap scan (the index entries are cheap: over a thousand
--   to a page; each heap page is then read once, however many dead versions it holds), ranked,
--   and the ones picked are locked through their row address (a TID scan: only they are read
--   again). Plain index scans, sequential scans, hash and merge joins and JIT are off inside
--   the function, so the plan does not depend on statistics taken before a churn (a
--   sequential scan would read every settled row too; a hash join would read the due rows a
--   second time; JIT compiled for 30-50 ms because the estimates were large). Same claim, same
--   answer, same signature. Measured as above: 16,900 buffers after the churn against 10,800
--   before; a whole poll round 1.7x the buffers (bench W13: 38,700 against 23,200).
--
-- What stays: each dead version in the due range still costs its share of a heap page (about
-- one page per 60 dead versions) until vacuum can remove it. The outbox
-- (reconciler.changed_projects) is unchanged: its drain reads the heap from the start and walks
-- the dead rows of earlier drains (about 640 pages per 100,000), small beside the work of a
-- drain (bench W13; README "Operating it", long transactions).


-- --- Polling ----------------------------------------------------------------------------------------

-- As in 20261208000000_clip_reconciler_fair_polls.sql: up to p_limit due jobs, fairly across
-- projects (turn by turn, at most p_per_project from one project; null: no cap but p_limit),
-- expired leases claimable again, SKIP LOCKED so replicas never wait (I6), the due conditions
-- checked again on the locked row. A row another replica changed since the due rows were read
-- is checked again in its newest version (FOR UPDATE), and claimed only if still due and free.
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
set enable_indexscan = off
set enable_seqscan = off
set enable_hashjoin = off
set enable_mergejoin = off
set jit = off
as $$
    with due as materialized (
        select j.ctid as row_id, j.next_check_at,
               row_number() over (partition by j.project_id
                                  order by j.next_check_at, j.job_id collate "C") as turn
          from reconciler.jobs j
         where j.settled_at is null
           and j.next_check_at <= now()
           and (j.lease_expires_at is null or j.lease_expires_at <= now())
    ), picked as (
        select j.project_id, j.job_id
          from due d
          join reconciler.jobs j on j.ctid = d.row_id
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
