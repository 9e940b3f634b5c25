#pragma once

// What happens to a job's file once the job is over (docs/configuration.md on_success / on_failure):
// moved to done/failed, kept or deleted, with `current_path` kept true in the database.

#include "app/store_client.hpp"
#include "common/timestamp.hpp"
#include "config/config.hpp"
#include "store/job_store.hpp"

namespace modeldrop::app {

// The watch entry a job came from; nullptr for `modeldrop add` jobs (their files stay put)
// and for watches removed by a reload.
const config::WatchConfig* watch_of(const store::Job& job, const config::Config& config);

// Whether the after-action of a succeeded or failed job moves or deletes its file.
bool after_action_moves_file(const store::Job& job, const config::Config& config);

// Applies the after-action for a succeeded or failed job; anything else is left alone.
void dispose_of_job_file(const store::Job& job, const config::Config& config, StoreClient& store, const Clock& clock);

// The ready marker of a job cancelled because its archive disappeared: removed, as it has
// nothing left to announce. Runs on the store thread (it records the change).
void remove_ready_marker(const store::Job& job, store::JobStore& store, WallTime now);

}  // namespace modeldrop::app
