-- Logs and their compressed chunks (see the crate documentation, "Log format").

CREATE TABLE logs (
    id            INTEGER PRIMARY KEY,
    step          INTEGER NOT NULL REFERENCES steps (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    kind          TEXT    NOT NULL CHECK (kind IN ('stdio', 'text')),
    -- Bytes and lines stored so far (committed chunks only), for paging.
    byte_len      INTEGER NOT NULL DEFAULT 0,
    line_count    INTEGER NOT NULL DEFAULT 0,
    chunk_count   INTEGER NOT NULL DEFAULT 0,
    -- The cap was reached: the marker line is stored, later output only counted.
    truncated     INTEGER NOT NULL DEFAULT 0,
    dropped_bytes INTEGER NOT NULL DEFAULT 0,
    finished      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (step, name)
);
-- Logs left open by a stopped master, closed at the next start.
CREATE INDEX logs_unfinished ON logs (id) WHERE finished = FALSE;

CREATE TABLE log_chunks (
    log        INTEGER NOT NULL REFERENCES logs (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    -- Offset of the chunk's first byte in the stored log.
    first_byte INTEGER NOT NULL,
    -- Number of the first line that starts in this chunk (or would start next, when the
    -- chunk is all the middle of one long line). 0-based.
    first_line INTEGER NOT NULL,
    -- 1 when the chunk's first byte continues a line begun in an earlier chunk.
    cont       INTEGER NOT NULL,
    raw_len    INTEGER NOT NULL,
    -- zlib-compressed bytes.
    data       BLOB    NOT NULL,
    PRIMARY KEY (log, seq)
);
-- Byte-range reads find their first chunk by offset, line pages by line number; the data
-- column is never read to locate a chunk.
CREATE INDEX log_chunks_by_byte ON log_chunks (log, first_byte);
CREATE INDEX log_chunks_by_line ON log_chunks (log, first_line, seq);
