ALTER TABLE notes ADD COLUMN tags TEXT NOT NULL DEFAULT '';
CREATE INDEX notes_tags ON notes (tags);
