-- The test app's own row-level security, as a typical Supabase app has it: a signed-in user
-- sees only their own projects. (Superusers and service_role bypass RLS.)
alter table public.projects enable row level security;
drop policy if exists projects_owner_reads on public.projects;
create policy projects_owner_reads on public.projects
    for select to authenticated
    using (user_id = auth.uid());
