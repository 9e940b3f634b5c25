#include "upload/body_feed.hpp"

#include <algorithm>
#include <cstring>

namespace modeldrop::upload {

BodyFeed::BodyFeed(SourceFile file, FeedOptions options)
    : file_(std::move(file)),
      options_(std::move(options)),
      size_(file_.size()),
      held_(std::min<std::uint64_t>(size_, std::max<std::size_t>(options_.block_bytes, 1))) {
  options_.block_bytes = std::max<std::size_t>(options_.block_bytes, 4096);
  options_.blocks = std::max<std::size_t>(options_.blocks, 3);  // the held tail may straddle two
  reader_ = PooledThread([this] { run(); });
}

BodyFeed::~BodyFeed() {
  {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
    waiter_ = nullptr;
  }
  space_.notify_all();
  reader_.join();
}

void BodyFeed::run() {
  std::optional<Sha256> digest;
  if (options_.hash) digest.emplace();
  FeedOutcome outcome;
  std::optional<FileProblem> problem;
  const auto next = [&](std::span<std::byte> into) -> std::optional<std::size_t> {
    auto n = read_next(into, digest ? &*digest : nullptr);
    if (!n) {
      problem = n.error();
      return std::nullopt;
    }
    return *n;
  };
  if (options_.check) {
    auto refusal = options_.check(next);
    if (!problem && refusal) outcome.refusal = std::move(refusal);
  }
  // The check may reach its verdict before the end: the rest still feeds the hash and the body.
  std::vector<std::byte> scratch;
  while (!problem && !outcome.refusal && file_.remaining() > 0) {
    if (scratch.empty()) scratch.resize(options_.block_bytes);
    if (!next(scratch)) break;
  }
  if (problem) {
    outcome.file_problem = std::move(problem);
  } else if (!outcome.refusal && digest) {
    outcome.sha256 = digest->hex_digest();
  }
  finish(std::move(outcome));
}

FileResult<std::size_t> BodyFeed::read_next(std::span<std::byte> into, Sha256* digest) {
  {
    std::lock_guard lock(mutex_);
    if (cancelled_) return FileProblem{AttemptError::cancelled, "cancelled"};
  }
  auto n = file_.read(into.first(std::min<std::size_t>(into.size(), options_.block_bytes)));
  if (!n || *n == 0) return n;
  const auto bytes = into.first(*n);
  if (digest != nullptr) digest->update(bytes);
  if (options_.keep_bytes && !push(bytes)) return FileProblem{AttemptError::cancelled, "cancelled"};
  return n;
}

// Hands bytes to the consumer, waiting while every block is full (that wait is what keeps a
// fast disk from running ahead of a slow link).
bool BodyFeed::push(std::span<const std::byte> bytes) {
  std::unique_lock lock(mutex_);
  while (!bytes.empty()) {
    if (cancelled_) return false;
    std::vector<std::byte>* tail = ready_.empty() ? nullptr : &ready_.back();
    if (tail == nullptr || tail->size() == options_.block_bytes) {
      if (spare_.empty() && blocks_allocated_ >= options_.blocks) {
        space_.wait(lock, [&] { return cancelled_ || !spare_.empty(); });
        continue;
      }
      std::vector<std::byte> block;
      if (!spare_.empty()) {
        block = std::move(spare_.back());
        spare_.pop_back();
      } else {
        ++blocks_allocated_;
        block.reserve(options_.block_bytes);
      }
      block.clear();
      ready_.push_back(std::move(block));
      tail = &ready_.back();
    }
    const std::size_t n = std::min(bytes.size(), options_.block_bytes - tail->size());
    tail->insert(tail->end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    bytes = bytes.subspan(n);
    pushed_ += n;
    notify_locked(lock);
  }
  return true;
}

void BodyFeed::finish(FeedOutcome outcome) {
  std::unique_lock lock(mutex_);
  if (cancelled_) return;
  outcome_ = outcome;
  done_ = true;
  notify_locked(lock);
  if (options_.finished && options_.post) {
    options_.post([finished = options_.finished, outcome = std::move(outcome)] { finished(outcome); });
  }
}

void BodyFeed::notify_locked(std::unique_lock<std::mutex>&) {
  if (!waiter_ || !options_.post) return;
  options_.post(std::exchange(waiter_, nullptr));
}

FileResult<std::size_t> BodyFeed::take(std::span<std::byte> out) {
  std::lock_guard lock(mutex_);
  if (done_ && outcome_.file_problem) return *outcome_.file_problem;
  if (done_ && outcome_.refusal) return FileProblem{AttemptError::content_refused, *outcome_.refusal};
  // Until the verdict, the last `held_` bytes stay here.
  const std::uint64_t may_give = done_ ? size_ : size_ - held_;
  std::size_t given = 0;
  while (given < out.size() && !ready_.empty() && taken_ < may_give) {
    auto& front = ready_.front();
    // Caught up with the reader inside a block it is still filling: nothing more for now
    // (looping here would spin with the lock held, and the reader could never add to it).
    if (front_taken_ == front.size()) break;
    const std::size_t n = std::min<std::uint64_t>({front.size() - front_taken_, out.size() - given, may_give - taken_});
    std::memcpy(out.data() + given, front.data() + front_taken_, n);
    given += n;
    front_taken_ += n;
    taken_ += n;
    if (front_taken_ == front.size() && (ready_.size() > 1 || front.size() == options_.block_bytes || done_)) {
      spare_.push_back(std::move(front));
      ready_.pop_front();
      front_taken_ = 0;
      space_.notify_all();
    }
  }
  return given;
}

bool BodyFeed::drained() const {
  std::lock_guard lock(mutex_);
  return done_ && taken_ == size_ && !outcome_.file_problem && !outcome_.refusal;
}

void BodyFeed::wait(std::function<void()> ready) {
  std::unique_lock lock(mutex_);
  waiter_ = std::move(ready);
  const std::uint64_t may_give = done_ ? size_ : size_ - held_;
  const bool news = done_ || (taken_ < pushed_ && taken_ < may_give);
  if (news) notify_locked(lock);
}

void BodyFeed::cancel_wait() {
  std::lock_guard lock(mutex_);
  waiter_ = nullptr;
}

bool BodyFeed::waiting_for_verdict() const {
  std::lock_guard lock(mutex_);
  return !done_ && taken_ >= size_ - held_;
}

std::optional<std::string> BodyFeed::sha256() const {
  std::lock_guard lock(mutex_);
  return outcome_.sha256;
}

FileResult<void> BodyFeed::check_unchanged(FileIdentity& after) const {
  return file_.check_unchanged(after);
}

}  // namespace modeldrop::upload
