-- Indexes the web status pages need to stay fast with a long history (100,000 builds); the
-- PostgreSQL version of migrations/sqlite/0005_web_indexes.sql.

-- The latest finished build of a builder (matrix, badges) is the first row of this index
-- from the end, whatever number of builds is still running.
CREATE INDEX builds_finished_by_builder ON builds (builder, id) WHERE finished_at IS NOT NULL;
-- The live-update stamp counts running steps; the index is as small as what runs.
CREATE INDEX steps_unfinished ON steps (id) WHERE finished_at IS NULL;
-- The changes page filtered by repository pages by id within a repository.
CREATE INDEX changes_by_repository ON changes (repository, id);
