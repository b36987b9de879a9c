-- Clip reconciler: the operator view shows archiving.
--
-- One read: the archive task state of every clip of one project, for the admin page's project
-- view and `reconciler status --project`. A range scan of the archive queue's primary key
-- (project_id, job_id): it costs the project's clips, never the queue (I10). The overview's
-- archive backlog comes from reconciler_archive_stats (20261202100000), so nothing else changes.
-- Idempotent, like every file here.

create or replace function public.reconciler_project_archive_states(p_project_id uuid)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
    select coalesce(jsonb_object_agg(t.job_id, t.state), '{}'::jsonb)
      from reconciler.archive_tasks t
     where t.project_id = p_project_id;
$$;

-- Least privilege (I8): Supabase's default privileges grant EXECUTE on new public functions to
-- anon and authenticated, so revoke explicitly.
revoke all on function public.reconciler_project_archive_states(uuid)
    from public, anon, authenticated;
grant execute on function public.reconciler_project_archive_states(uuid) to service_role;
