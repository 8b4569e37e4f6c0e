-- Build requests, builders, builds and steps.
-- Portable SQL where it costs nothing: ids are `INTEGER PRIMARY KEY` (BIGINT GENERATED ...
-- IDENTITY in PostgreSQL), times are integer milliseconds since the epoch, JSON is TEXT,
-- booleans are 0/1 integers.

CREATE TABLE build_requests (
    id           INTEGER PRIMARY KEY,
    builder      TEXT    NOT NULL,
    properties   TEXT    NOT NULL DEFAULT '{}',
    reason       TEXT    NOT NULL DEFAULT '',
    submitted_at INTEGER NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'queued'
                 CHECK (state IN ('queued', 'claimed', 'complete')),
    -- The lease of the dispatch that holds the request (NULL unless claimed or complete).
    claimed_by   INTEGER,
    claimed_at   INTEGER,
    -- Set when the request rides along with another request's build (Buildbot's collapsing).
    merged_into  INTEGER REFERENCES build_requests (id),
    completed_at INTEGER,
    result       TEXT
);
-- The dispatcher asks for queued requests in submission order; the partial index stays as
-- small as the queue however long the history grows.
CREATE INDEX build_requests_queued ON build_requests (id) WHERE state = 'queued';
-- Queue length per builder (builders page) without walking every request ever made.
CREATE INDEX build_requests_queued_by_builder ON build_requests (builder) WHERE state = 'queued';
CREATE INDEX build_requests_claimed ON build_requests (id) WHERE state = 'claimed';
CREATE INDEX build_requests_by_builder ON build_requests (builder, id);
CREATE INDEX build_requests_by_merged ON build_requests (merged_into) WHERE merged_into IS NOT NULL;

-- One row per builder that ever had a build: its next build number (taken and bumped in the
-- transaction that creates the build, so numbers never repeat even with several writers)
-- and its latest build, so the builders page reads one row per builder, not the history.
CREATE TABLE builders (
    name        TEXT    PRIMARY KEY,
    next_number INTEGER NOT NULL DEFAULT 1,
    last_build  INTEGER
);

CREATE TABLE builds (
    id           INTEGER PRIMARY KEY,
    request      INTEGER NOT NULL REFERENCES build_requests (id),
    builder      TEXT    NOT NULL,
    number       INTEGER NOT NULL,
    worker       TEXT    NOT NULL,
    lease        INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    result       TEXT,
    state_string TEXT    NOT NULL DEFAULT '',
    properties   TEXT    NOT NULL DEFAULT '{}',
    UNIQUE (builder, number)
);
-- Builder history pages paginate by id within a builder.
CREATE INDEX builds_by_builder ON builds (builder, id);
CREATE INDEX builds_by_request ON builds (request);
CREATE INDEX builds_unfinished ON builds (id) WHERE finished_at IS NULL;

CREATE TABLE steps (
    id          INTEGER PRIMARY KEY,
    build       INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    number      INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    result      TEXT,
    description TEXT    NOT NULL DEFAULT '',
    hidden      INTEGER NOT NULL DEFAULT 0,
    -- JSON list of {"name": ..., "url": ...}.
    urls        TEXT    NOT NULL DEFAULT '[]',
    UNIQUE (build, number)
);
