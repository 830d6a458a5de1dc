-- smsctx schema, version 4: the security epoch, a counter that every write to a table the
-- caller's principal is built from (users, units, teams, roles, their privileges, assignments and
-- memberships) increments in the same transaction, through triggers. A node caches principals
-- under the epoch it read before building them, and reuses one only while the epoch is unchanged,
-- so a change made through any node applies to the next request on every node.

CREATE TABLE smsctx_security_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL
);
INSERT INTO smsctx_security_epoch (id, epoch) VALUES (1, 0);

CREATE TRIGGER smsctx_epoch_businessunit_i AFTER INSERT ON businessunit
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_businessunit_u AFTER UPDATE ON businessunit
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_businessunit_d AFTER DELETE ON businessunit
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_systemuser_i AFTER INSERT ON systemuser
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_systemuser_u AFTER UPDATE ON systemuser
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_systemuser_d AFTER DELETE ON systemuser
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_team_i AFTER INSERT ON team
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_team_u AFTER UPDATE ON team
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_team_d AFTER DELETE ON team
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_role_i AFTER INSERT ON role
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_role_u AFTER UPDATE ON role
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_role_d AFTER DELETE ON role
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_roleprivileges_i AFTER INSERT ON roleprivileges
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_roleprivileges_u AFTER UPDATE ON roleprivileges
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_roleprivileges_d AFTER DELETE ON roleprivileges
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_systemuserroles_i AFTER INSERT ON systemuserroles
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_systemuserroles_u AFTER UPDATE ON systemuserroles
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_systemuserroles_d AFTER DELETE ON systemuserroles
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_teamroles_i AFTER INSERT ON teamroles
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_teamroles_u AFTER UPDATE ON teamroles
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_teamroles_d AFTER DELETE ON teamroles
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_teammembership_i AFTER INSERT ON teammembership
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_teammembership_u AFTER UPDATE ON teammembership
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER smsctx_epoch_teammembership_d AFTER DELETE ON teammembership
BEGIN UPDATE smsctx_security_epoch SET epoch = epoch + 1 WHERE id = 1; END;
