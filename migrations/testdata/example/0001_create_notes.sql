-- Notes, and a count of them.
CREATE TABLE notes (
    id   INTEGER PRIMARY KEY,
    body TEXT NOT NULL
);

CREATE TABLE note_count (n INTEGER NOT NULL);
INSERT INTO note_count VALUES (0);
