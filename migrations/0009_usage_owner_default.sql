-- A boot recorded without its owner (by a hub from before 0008, still
-- running while a newer one is rolled out) takes its project's owner, so no
-- heartbeat is refused meanwhile.
CREATE FUNCTION vm_boots_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.owner_id IS NULL THEN
        SELECT owner_id INTO NEW.owner_id FROM projects WHERE id = NEW.project_id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER vm_boots_owner BEFORE INSERT ON vm_boots FOR EACH ROW EXECUTE FUNCTION vm_boots_owner();
