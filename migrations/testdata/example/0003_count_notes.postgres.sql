-- Keep note_count up to date; the function body is dollar-quoted.
CREATE FUNCTION count_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE note_count SET n = n + 1;
    RETURN NEW;
END;
$$;

CREATE TRIGGER notes_count AFTER INSERT ON notes
    FOR EACH ROW EXECUTE FUNCTION count_note();
