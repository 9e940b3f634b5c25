// The request's bytes in wire order, filled in large pieces from one descriptor read on the
// feed's own thread; the final bytes wait for the content check's verdict.
#include "upload/request_body.hpp"

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <mutex>
#include <random>

namespace modeldrop::upload {
namespace {

using test::TempDir;

struct Built {
  std::string bytes;
  std::optional<FileProblem> problem;
};

// Stands in for the event loop: the feed's notifications wake the draining thread.
struct Wakeup {
  std::mutex mutex;
  std::condition_variable cv;
  bool woken = false;

  void wake() {
    std::lock_guard lock(mutex);
    woken = true;
    cv.notify_all();
  }
  bool wait_a_while() {
    std::unique_lock lock(mutex);
    const bool woken_in_time = cv.wait_for(lock, std::chrono::seconds(10), [&] { return woken; });
    woken = false;
    return woken_in_time;
  }
};

std::unique_ptr<BodyFeed> feed_of(const std::filesystem::path& path, bool hash, ContentCheck check = {},
                                  std::size_t block = 4096) {
  auto file = SourceFile::open(path, *identify_file(path));
  EXPECT_TRUE(file);
  FeedOptions options;
  options.hash = hash;
  options.check = std::move(check);
  options.block_bytes = block;
  options.post = [](std::function<void()> task) { task(); };
  return std::make_unique<BodyFeed>(std::move(*file), std::move(options));
}

UploadRequestBytes request_of(std::string head, const std::filesystem::path& path, bool hash, ContentCheck check = {}) {
  return {std::move(head), make_multipart_framing(path.filename().string(), "B"),
          feed_of(path, hash, std::move(check))};
}

Built drain(UploadRequestBytes& request, std::size_t chunk) {
  Built built;
  Wakeup wakeup;
  std::vector<std::byte> buffer(chunk);
  for (int i = 0; i < 1'000'000 && !request.complete(); ++i) {
    auto n = request.fill(buffer);
    if (!n) {
      built.problem = n.error();
      break;
    }
    if (*n == 0) {
      request.wait([&] { wakeup.wake(); });
      if (!wakeup.wait_a_while()) break;
      continue;
    }
    built.bytes.append(reinterpret_cast<const char*>(buffer.data()), *n);
  }
  return built;
}

// Lets a check waiting on `cv` for `flag` go on.
void let_go(std::mutex& mutex, std::condition_variable& cv, bool& flag) {
  {
    std::lock_guard lock(mutex);
    flag = true;
  }
  cv.notify_all();
}

// Takes from `feed` into `out` after the `got` bytes already there until it is drained (or a
// bounded wait runs out; the caller checks drained()).
void take_until_drained(BodyFeed& feed, std::span<std::byte> out, std::size_t& got) {
  for (int i = 0; i < 10'000 && !feed.drained(); ++i) {
    auto n = feed.take(out.subspan(got));
    ASSERT_TRUE(n);
    got += *n;
    if (*n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

std::string random_content(std::size_t size) {
  std::mt19937 rng(7);
  std::string content(size, '\0');
  for (auto& c : content) c = static_cast<char>(rng() & 0xFFU);
  return content;
}

TEST(UploadRequestBytes, HeadPreambleFileEpilogueInOrderWhateverTheChunkSize) {
  TempDir dir;
  const std::string content = random_content(100'003);
  const auto path = dir.write("m.zip", content);
  const auto framing = make_multipart_framing("m.zip", "B");
  for (const std::size_t chunk : {1UL, 7UL, 4096UL, 65536UL, 1UL << 20U}) {
    UploadRequestBytes request("HEAD\r\n\r\n", framing, feed_of(path, true));
    EXPECT_EQ(request.body_size(), framing.content_length(content.size()));
    EXPECT_EQ(request.total_size(), 8 + request.body_size());
    const Built built = drain(request, chunk);
    ASSERT_FALSE(built.problem) << built.problem->message;
    EXPECT_EQ(built.bytes, "HEAD\r\n\r\n" + framing.preamble + content + framing.epilogue) << "chunk " << chunk;
    EXPECT_EQ(built.bytes.size(), request.total_size());
  }
}

TEST(UploadRequestBytes, Sha256OfTheContentOnceComplete) {
  TempDir dir;
  const auto path = dir.write("m.zip", "abc");
  UploadRequestBytes request = request_of("H", path, true);
  drain(request, 2);
  EXPECT_EQ(request.sha256(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(request.sha256(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") << "stable";
}

TEST(UploadRequestBytes, NoHashWhenNotAskedAndEmptyFileWorks) {
  TempDir dir;
  const auto path = dir.write("empty.tar", "");
  const auto framing = make_multipart_framing("empty.tar", "B");
  UploadRequestBytes request("H", framing, feed_of(path, false));
  const Built built = drain(request, 1024);
  EXPECT_EQ(built.bytes, "H" + framing.preamble + framing.epilogue);
  EXPECT_FALSE(request.sha256());
}

TEST(UploadRequestBytes, FileBytesWithinCountsOnlyContent) {
  TempDir dir;
  const auto path = dir.write("m.zip", "0123456789");
  const auto framing = make_multipart_framing("m.zip", "B");
  UploadRequestBytes request("HEAD", framing, feed_of(path, false));
  const std::uint64_t file_start = 4 + framing.preamble.size();
  EXPECT_EQ(request.file_bytes_within(0), 0U);
  EXPECT_EQ(request.file_bytes_within(file_start), 0U);
  EXPECT_EQ(request.file_bytes_within(file_start + 3), 3U);
  EXPECT_EQ(request.file_bytes_within(request.total_size()), 10U);
}

TEST(UploadRequestBytes, ShrunkFileIsAProblemNotAShortBody) {
  TempDir dir;
  const auto path = dir.write("m.zip", std::string(1000, 'x'));
  auto file = SourceFile::open(path, *identify_file(path));
  ASSERT_TRUE(file);
  std::filesystem::resize_file(path, 10);
  FeedOptions options;
  options.hash = false;
  options.post = [](std::function<void()> task) { task(); };
  UploadRequestBytes request("H", make_multipart_framing("m.zip", "B"),
                             std::make_unique<BodyFeed>(std::move(*file), std::move(options)));
  const Built built = drain(request, 64);
  ASSERT_TRUE(built.problem);
  EXPECT_EQ(built.problem->error, AttemptError::file_changed);
}

TEST(BodyFeed, TheCheckReadsTheSameBytesAndTheFinalOnesWaitForItsVerdict) {
  TempDir dir;
  const std::string content = random_content(50'000);
  const auto path = dir.write("m.zip", content);
  std::mutex mutex;
  std::condition_variable cv;
  bool release = false;
  std::string seen;
  ContentCheck check = [&](const ReadNext& next) -> std::optional<std::string> {
    std::vector<std::byte> buffer(1000);
    for (;;) {
      auto n = next(buffer);
      if (!n || *n == 0) break;
      seen.append(reinterpret_cast<const char*>(buffer.data()), *n);
    }
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return release; });
    return std::nullopt;
  };
  auto feed = feed_of(path, true, check, 4096);
  std::vector<std::byte> out(content.size());
  std::size_t got = 0;
  for (int i = 0; i < 10'000 && got < content.size() - feed->held_bytes(); ++i) {
    auto n = feed->take(std::span(out).subspan(got));
    ASSERT_TRUE(n);
    got += *n;
    if (*n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(got, content.size() - 4096) << "everything but the last block";
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(*feed->take(std::span(out).subspan(got)), 0U) << "held until the verdict";
  EXPECT_TRUE(feed->waiting_for_verdict());
  let_go(mutex, cv, release);
  take_until_drained(*feed, out, got);
  EXPECT_TRUE(feed->drained());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(out.data()), got), content);
  EXPECT_EQ(seen, content) << "the check saw every byte once, from the same reads";
  EXPECT_TRUE(feed->sha256());
}

// The check reads in pieces smaller than a block, so the consumer often catches up with the
// reader inside a block the reader is still filling: take() must then say "nothing yet"
// rather than spin holding the lock the reader needs.
TEST(BodyFeed, CatchingUpInsideAPartlyFilledBlockGivesNothingAndLetsTheReaderGoOn) {
  TempDir dir;
  const std::string content = random_content(50'000);
  const auto path = dir.write("m.zip", content);
  std::mutex mutex;
  std::condition_variable cv;
  bool go_on = false;
  ContentCheck check = [&](const ReadNext& next) -> std::optional<std::string> {
    std::vector<std::byte> buffer(1000);
    (void)next(buffer);  // one partly filled block
    {
      std::unique_lock lock(mutex);
      cv.wait(lock, [&] { return go_on; });
    }
    while (next(buffer).value_or(std::size_t{0}) > 0) {
    }
    return std::nullopt;
  };
  auto feed = feed_of(path, false, check, 4096);
  std::vector<std::byte> out(content.size());
  std::size_t got = 0;
  // A take() that spins holds the feed's lock for good: it runs on a thread of its own so the
  // test can say so instead of hanging.
  auto caught_up = std::async(std::launch::async, [&] {
    for (int i = 0; i < 5'000 && got < 1000; ++i) {
      auto n = feed->take(std::span(out).subspan(got));
      got += n ? *n : 0;
      if (got < 1000) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    auto n = feed->take(std::span(out).subspan(got));
    return n ? *n : std::size_t{99};
  });
  if (caught_up.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    std::fprintf(stderr, "take() spins once it has caught up with the reader inside a block\n");
    std::abort();
  }
  EXPECT_EQ(caught_up.get(), 0U) << "nothing more until the reader goes on";
  EXPECT_EQ(got, 1000U);
  let_go(mutex, cv, go_on);
  take_until_drained(*feed, out, got);
  EXPECT_TRUE(feed->drained());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(out.data()), got), content);
}

TEST(BodyFeed, ARefusalEndsTheBodyBeforeItsFinalBytes) {
  TempDir dir;
  const std::string content = random_content(40'000);
  const auto path = dir.write("m.tar", content);
  ContentCheck check = [](const ReadNext& next) -> std::optional<std::string> {
    std::vector<std::byte> buffer(30'000);
    (void)next(buffer);
    return "archive check: truncated tar archive";
  };
  UploadRequestBytes request = request_of("H", path, true, check);
  const Built built = drain(request, 1024);
  ASSERT_TRUE(built.problem);
  EXPECT_EQ(built.problem->error, AttemptError::content_refused);
  EXPECT_EQ(built.problem->message, "archive check: truncated tar archive");
  EXPECT_LT(built.bytes.size(), request.total_size() - 4096) << "the last block never went out";
  EXPECT_FALSE(request.sha256());
}

// An empty file has no final bytes to hold back: the refusal must still end the body.
TEST(BodyFeed, AnEmptyFileRefusedByTheCheckEndsTheBodyBeforeItsEpilogue) {
  TempDir dir;
  const auto path = dir.write("empty.zip", "");
  ContentCheck check = [](const ReadNext&) -> std::optional<std::string> { return "archive check: empty file"; };
  UploadRequestBytes request = request_of("H", path, true, check);
  const Built built = drain(request, 1024);
  ASSERT_TRUE(built.problem) << "the body went out whole";
  EXPECT_EQ(built.problem->error, AttemptError::content_refused);
  EXPECT_EQ(built.problem->message, "archive check: empty file");
  EXPECT_FALSE(request.complete());
}

TEST(BodyFeed, MemoryIsAFewBlocksWhateverTheFileSize) {
  TempDir dir;
  const auto path = dir.write("big.zip", random_content(2'000'000));
  auto feed = feed_of(path, false, {}, 8192);
  // Nobody takes: the reader stops after its few blocks instead of reading the whole file.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::vector<std::byte> out(1U << 20U);
  auto n = feed->take(out);
  ASSERT_TRUE(n);
  EXPECT_LE(*n, 4U * 8192U);
}

}  // namespace
}  // namespace modeldrop::upload
