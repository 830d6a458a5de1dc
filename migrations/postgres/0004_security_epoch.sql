-- smsctx schema, version 4: the security epoch, a counter that every write to a table the
-- caller's principal is built from (users, units, teams, roles, their privileges, assignments and
-- memberships) increments in the same transaction, through triggers. A node caches principals
-- under the epoch it read before building them, and reuses one only while the epoch is unchanged,
-- so a change made through any node applies to the next request on every node.

CREATE TABLE smsctx_security_epoch (
    id    integer PRIMARY KEY CHECK (id = 1),
    epoch bigint NOT NULL
);
INSERT INTO smsctx_security_epoch (id, epoch) VALUES (1, 0);

CREATE FUNCTION smsctx_bump_security_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER smsctx_epoch_businessunit AFTER INSERT OR UPDATE OR DELETE ON businessunit
    FOR EACH STATEMENT EXECUTE FUNCTION smsctx_bump_security_epoch();
CREATE TRIGGER smsctx_epoch_systemuser AFTER INSERT OR UPDATE OR DELETE ON systemuser
    FOR EACH STATEMENT EXECUTE FUNCTION smsctx_bump_security_epoch();
CREATE TRIGGER smsctx_epoch_team AFTER INSERT OR UPDATE OR DELETE ON team
    FOR EACH STATEMENT EXECUTE FUNCTION smsctx_bump_security_epoch();
CREATE TRIGGER smsctx_epoch_role AFTER INSERT OR UPDATE OR DELETE ON role
    FOR EACH STATEMENT EXECUTE FUNCTION smsctx_bump_security_epoch();
CREATE TRIGGER smsctx_epoch_roleprivileges AFTER INSERT OR UPDATE OR DELETE ON roleprivileges
    FOR EACH STATEMENT EXECUTE FUNCTION smsctx_bump_security_epoch();
CREATE TRIGGER smsctx_epoch_systemuserroles AFTER INSERT OR UPDATE OR DELETE ON systemuserroles
    FOR EACH STATEMENT EXECUTE FUNCTION smsctx_bump_security_epoch();
CREATE TRIGGER smsctx_epoch_teamroles AFTER INSERT OR UPDATE OR DELETE ON teamroles
    FOR EACH STATEMENT EXECUTE FUNCTION smsctx_bump_security_epoch();
CREATE TRIGGER smsctx_epoch_teammembership AFTER INSERT OR UPDATE OR DELETE ON teammembership
    FOR EACH STATEMENT EXECUTE FUNCTION smsctx_bump_security_epoch();
