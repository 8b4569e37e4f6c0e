-- Changes from pollers and webhooks, the changes each request carries, pollers' last seen
-- revisions, and tree-stable timers that must survive a restart.

CREATE TABLE changes (
    id           INTEGER PRIMARY KEY,
    repository   TEXT    NOT NULL,
    branch       TEXT    NOT NULL DEFAULT '',
    revision     TEXT    NOT NULL,
    author       TEXT    NOT NULL DEFAULT '',
    committed_at INTEGER,
    comments     TEXT    NOT NULL DEFAULT '',
    project      TEXT    NOT NULL DEFAULT '',
    category     TEXT    NOT NULL DEFAULT '',
    -- The poller (its work directory) or webhook that reported the change.
    source       TEXT    NOT NULL DEFAULT '',
    received_at  INTEGER NOT NULL
);
CREATE INDEX changes_by_branch ON changes (repository, branch, id);

CREATE TABLE change_files (
    change   INTEGER NOT NULL REFERENCES changes (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    path     TEXT    NOT NULL,
    PRIMARY KEY (change, position)
);

CREATE TABLE build_request_changes (
    request INTEGER NOT NULL REFERENCES build_requests (id) ON DELETE CASCADE,
    change  INTEGER NOT NULL REFERENCES changes (id),
    PRIMARY KEY (request, change)
);
CREATE INDEX build_request_changes_by_change ON build_request_changes (change);

CREATE TABLE poller_state (
    poller     TEXT    NOT NULL,
    branch     TEXT    NOT NULL,
    revision   TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (poller, branch)
);

CREATE TABLE scheduler_timers (
    scheduler TEXT    PRIMARY KEY,
    fires_at  INTEGER NOT NULL
);

CREATE TABLE scheduler_timer_changes (
    scheduler TEXT    NOT NULL REFERENCES scheduler_timers (scheduler) ON DELETE CASCADE,
    change    INTEGER NOT NULL REFERENCES changes (id),
    PRIMARY KEY (scheduler, change)
);
