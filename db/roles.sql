-- A read-only `analyst` role for the SQL surface (docs/sql.md). PostgreSQL only.
--
-- Run it in each indexer database, after `init-db`, as the role that owns the schema and runs the
-- migrations (its future tables and views are what the default privileges below cover):
--
--   psql "postgresql://OWNER@HOST/DB" -v ON_ERROR_STOP=1 -f db/roles.sql
--
-- Safe to run again, and concurrently. Roles are cluster-wide: `analyst` is created once (NOLOGIN, a
-- group) and every database run through this script grants it read access; dropping a database drops
-- its grants with it. People log in as their own roles and inherit it:
--
--   CREATE ROLE alice LOGIN PASSWORD '...' IN ROLE analyst;
--
-- The service's leadership is a row of `leader_leases` (README, "The service"): `analyst` reads it (who
-- leads, the last tick) but cannot write or lock it (row locks need UPDATE), so a reader can neither take
-- the lead nor keep the service from leading. Only the schema owner, which the service connects as, can.
--
-- The script has no psql meta-commands, so any client can send it as one batch.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'analyst') THEN
        BEGIN
            CREATE ROLE analyst NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created by a concurrent run of this script
        END;
    END IF;
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO analyst', current_database());
END
$$;

GRANT USAGE ON SCHEMA public TO analyst;

-- Read, and nothing else, on every table and view that exists now (the analyst views of 0003 and the
-- desk's client views of 0008, `client_margin` and `client_collateral`, included) ...
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM analyst;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO analyst;

-- ... and on those the schema owner creates later (new migrations, new views).
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO analyst;

-- PostgreSQL before 15 lets every role create objects in `public`; 15 and later already do not.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM analyst;
