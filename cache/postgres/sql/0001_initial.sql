-- snapcache PostgreSQL store, schema version 1.
--
-- Applied by snapcache.cache.postgres.schema inside one transaction, under an advisory lock,
-- with the version recorded in snapcache_migrations; never edit a released migration, add
-- the next numbered file instead. Tables are created in the connection's current schema
-- (the first existing schema on its search_path).
--
-- Keys are compared bytewise (COLLATE "C") so that resource IDs sort as the diskcache store
-- sorts them and no locale folds two URLs together. URLs are indexed by the SHA-256 of their
-- UTF-8 bytes, computed by the client: a btree entry is limited to about 2.7 kB and cited
-- URLs can be longer.

-- Identity of a resource: its stable ID (unique by constraint, so two hosts can never bind
-- the same one twice), its current URL and creation time. Written before the first record,
-- and the row every write locks (SELECT ... FOR UPDATE) to serialise writers per resource.
CREATE TABLE snapcache_resources (
    resource_id text COLLATE "C" PRIMARY KEY CHECK (resource_id ~ '^[0-9a-f]{16}$'),
    stable_id   text COLLATE "C" NOT NULL CHECK (stable_id ~ '^(sid_)?[A-Za-z0-9]{10}$'),
    url         text NOT NULL CHECK (url <> ''),
    created_at  text,
    CONSTRAINT snapcache_resources_stable_id_key UNIQUE (stable_id)
);

-- Every URL (current or alias) bound to a resource. A binding is never removed.
CREATE TABLE snapcache_urls (
    url_sha256  bytea PRIMARY KEY CHECK (octet_length(url_sha256) = 32),
    url         text NOT NULL,
    resource_id text COLLATE "C" NOT NULL
        REFERENCES snapcache_resources (resource_id) ON DELETE CASCADE
);
CREATE INDEX snapcache_urls_resource_id_idx ON snapcache_urls (resource_id);

-- Earlier URLs of a resource, oldest first (seq order).
CREATE TABLE snapcache_aliases (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resource_id text COLLATE "C" NOT NULL
        REFERENCES snapcache_resources (resource_id) ON DELETE CASCADE,
    url         text NOT NULL
);
CREATE INDEX snapcache_aliases_resource_id_idx ON snapcache_aliases (resource_id, seq);

-- The record, Record.to_json() as jsonb; the columns filtered and counted on are derived
-- from it so they can never disagree with it.
CREATE TABLE snapcache_records (
    resource_id  text COLLATE "C" PRIMARY KEY
        REFERENCES snapcache_resources (resource_id) ON DELETE CASCADE,
    record       jsonb NOT NULL CHECK (jsonb_typeof(record) = 'object'),
    status       text GENERATED ALWAYS AS (record ->> 'status') STORED,
    last_outcome text GENERATED ALWAYS AS (record ->> 'last_outcome') STORED,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX snapcache_records_status_idx ON snapcache_records (status);
CREATE INDEX snapcache_records_last_outcome_idx ON snapcache_records (last_outcome);

-- The full extracted text of the stored capture.
CREATE TABLE snapcache_texts (
    resource_id text COLLATE "C" PRIMARY KEY
        REFERENCES snapcache_resources (resource_id) ON DELETE CASCADE,
    body        text NOT NULL
);

-- Attempt summaries, oldest first (seq order); the writer keeps the newest history_limit.
CREATE TABLE snapcache_history (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resource_id text COLLATE "C" NOT NULL
        REFERENCES snapcache_resources (resource_id) ON DELETE CASCADE,
    entry       jsonb NOT NULL CHECK (jsonb_typeof(entry) = 'object')
);
CREATE INDEX snapcache_history_resource_id_idx ON snapcache_history (resource_id, seq);
