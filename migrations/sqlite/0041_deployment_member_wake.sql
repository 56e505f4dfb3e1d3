-- A deployment acts as its user in its project (issue 27): when that user
-- leaves the project (removed, or the user deleted) or becomes a viewer,
-- the deployment must fail even when it is ready and settled. The driver
-- reads only woken or moving deployments (0031), so a membership change
-- wakes the user's deployments in that project, whoever made it, and the
-- next pass sees that the user can no longer act there and fails them.
CREATE TRIGGER project_members_wake_deployments AFTER DELETE ON project_members
BEGIN
    UPDATE deployments SET wake = 1
    WHERE project = OLD.project AND user_name = OLD.user_name AND state NOT IN ('terminated', 'failed') AND wake = 0;
END;
CREATE TRIGGER project_members_role_wakes_deployments AFTER UPDATE OF role ON project_members
    WHEN OLD.role IS NOT NEW.role
BEGIN
    UPDATE deployments SET wake = 1
    WHERE project = NEW.project AND user_name = NEW.user_name AND state NOT IN ('terminated', 'failed') AND wake = 0;
END;
