-- snapcache PostgreSQL store, schema version 2: workers on several hosts.
--
-- The rate-limit state every worker shares (one polite budget for all the hosts behind one
-- address) and the job queue of `snapcache enqueue` / `snapcache worker`. Never edit a
-- released migration; add the next numbered file instead.

-- Token buckets, 429 and firewall pauses: one row per (scope, archive host and pool).
-- scope is '' for a budget shared by every host ([rates] scope = "global", and always for
-- the Save Page Now pools, which the archive counts per account), or the host name
-- ([rates] scope = "host"). Times are the database server's clock (clock_timestamp()), the
-- one clock every host sees. A row is created empty (tokens NULL: "new, starts full") and
-- then always changed under its row lock (SELECT ... FOR UPDATE).
CREATE TABLE snapcache_rate_buckets (
    scope        text COLLATE "C" NOT NULL,
    bucket       text COLLATE "C" NOT NULL CHECK (bucket <> ''),
    tokens       double precision,
    updated      timestamptz,
    paused_until timestamptz NOT NULL DEFAULT 'epoch',
    last_429     timestamptz NOT NULL DEFAULT 'epoch',
    PRIMARY KEY (scope, bucket)
);

-- Save Page Now submissions per UTC day (the archive's daily budget, counted per account).
CREATE TABLE snapcache_save_daily (
    day   date PRIMARY KEY,
    count integer NOT NULL CHECK (count >= 0)
);

-- The job queue: at most one job per resource. A job is pending, leased by a worker
-- (until lease_until, renewed while the worker lives; an expired lease is taken over by
-- another worker, and attempts counts every lease), or finished: done (a final outcome, or
-- fresh meanwhile) or failed (an error, or its workers were lost too often). Enqueueing a
-- resource whose job is finished starts it again; one still pending or leased is left as
-- it is. seq orders the queue (first in, first out).
CREATE SEQUENCE snapcache_jobs_seq;
CREATE TABLE snapcache_jobs (
    resource_id       text COLLATE "C" PRIMARY KEY CHECK (resource_id ~ '^[0-9a-f]{16}$'),
    seq               bigint NOT NULL DEFAULT nextval('snapcache_jobs_seq'),
    url               text NOT NULL CHECK (url <> ''),
    at_timestamp      text,
    stable_id         text COLLATE "C",
    forced            boolean NOT NULL DEFAULT false,
    line              integer,
    state             text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'leased', 'done', 'failed')),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    enqueued_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    leased_by         text,
    lease_until       timestamptz,
    finished_at       timestamptz,
    outcome           text,
    capture_timestamp text,
    error             text,
    CHECK ((state = 'leased') = (lease_until IS NOT NULL))
);
ALTER SEQUENCE snapcache_jobs_seq OWNED BY snapcache_jobs.seq;
-- What workers claim: live jobs in queue order (the partial index stays small however
-- many finished jobs are kept).
CREATE INDEX snapcache_jobs_live_idx ON snapcache_jobs (seq) WHERE state IN ('pending', 'leased');
CREATE INDEX snapcache_jobs_state_idx ON snapcache_jobs (state);
