-- A job's hook columns follow its state (0002): 'due' when it ends with hooks configured,
-- cleared on any other change. The trigger rewrote the row on every change of state, even
-- when both columns were already NULL and stay NULL (no hooks, or a job that is not ending):
-- one extra UPDATE for each claim and each end, thousands a second with many small archives.
-- It now fires only when it changes something; what it sets is unchanged.
DROP TRIGGER jobs_hook_becomes_due;
CREATE TRIGGER jobs_hook_becomes_due AFTER UPDATE OF state ON jobs
WHEN NEW.state IS NOT OLD.state
  AND (NEW.hook_state IS NOT NULL OR NEW.hook_finished_at IS NOT NULL
       OR (NEW.state IN ('succeeded', 'failed', 'cancelled') AND EXISTS (SELECT 1 FROM settings WHERE key = 'hooks')))
BEGIN
  UPDATE jobs SET
    hook_state = CASE WHEN NEW.state IN ('succeeded', 'failed', 'cancelled')
                       AND EXISTS (SELECT 1 FROM settings WHERE key = 'hooks') THEN 'due' END,
    hook_finished_at = NULL
  WHERE id = NEW.id;
END;
