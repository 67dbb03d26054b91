-- Keep note_count up to date; SQLite's trigger body holds its own ';'.
CREATE TRIGGER notes_count AFTER INSERT ON notes BEGIN
    UPDATE note_count SET n = n + 1;
END;
