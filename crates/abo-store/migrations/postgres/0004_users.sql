-- Web users (argon2 PHC hashes only, never a password) and master-wide settings; the
-- PostgreSQL version of migrations/sqlite/0004_users.sql. Names sort byte by byte, as in
-- SQLite, whatever the database's collation.

CREATE TABLE users (
    name          TEXT    COLLATE "C" PRIMARY KEY,
    password_hash TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL
);

CREATE TABLE settings (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);
