#pragma once

// A job's archive as the upload side sees it: where it is now and the file identity the job
// recorded (the store's and the transport's identity types are the same four numbers).

#include "store/job_store.hpp"
#include "upload/attempt.hpp"

#include <filesystem>

namespace modeldrop::app {

inline upload::FileIdentity upload_identity(const store::FileIdentity& f) {
  return upload::FileIdentity{f.device, f.inode, f.size_bytes, f.mtime_ns};
}

inline store::FileIdentity store_identity(const upload::FileIdentity& f) {
  return store::FileIdentity{f.device, f.inode, f.size, f.mtime_ns};
}

// Where the archive is now: a pending job's file may have been moved since it was queued.
inline const std::filesystem::path& source_path(const store::Job& job) {
  return job.current_path ? *job.current_path : job.path;
}

}  // namespace modeldrop::app
