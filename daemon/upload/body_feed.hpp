#pragma once

// Reads an upload's file on a thread of its own, ahead of the sender, into a few fixed blocks:
// a cold file never blocks the event loop, and memory stays flat whatever the file's size.
// The same reads feed the SHA-256 and an optional content check (e.g. the archive check);
// the file's final bytes are handed out only once both are done and the check has passed,
// so a body refused by the check is cut off before the server could hold all of it.

#include "common/pooled_thread.hpp"
#include "upload/attempt.hpp"
#include "upload/source_file.hpp"

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace modeldrop::upload {

// What the reader found once it read the whole file (or stopped).
struct FeedOutcome {
  std::optional<std::string> sha256;        // when hashing was asked for and the file was read whole
  std::optional<std::string> refusal;       // the content check's problem, when it refused the file
  std::optional<FileProblem> file_problem;  // the file could not be read whole, or changed
};

struct FeedOptions {
  bool hash = true;
  ContentCheck check;  // empty: none
  // Without a consumer (a hash before the upload is claimed), blocks are dropped once read.
  bool keep_bytes = true;
  std::size_t block_bytes = 256U * 1024U;
  std::size_t blocks = 4;
  // Runs `task` on the thread that consumes the feed (the event loop).
  std::function<void(std::function<void()> task)> post;
  // Called through `post` once the reader is done, whatever the outcome; not after cancel().
  std::function<void(const FeedOutcome&)> finished;
};

class BodyFeed {
 public:
  BodyFeed(SourceFile file, FeedOptions options);
  // Stops the reader (at most one read or one check step later) and waits for it.
  ~BodyFeed();
  BodyFeed(const BodyFeed&) = delete;
  BodyFeed& operator=(const BodyFeed&) = delete;

  // Copies the next file bytes that may go out now into `out`: 0 when none is ready yet (the
  // reader is behind, or only the held final bytes are left and the verdict is not in). The
  // check's refusal comes back as AttemptError::content_refused with "archive check: ..."-style
  // text from the check; a read failure as the file's problem.
  FileResult<std::size_t> take(std::span<std::byte> out);
  // Whether every file byte was taken (the verdict has passed: nothing was held back).
  [[nodiscard]] bool drained() const;
  // `ready` runs through `post` once take() has something new to say (bytes, the end, an
  // error). One wait at a time; a new wait replaces the old one.
  void wait(std::function<void()> ready);
  void cancel_wait();
  // Whether the consumer waits for the verdict rather than for the disk.
  [[nodiscard]] bool waiting_for_verdict() const;

  [[nodiscard]] std::optional<std::string> sha256() const;
  [[nodiscard]] std::uint64_t size() const { return size_; }
  // fstat of the descriptor the bytes came from; only once drained().
  FileResult<void> check_unchanged(FileIdentity& after) const;

  // How many of the file's last bytes wait for the verdict: at least the last block.
  [[nodiscard]] std::uint64_t held_bytes() const { return held_; }

 private:
  void run();
  FileResult<std::size_t> read_next(std::span<std::byte> into, Sha256* digest);
  bool push(std::span<const std::byte> bytes);
  void finish(FeedOutcome outcome);
  void notify_locked(std::unique_lock<std::mutex>& lock);

  SourceFile file_;
  FeedOptions options_;
  const std::uint64_t size_;
  const std::uint64_t held_;

  mutable std::mutex mutex_;
  std::condition_variable space_;
  std::deque<std::vector<std::byte>> ready_;  // read, not yet taken; the front partly taken
  std::size_t front_taken_ = 0;
  std::vector<std::vector<std::byte>> spare_;
  std::size_t blocks_allocated_ = 0;
  std::uint64_t pushed_ = 0;  // file bytes the reader has handed over
  std::uint64_t taken_ = 0;   // file bytes take() gave out
  bool done_ = false;
  bool cancelled_ = false;
  FeedOutcome outcome_;
  std::function<void()> waiter_;
  PooledThread reader_;
};

}  // namespace modeldrop::upload
