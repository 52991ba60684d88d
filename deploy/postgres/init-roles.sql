-- Run once by the postgres image when its data directory is new (docker-compose.yml mounts it in
-- /docker-entrypoint-initdb.d), as the cluster's superuser, in the onramp database.
--
-- onramp_owner owns the schema and runs the migrations (the migrate service only).
-- onramp_app is what the web, worker and beat connect as: it owns nothing, so it cannot ALTER a table,
-- switch a trigger off, or TRUNCATE; it is not a superuser, so it cannot set session_replication_role.
-- Its rights are the default privileges below; migration 0004_sec_… then takes UPDATE and DELETE on the
-- audit table back from every role but the owner. Passwords come from the environment (db.env, .env).
\getenv owner_password ONRAMP_OWNER_DB_PASSWORD
\getenv app_password ONRAMP_APP_DB_PASSWORD

CREATE ROLE onramp_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE onramp_app LOGIN PASSWORD :'app_password' NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;

REVOKE ALL ON DATABASE :"DBNAME" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"DBNAME" TO onramp_owner, onramp_app;
ALTER SCHEMA public OWNER TO onramp_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO onramp_app;

-- The audit search's trigram index (migration 0003) needs this extension; made here by the superuser,
-- so the owner needs no CREATE right on the database.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Rows only: never TRUNCATE, TRIGGER or REFERENCES.
ALTER DEFAULT PRIVILEGES FOR ROLE onramp_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO onramp_app;
ALTER DEFAULT PRIVILEGES FOR ROLE onramp_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO onramp_app;
