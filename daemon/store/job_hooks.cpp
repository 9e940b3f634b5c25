// Completion hooks in the job store: a hook is marked due by a trigger in the transaction that
// ends its job (migration 0002), and done once it ran.
#include "store/job_store.hpp"

namespace modeldrop::store {

Result<void> JobStore::set_hooks_enabled(bool enabled) {
  auto write = AtomicWrite::begin(db_, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  if (auto done = db_.exec(enabled ? "INSERT INTO settings (key, value) VALUES ('hooks', '1') "
                                     "ON CONFLICT (key) DO NOTHING"
                                   : "DELETE FROM settings WHERE key = 'hooks'");
      !done) {
    return done.error();
  }
  return write->commit();
}

Result<std::vector<DueHook>> JobStore::due_hooks(std::size_t limit) {
  enum Column { id, state, path, current_path, watch_dir, file_id, project_id, model_name, last_error };
  return db_.query_all(
      "SELECT id, state, path, current_path, watch_dir, file_id, project_id, model_name, last_error FROM jobs "
      "WHERE hook_state = 'due' AND (state <> 'succeeded' OR model_name IS NULL OR (model_status IS NOT NULL "
      "AND model_status NOT IN ('registering', 'validating'))) ORDER BY id LIMIT ?1",
      [](const Statement& r) {
        DueHook hook;
        hook.job = r.int64(id);
        hook.state = parse_job_state(r.text(state)).value_or(JobState::failed);
        hook.path = r.text(path);
        if (auto text = r.optional_text(current_path)) hook.current_path = *text;
        if (auto text = r.optional_text(watch_dir)) hook.watch_dir = *text;
        hook.file_id = r.optional_text(file_id);
        hook.project_id = r.optional_text(project_id);
        hook.model_name = r.optional_text(model_name);
        hook.last_error = r.optional_text(last_error);
        return hook;
      },
      static_cast<std::int64_t>(limit));
}

Result<void> JobStore::finish_hook(JobId job, WallTime now) {
  auto write = AtomicWrite::begin(db_, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  if (auto done =
          db_.exec("UPDATE jobs SET hook_state = 'done', hook_finished_at = ?2 WHERE id = ?1 AND hook_state = 'due'",
                   job, format_timestamp(now));
      !done) {
    return done.error();
  }
  return write->commit();
}

}  // namespace modeldrop::store
