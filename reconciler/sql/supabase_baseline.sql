-- What every Supabase project already has, recreated on plain PostgreSQL for the demo, the
-- tests and the benchmarks: the API roles, their default privileges, the realtime publication,
-- auth.uid(), and the app's own `projects` table. Never applied to a real Supabase project.

do $$
begin
    if not exists (select from pg_roles where rolname = 'anon') then
        create role anon nologin noinherit;
    end if;
    if not exists (select from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin noinherit;
    end if;
    if not exists (select from pg_roles where rolname = 'service_role') then
        create role service_role nologin noinherit bypassrls;
    end if;
    if not exists (select from pg_publication where pubname = 'supabase_realtime') then
        create publication supabase_realtime;
    end if;
end;
$$;

grant usage on schema public to anon, authenticated, service_role;
-- Supabase grants everything in public to the API roles by default; the migration must cope.
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;
create or replace function auth.uid() returns uuid
language sql stable
as $$
    select nullif(current_setting('request.jwt.claims', true)::jsonb ->> 'sub', '')::uuid
$$;

-- The app's table. Real apps have more columns; the reconciler touches only `clips`.
create table if not exists public.projects (
    id         uuid primary key default gen_random_uuid(),
    user_id    uuid,
    name       text not null default '',
    clips      jsonb not null default '{}'::jsonb,
    updated_at timestamptz not null default now()
);
