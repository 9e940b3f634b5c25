-- modeldrop job database, schema version 1 (docs/database.md).
-- Applied once, inside the migration runner's BEGIN IMMEDIATE transaction; never edited after
-- release: later changes go into 0002_....sql and following files.

-- One row per archive to upload. The columns up to finished_at are the public contract; the
-- rest are modeldrop's own bookkeeping.
CREATE TABLE jobs (
  id                  INTEGER PRIMARY KEY,
  path                TEXT    NOT NULL,
  current_path        TEXT,
  watch_dir           TEXT,
  project_id          TEXT,
  size_bytes          INTEGER NOT NULL CHECK (size_bytes >= 0),
  sha256              TEXT    CHECK (sha256 IS NULL OR (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*')),
  state               TEXT    NOT NULL DEFAULT 'pending'
                              CHECK (state IN ('pending', 'uploading', 'succeeded', 'failed', 'cancelled')),
  attempts            INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at     TEXT,
  bytes_sent          INTEGER NOT NULL DEFAULT 0 CHECK (bytes_sent >= 0 AND bytes_sent <= size_bytes),
  file_id             TEXT,
  file_status         TEXT,
  file_status_details TEXT,
  http_status         INTEGER,
  last_error          TEXT,
  created_at          TEXT    NOT NULL,
  updated_at          TEXT    NOT NULL,
  finished_at         TEXT,
  -- The file's identity when queued (with size_bytes): the same path, inode, size and mtime is
  -- never queued twice (docs/database.md), and an upload only sends the file it was queued for.
  device              INTEGER NOT NULL,
  inode               INTEGER NOT NULL,
  mtime_ns            INTEGER NOT NULL,
  -- When the give_up_after budget started: creation, or the last `modeldrop retry`.
  budget_started_at   TEXT    NOT NULL,
  -- Progress of the current attempt, for the rate and ETA `modeldrop jobs` shows.
  progress_at_ms      INTEGER,
  upload_rate_bytes_per_s REAL,
  -- Set when dedupe completed this job from an earlier upload of the same content.
  duplicate_of        INTEGER REFERENCES jobs (id),
  -- A succeeded job has its file id; a job is finished exactly when it is in a final state.
  CHECK (state <> 'succeeded' OR file_id IS NOT NULL),
  CHECK ((finished_at IS NOT NULL) = (state IN ('succeeded', 'failed', 'cancelled')))
);

-- The same-file rule's lookup, and the guarantee behind it.
CREATE UNIQUE INDEX jobs_file_identity ON jobs (path, inode, size_bytes, mtime_ns);
-- One index for three queries, each answered from the index alone: the daemon's claim (the
-- oldest due pending job: state, then id, filtered on next_attempt_at), `modeldrop jobs
-- --state S` (newest first) and queue_summary (sum of size_bytes per state).
CREATE INDEX jobs_state ON jobs (state, id, next_attempt_at, size_bytes);
-- Dedupe: an earlier upload of the same content.
CREATE INDEX jobs_succeeded_sha256 ON jobs (sha256, project_id) WHERE state = 'succeeded';
-- A watcher event on a file still waiting in the queue.
CREATE INDEX jobs_pending_current_path ON jobs (current_path) WHERE state = 'pending';

-- One row per attempt to upload a job, numbered from 1 per job. An attempt is open (running)
-- until it has an outcome.
CREATE TABLE attempts (
  job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt     INTEGER NOT NULL CHECK (attempt >= 1),
  started_at  TEXT    NOT NULL,
  finished_at TEXT,
  http_status INTEGER,
  bytes_sent  INTEGER NOT NULL DEFAULT 0 CHECK (bytes_sent >= 0),
  outcome     TEXT    CHECK (outcome IN ('succeeded', 'retry', 'failed', 'held', 'aborted', 'reconciled')),
  error       TEXT,
  PRIMARY KEY (job_id, attempt),
  CHECK ((outcome IS NULL) = (finished_at IS NULL))
) WITHOUT ROWID;

-- Open attempts, for crash recovery (few at any time, however long the history).
CREATE INDEX attempts_open ON attempts (job_id) WHERE outcome IS NULL;

-- The running daemon, at most one per database (docs/database.md).
CREATE TABLE daemon (
  id           INTEGER PRIMARY KEY CHECK (id = 1),
  pid          INTEGER NOT NULL,
  version      TEXT    NOT NULL,
  started_at   TEXT    NOT NULL,
  heartbeat_at TEXT    NOT NULL,
  held_reason  TEXT,
  upload_rate_bytes_per_s REAL NOT NULL DEFAULT 0
);

-- Settings that outlive the daemon, such as the pause (`modeldrop pause` / `resume`).
CREATE TABLE settings (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

-- Jobs and bytes per state, every state listed (zeros included).
CREATE VIEW queue_summary (state, jobs, bytes) AS
  WITH states (state, position) AS (
    VALUES ('pending', 1), ('uploading', 2), ('succeeded', 3), ('failed', 4), ('cancelled', 5))
  SELECT states.state,
         (SELECT count(*) FROM jobs WHERE jobs.state = states.state),
         (SELECT coalesce(sum(size_bytes), 0) FROM jobs WHERE jobs.state = states.state)
  FROM states
  ORDER BY states.position;
