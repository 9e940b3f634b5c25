#pragma once

// A job's archive as the upload side sees it: where it is now, the file identity the job
// recorded (the store's and the transport's identity types are the same four numbers), and
// how it is read whole for its hash when no upload is sending it.

#include "store/job_store.hpp"
#include "upload/attempt.hpp"
#include "upload/body_feed.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <filesystem>
#include <functional>
#include <utility>

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

// A feed that reads a file once for its SHA-256 (and `check`, if any) without a sender: its
// blocks are dropped once read, and `finished` runs on `io`'s loop.
inline upload::FeedOptions hash_only_feed(boost::asio::io_context& io, upload::ContentCheck check,
                                          std::function<void(const upload::FeedOutcome&)> finished) {
  upload::FeedOptions options;
  options.hash = true;
  options.keep_bytes = false;
  options.block_bytes = 1U << 20U;
  options.check = std::move(check);
  options.post = [&io](std::function<void()> task) { boost::asio::post(io, std::move(task)); };
  options.finished = std::move(finished);
  return options;
}

}  // namespace modeldrop::app
