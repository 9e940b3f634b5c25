-- The preflight stage looks for pending jobs whose hash is not known yet, oldest first, after
-- new jobs and after each batch it hashed. Without this index each look walked every pending
-- job (most of them hashed already when many archives of one size wait): quadratic in the
-- queue's length.
CREATE INDEX jobs_pending_unhashed ON jobs (id) WHERE state = 'pending' AND sha256 IS NULL;
