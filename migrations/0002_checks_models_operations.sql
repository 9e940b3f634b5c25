-- modeldrop job database, schema version 2: per-job settings and results of archive checks,
-- in-doubt reconciliation, model registration and the operations features (per-watch tokens,
-- ready markers, completion hooks). Every column is nullable or defaulted, so a version 1
-- database upgrades in place with its jobs intact. Never edited after release.

-- The archive check a job gets: 'archive', 'adapter' or 'none' (NULL, for jobs queued by
-- version 1, means the default 'archive').
ALTER TABLE jobs ADD COLUMN validate TEXT
  CHECK (validate IS NULL OR validate IN ('archive', 'adapter', 'none'));

-- The token file this job's requests use (a watch's token_file, or `modeldrop add
-- --token-file`); NULL: the global token lookup.
ALTER TABLE jobs ADD COLUMN token_file TEXT;

-- The ready marker that queued this job (moved with its archive, or removed when the job ends).
ALTER TABLE jobs ADD COLUMN ready_marker_path TEXT;

-- The sidecar `<archive name>.yaml` read when the job was queued (moved with its archive).
ALTER TABLE jobs ADD COLUMN sidecar_path TEXT;

-- Model registration: what to register (NULL model_name: the job registers nothing) and how
-- far it got. model_status is 'registering', 'validating', 'active', 'error' or the API's word.
ALTER TABLE jobs ADD COLUMN model_name TEXT;
ALTER TABLE jobs ADD COLUMN model_base_model TEXT;
ALTER TABLE jobs ADD COLUMN model_description TEXT;
ALTER TABLE jobs ADD COLUMN model_status TEXT;
ALTER TABLE jobs ADD COLUMN model_status_reason TEXT;
ALTER TABLE jobs ADD COLUMN model_checked_at TEXT;
-- When registration started (polling gives up 24 h later) and when it looks next.
ALTER TABLE jobs ADD COLUMN model_started_at TEXT;
ALTER TABLE jobs ADD COLUMN model_next_check_at TEXT;

-- Completion hook: 'due' once the job's final state is committed and a hook is configured,
-- 'done' once the hook finished (whatever its exit status). A 'due' hook runs at the next start.
ALTER TABLE jobs ADD COLUMN hook_state TEXT CHECK (hook_state IS NULL OR hook_state IN ('due', 'done'));
ALTER TABLE jobs ADD COLUMN hook_finished_at TEXT;

-- An attempt is in doubt when the server may have stored the file although no usable answer
-- was recorded (the whole body written, then a reset, a timeout or a malformed 2xx). Attempts
-- a crash left open are in doubt too; they are recognised by having no outcome at startup.
ALTER TABLE attempts ADD COLUMN in_doubt INTEGER NOT NULL DEFAULT 0 CHECK (in_doubt IN (0, 1));

-- Due hooks at startup, without a scan of every job.
CREATE INDEX jobs_hook_due ON jobs (id) WHERE hook_state = 'due';
-- Registrations still in progress, for the poller after a restart.
CREATE INDEX jobs_model_in_progress ON jobs (model_next_check_at)
  WHERE model_status IN ('registering', 'validating');

-- Which file an attempt sent ("device:inode:size:mtime_ns" of the job when the attempt began):
-- in-doubt reconciliation adopts only a copy of the file the job names now, never one left by
-- an attempt that sent an earlier version.
ALTER TABLE attempts ADD COLUMN sent_identity TEXT;

-- A completion hook becomes due in the very transaction that ends its job, so a crash between
-- the two cannot lose it; only while the daemon has hooks configured (settings key 'hooks').
-- A job that leaves its final state again (`modeldrop retry`) owes no hook until it ends again.
CREATE TRIGGER jobs_hook_becomes_due AFTER UPDATE OF state ON jobs
WHEN NEW.state IS NOT OLD.state
BEGIN
  UPDATE jobs SET
    hook_state = CASE WHEN NEW.state IN ('succeeded', 'failed', 'cancelled')
                       AND EXISTS (SELECT 1 FROM settings WHERE key = 'hooks') THEN 'due' END,
    hook_finished_at = NULL
  WHERE id = NEW.id;
END;
