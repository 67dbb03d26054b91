-- PostgreSQL has arrays: a variant of version 2 for Postgres mode only.
ALTER TABLE notes ADD COLUMN tags TEXT[] NOT NULL DEFAULT '{}';
CREATE INDEX notes_tags ON notes USING GIN (tags);
