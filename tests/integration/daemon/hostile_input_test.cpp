// Hostile local input (issue #9), through the real modeldropd, the real fake API over TLS and a
// real SQLite file: odd names and paths, files that are not regular, a file we may not read, a
// file truncated mid-upload, and databases that cannot be used or fill up. Each case checks that
// the daemon lives (or exits with the docs/cli.md code), the job state and last_error, a log
// line naming the file and the reason, and that no archive is lost.
#include "common/text.hpp"
#include "daemon_fixture.hpp"
#include "support/scoped_mount.hpp"

#include <boost/json/parse.hpp>

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <csignal>
#include <fstream>
#include <functional>
#include <set>

namespace modeldrop::test {
namespace {

using namespace std::chrono_literals;
using store::JobState;
namespace fs = std::filesystem;

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + needle.size())) ++n;
  return n;
}

bool contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// The move to done/ or failed/ follows the state change that the tests wait for.
bool eventually_exists(const fs::path& file) {
  return wait_until([&] { return fs::exists(file); }, 10s);
}

bool valid_utf8(const std::string& text) {
  return sanitize_utf8(text) == text;
}

std::optional<ReceivedFile> received(const FakeApi& api, const std::string& filename) {
  for (const auto& file : api.files()) {
    if (file.filename == filename) return file;
  }
  return std::nullopt;
}

std::optional<store::Job> job_named(const std::vector<store::Job>& jobs, const std::string& filename) {
  for (const auto& job : jobs) {
    if (job.path.filename().string() == filename) return job;
  }
  return std::nullopt;
}

// The database learns where a moved file went just after the move.
bool eventually_recorded_at(const std::function<std::vector<store::Job>()>& jobs, const std::string& filename,
                            const fs::path& where) {
  return wait_until(
      [&] {
        const auto job = job_named(jobs(), filename);
        return job && job->current_path == where;
      },
      10s);
}

// Writes until the filesystem says ENOSPC; returns the bytes written.
std::uint64_t fill_filesystem(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + file.string());
  const std::vector<char> block(4096, 'f');
  std::uint64_t written = 0;
  for (int i = 0; i < 1'000'000; ++i) {
    const ssize_t n = ::write(fd, block.data(), block.size());
    if (n <= 0) break;
    written += static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  return written;
}

TEST_F(DaemonTest, NameOf255BytesUploadsUnderItsFullName) {
  auto daemon = start_ready_daemon();
  const std::string name = std::string(251, 'n') + ".zip";
  ASSERT_EQ(name.size(), 255u) << "NAME_MAX";
  const std::string first_sha = sha256_of(drop(name, 4096));
  drop("neighbour.zip", 1000);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 2); }, 30s)) << daemon->stderr_text();
  const auto stored = received(*api_, name);
  ASSERT_TRUE(stored) << "the server records the full 255-byte name";
  EXPECT_EQ(stored->sha256, first_sha);
  EXPECT_TRUE(eventually_exists(incoming_ / "done" / name));
  EXPECT_TRUE(contains(daemon->stderr_text(), name + " uploaded as"));

  // The same name again, other content: the done directory already holds that name, and the
  // numbered name (`.1` before the extension) must still fit in NAME_MAX.
  const std::string second_sha = sha256_of(drop(name, 5000));
  ASSERT_TRUE(wait_until(
      [&] {
        const auto all = jobs();  // newest first
        return all.size() == 3 && all.front().state == JobState::succeeded && all.front().current_path &&
               all.front().current_path->parent_path() == incoming_ / "done";
      },
      30s))
      << daemon->stderr_text();
  const auto job = jobs().front();
  ASSERT_TRUE(job.current_path) << daemon->stderr_text();
  const std::string moved_name = job.current_path->filename().string();
  EXPECT_EQ(job.current_path->parent_path(), incoming_ / "done") << daemon->stderr_text();
  EXPECT_LE(moved_name.size(), 255u);
  EXPECT_TRUE(moved_name.ends_with(".1.zip")) << moved_name;
  EXPECT_EQ(sha256_of(*job.current_path), second_sha);
  EXPECT_EQ(sha256_of(incoming_ / "done" / name), first_sha) << "a move never overwrites";
  EXPECT_FALSE(fs::exists(incoming_ / name));
  EXPECT_TRUE(daemon->running());
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

// Directories under `root` down to a file whose absolute path is exactly `length` bytes.
fs::path nested_path_of_length(const fs::path& root, char letter, std::size_t length, const std::string& filename) {
  std::string path = root.string() + "/" + std::string(1, letter);
  while (length - path.size() - 1 - filename.size() > 201) path += "/" + std::string(200, letter);
  const std::size_t last = length - path.size() - 2 - filename.size();
  path += "/" + std::string(last, letter) + "/" + filename;
  return path;
}

TEST_F(DaemonTest, PathsNearPathMaxUploadInARecursiveWatch) {
  config_options_.incoming_watch = "    recursive: true\n";
  write_config();
  // PATH_MAX is 4096 with the terminating NUL: 4095 bytes is the longest path the kernel takes.
  const fs::path shallow = nested_path_of_length(incoming_, 'a', 4000, "deep-archive-a.zip");
  const fs::path deepest = nested_path_of_length(incoming_, 'b', 4095, "deep-archive-b.zip");
  ASSERT_EQ(shallow.string().size(), 4000u);
  ASSERT_EQ(deepest.string().size(), 4095u);
  fs::create_directories(shallow.parent_path());
  const std::string shallow_sha = sha256_of(drop(shallow.filename().string(), 3000, shallow.parent_path()));
  auto daemon = start_ready_daemon();  // the first is found by the startup scan, the second by inotify
  fs::create_directories(deepest.parent_path());
  const std::string deepest_sha = sha256_of(drop(deepest.filename().string(), 3000, deepest.parent_path()));
  drop("beside.zip", 100);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 3); }, 30s)) << daemon->stderr_text();
  EXPECT_EQ(received(*api_, "deep-archive-a.zip").value_or(ReceivedFile{}).sha256, shallow_sha);
  EXPECT_EQ(received(*api_, "deep-archive-b.zip").value_or(ReceivedFile{}).sha256, deepest_sha);
  const fs::path shallow_done = incoming_ / "done" / shallow.lexically_relative(incoming_);
  EXPECT_TRUE(eventually_recorded_at([this] { return jobs(); }, "deep-archive-a.zip", shallow_done));
  EXPECT_TRUE(wait_until([&] { return contains(daemon->stderr_text(), "File name too long"); }, 10s))
      << daemon->stderr_text();
  const auto all = jobs();
  EXPECT_EQ(job_named(all, "deep-archive-a.zip")->path, shallow);
  EXPECT_EQ(job_named(all, "deep-archive-b.zip")->path, deepest);
  // done/ keeps the subfolders: the first fits, the second's done path would be 4100 bytes.
  EXPECT_EQ(job_named(all, "deep-archive-a.zip")->current_path, shallow_done);
  EXPECT_EQ(job_named(all, "deep-archive-b.zip")->current_path, deepest) << "it stays where it was, not lost";
  EXPECT_TRUE(fs::exists(deepest));
  EXPECT_TRUE(daemon->running());
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

// A name that is not UTF-8, and one with a newline. The multipart filename keeps valid UTF-8 as
// it is and writes every other byte as %XX (docs/http.md: what cannot be sent as is is escaped
// that way), so the server stores `bad-%FF%FE.zip`: readable, and the original bytes can be
// told from it. Sending the raw bytes instead would make the API decode them as latin-1
// (`bad-ÿþ.zip`), a name the user never gave. Logs and the CLI show U+FFFD for such bytes.
TEST_F(DaemonTest, NamesThatAreNotUtf8OrHoldAControlCharacterUploadAndStayReadable) {
  auto daemon = start_ready_daemon();
  const std::string bad = "bad-\xFF\xFE.zip";
  const std::string broken_line = "line\nbreak.zip";
  drop(bad, 2000);
  drop(broken_line, 2100);
  drop("plain.zip", 2200);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 3); }, 30s)) << daemon->stderr_text();
  EXPECT_TRUE(received(*api_, "bad-%FF%FE.zip"));
  EXPECT_TRUE(received(*api_, "line%0Abreak.zip"));
  EXPECT_TRUE(received(*api_, "plain.zip"));
  EXPECT_TRUE(eventually_exists(incoming_ / "done" / bad)) << "the file keeps its own name on disk";
  EXPECT_TRUE(eventually_exists(incoming_ / "done" / broken_line));
  EXPECT_TRUE(eventually_exists(incoming_ / "done" / "plain.zip"));
  EXPECT_TRUE(eventually_recorded_at([this] { return jobs(); }, bad, incoming_ / "done" / bad));

  const std::string log = daemon->stderr_text();
  EXPECT_TRUE(valid_utf8(log)) << "the text log stays UTF-8 (journald shows anything else as a blob)";
  EXPECT_TRUE(contains(log, "bad-\uFFFD\uFFFD.zip uploaded as")) << log;
  EXPECT_TRUE(contains(log, "line\\nbreak.zip uploaded as")) << "a newline in a name cannot forge a log line";
  EXPECT_FALSE(contains(log, "\nbreak.zip"));

  const auto bad_job = job_named(jobs(), bad);
  ASSERT_TRUE(bad_job);
  const std::string id = std::to_string(bad_job->id);
  const auto table = run_cli({"jobs"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_TRUE(valid_utf8(table.out));
  EXPECT_TRUE(contains(table.out, "bad-\uFFFD\uFFFD.zip")) << table.out;
  EXPECT_TRUE(contains(table.out, "line\\nbreak.zip")) << table.out;
  const auto show = run_cli({"show", id});
  EXPECT_EQ(show.exit_code, 0) << show.err;
  EXPECT_TRUE(valid_utf8(show.out));
  EXPECT_TRUE(contains(show.out, "bad-\uFFFD\uFFFD.zip")) << show.out;
  const auto listed = run_cli({"jobs", "--json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  std::set<std::string> paths;
  const boost::json::value listing = boost::json::parse(listed.out);
  for (const auto& entry : listing.as_array()) {
    paths.insert(std::string(entry.at("path").as_string()));
  }
  EXPECT_TRUE(paths.count((incoming_ / "bad-\uFFFD\uFFFD.zip").string())) << listed.out;
  EXPECT_TRUE(paths.count((incoming_ / broken_line).string())) << listed.out;
  const auto shown = run_cli({"show", id, "--json"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_EQ(boost::json::parse(shown.out).at("current_path").as_string(),
            (incoming_ / "done" / "bad-\uFFFD\uFFFD.zip").string());
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(DaemonTest, FifoDeviceSymlinkAndDirectoryAreSkippedAndLoggedOnce) {
  ASSERT_EQ(::mkfifo((incoming_ / "pipe.zip").c_str(), 0644), 0);
  fs::create_symlink("/etc/shadow", incoming_ / "shadow.zip");
  auto daemon = start_ready_daemon();  // those two are seen by the startup scan, the rest by inotify
  ASSERT_EQ(::mknod((incoming_ / "device.zip").c_str(), S_IFCHR | 0644, ::makedev(1, 3)), 0);  // like /dev/null
  fs::create_directory(incoming_ / "folder.zip");
  drop("real.zip", 3000);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 1); }, 30s)) << daemon->stderr_text();

  // Every change to them is an event the daemon looks at again; none is logged twice.
  for (int round = 0; round < 3; ++round) {
    const struct timespec times[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
    for (const char* name : {"pipe.zip", "shadow.zip", "device.zip", "folder.zip"}) {
      ASSERT_EQ(::utimensat(AT_FDCWD, (incoming_ / name).c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << name;
    }
    ::chmod((incoming_ / "pipe.zip").c_str(), round % 2 == 0 ? 0600 : 0644);
  }
  // Events are handled in order: once this one is uploaded, the ones above were handled.
  drop("marker.zip", 100);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 2); }, 30s)) << daemon->stderr_text();

  const std::string log = daemon->stderr_text();
  EXPECT_EQ(count_of(log, "skipping " + (incoming_ / "pipe.zip").string() + ": a FIFO"), 1u) << log;
  EXPECT_EQ(count_of(log, "skipping " + (incoming_ / "shadow.zip").string() + ": a symlink"), 1u) << log;
  EXPECT_EQ(count_of(log, "skipping " + (incoming_ / "device.zip").string() + ": a character device"), 1u) << log;
  EXPECT_EQ(count_of(log, "skipping " + (incoming_ / "folder.zip").string() + ": a directory"), 1u) << log;
  std::set<std::string> names;
  for (const auto& file : api_->files()) names.insert(file.filename);
  EXPECT_EQ(names, (std::set<std::string>{"real.zip", "marker.zip"}));
  for (const char* name : {"pipe.zip", "shadow.zip", "device.zip", "folder.zip"}) {
    EXPECT_TRUE(fs::exists(fs::symlink_status(incoming_ / name))) << name << " is left where it is";
  }
  EXPECT_TRUE(fs::is_symlink(incoming_ / "shadow.zip"));
  EXPECT_TRUE(daemon->running());
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(DaemonTest, FileTheDaemonMayNotReadFailsWithTheReason) {
  // Root reads everything: the daemon runs as nobody, so EACCES is real.
  const passwd* nobody = ::getpwnam("nobody");
  const group* nogroup = ::getgrnam("nogroup");
  ASSERT_NE(nobody, nullptr);
  ASSERT_NE(nogroup, nullptr);
  const uid_t uid = nobody->pw_uid;
  const gid_t gid = nogroup->gr_gid;
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  fs::create_directories(dir_ / "state");
  for (const auto& owned : {dir_ / "state", incoming_, dir_ / "token"}) {
    ASSERT_EQ(::chown(owned.c_str(), uid, gid), 0) << owned;
  }
  for (const auto& readable : {pki_.ca_cert, config_}) ASSERT_EQ(::chmod(readable.c_str(), 0644), 0);
  ASSERT_EQ(::chmod(pki_.ca_cert.parent_path().c_str(), 0755), 0);

  const auto secret = drop("secret.zip", 4000);
  ASSERT_EQ(::chmod(secret.c_str(), 0600), 0);  // root's, unreadable to nobody
  const std::string secret_sha = sha256_of(secret);
  drop("open.zip", 4100);
  auto daemon = start_ready_daemon({"/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"});
  ASSERT_TRUE(wait_until(
      [&] {
        const auto all = jobs();
        const auto failed = job_named(all, "secret.zip");
        const auto done = job_named(all, "open.zip");
        return failed && failed->state == JobState::failed && done && done->state == JobState::succeeded;
      },
      30s))
      << daemon->stderr_text();
  ASSERT_TRUE(eventually_recorded_at([this] { return jobs(); }, "secret.zip", incoming_ / "failed" / "secret.zip"));
  const auto job = *job_named(jobs(), "secret.zip");
  ASSERT_TRUE(job.last_error);
  EXPECT_TRUE(contains(*job.last_error, "secret.zip")) << *job.last_error;
  EXPECT_TRUE(contains(*job.last_error, "Permission denied")) << *job.last_error;
  EXPECT_TRUE(contains(daemon->stderr_text(), "secret.zip failed: ")) << daemon->stderr_text();
  // on_failure: move. Renaming needs only the directory, so the archive is in failed/, intact.
  EXPECT_EQ(job.current_path, incoming_ / "failed" / "secret.zip");
  EXPECT_EQ(sha256_of(incoming_ / "failed" / "secret.zip"), secret_sha);
  EXPECT_FALSE(received(*api_, "secret.zip"));
  EXPECT_TRUE(received(*api_, "open.zip"));
  {
    std::ifstream status("/proc/" + std::to_string(daemon->pid()) + "/status");
    const std::string text((std::istreambuf_iterator<char>(status)), std::istreambuf_iterator<char>());
    EXPECT_TRUE(contains(text, "\nUid:\t" + std::to_string(uid) + "\t")) << "the daemon really runs as nobody";
  }
  // Once the admin makes it readable, `modeldrop retry` sends it from where it was moved.
  ASSERT_EQ(::chmod(job.current_path->c_str(), 0644), 0);
  const auto retried = run_cli({"retry", std::to_string(job.id)});
  EXPECT_EQ(retried.exit_code, 0) << retried.err;
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 2); }, 30s)) << daemon->stderr_text();
  EXPECT_EQ(received(*api_, "secret.zip").value_or(ReceivedFile{}).sha256, secret_sha);
  EXPECT_TRUE(daemon->running());
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(DaemonTest, FileTruncatedWhileItUploadsIsSentAgainWhole) {
  Fault slow;
  slow.kind = FaultKind::throttle;
  slow.bytes_per_second = 512 * 1024;
  api_->set_default_fault(slow);
  auto daemon = start_ready_daemon();
  const auto file = drop("shrinking.zip", 16 * 1024 * 1024);
  drop("steady.zip", 1000);
  ASSERT_TRUE(wait_until(
      [&] {
        const auto job = job_named(jobs(), "shrinking.zip");
        return job && job->state == JobState::uploading && job->bytes_sent > 0;
      },
      30s))
      << daemon->stderr_text();
  fs::resize_file(file, 1024 * 1024);
  const std::string final_sha = sha256_of(file);

  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 2); }, 60s)) << daemon->stderr_text();
  std::vector<ReceivedFile> copies;
  for (const auto& stored : api_->files()) {
    if (stored.filename == "shrinking.zip") copies.push_back(stored);
  }
  ASSERT_EQ(copies.size(), 1u) << "no short body was accepted as a success";
  EXPECT_EQ(copies[0].sha256, final_sha);
  EXPECT_EQ(copies[0].bytes, 1024u * 1024);
  const auto job = *job_named(jobs(), "shrinking.zip");
  EXPECT_EQ(job.sha256, final_sha);
  EXPECT_EQ(job.size_bytes, 1024u * 1024);
  auto store = store::JobStore::open_existing(database_);
  ASSERT_TRUE(store);
  const auto history = store->job_with_attempts(job.id);
  ASSERT_TRUE(history && *history);
  std::size_t aborted = 0;
  for (const auto& attempt : (*history)->attempts) {
    if (attempt.outcome == store::AttemptOutcome::aborted) ++aborted;
  }
  EXPECT_GE(aborted, 1u) << "the interrupted attempt is recorded as aborted";
  EXPECT_TRUE(contains(daemon->stderr_text(), "shrinking.zip")) << daemon->stderr_text();
  EXPECT_TRUE(contains(daemon->stderr_text(), "changed")) << daemon->stderr_text();
  EXPECT_TRUE(daemon->running());
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

// The watcher reports a file once. If the store refuses to queue it (here a trigger, as any
// statement error that leaves the rest of the batch intact would), the daemon tries again until
// it is queued: waiting for a restart would leave the archive unsent meanwhile.
TEST_F(DaemonTest, FileTheStoreRefusesToQueueIsQueuedOnceItCan) {
  auto daemon = start_ready_daemon();
  {
    auto store = store::JobStore::open_existing(database_);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->connection().execute(
        "CREATE TRIGGER refuse_for_test BEFORE INSERT ON jobs WHEN NEW.path LIKE '%refused.zip' "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"));
  }
  drop("refused.zip", 1000);
  drop("accepted.zip", 1100);
  const std::string refused = "cannot queue " + (incoming_ / "refused.zip").string();
  ASSERT_TRUE(wait_until([&] { return contains(daemon->stderr_text(), refused); }, 20s)) << daemon->stderr_text();
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 1); }, 30s)) << daemon->stderr_text();
  EXPECT_TRUE(contains(daemon->stderr_text(), "refused by the test"));
  EXPECT_TRUE(daemon->running());
  {
    auto store = store::JobStore::open_existing(database_);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->connection().execute("DROP TRIGGER refuse_for_test"));
  }
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 2); }, 30s)) << daemon->stderr_text();
  EXPECT_TRUE(received(*api_, "refused.zip"));
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(DaemonTest, ReadOnlyDirectoryWithoutADatabaseExits69) {
  const auto mounted = ScopedMount::tmpfs(dir_ / "state", "1m", true);
  drop("waiting.zip", 1000);
  auto daemon = start_daemon();
  EXPECT_EQ(daemon->wait(20s), 69) << daemon->stderr_text();
  EXPECT_TRUE(contains(daemon->stderr_text(), database_.string())) << daemon->stderr_text();
  EXPECT_TRUE(contains(daemon->stderr_text(), "Read-only file system")) << daemon->stderr_text();
  EXPECT_TRUE(fs::exists(incoming_ / "waiting.zip"));
  EXPECT_TRUE(api_->files().empty());
}

TEST_F(DaemonTest, ReadOnlyDirectoryWithADatabaseExits69) {
  {
    auto daemon = start_ready_daemon();
    drop("first.zip", 1000);
    ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 1); }, 30s)) << daemon->stderr_text();
    daemon->signal(SIGTERM);
    ASSERT_EQ(daemon->wait(10s), 0);
  }
  const auto mounted = ScopedMount::read_only_bind(dir_ / "state");
  drop("second.zip", 1000);
  auto daemon = start_daemon();
  EXPECT_EQ(daemon->wait(20s), 69) << daemon->stderr_text();
  EXPECT_TRUE(contains(daemon->stderr_text(), database_.string())) << daemon->stderr_text();
  EXPECT_TRUE(contains(daemon->stderr_text(), "cannot write to the database directory")) << daemon->stderr_text();
  EXPECT_TRUE(contains(daemon->stderr_text(), "Read-only file system")) << daemon->stderr_text();
  EXPECT_TRUE(fs::exists(incoming_ / "second.zip"));
  EXPECT_EQ(api_->files().size(), 1u);
}

TEST_F(DaemonTest, FullDiskForTheDatabaseLosesNothing) {
  const auto mounted = ScopedMount::tmpfs(dir_ / "state", "512k");
  auto daemon = start_ready_daemon();
  drop("before.zip", 1000);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 1); }, 30s)) << daemon->stderr_text();

  fill_filesystem(dir_ / "state" / "filler");
  constexpr int kDuringFull = 5;
  for (int i = 0; i < kDuringFull; ++i) {
    drop("while-full-" + std::to_string(i) + ".zip", static_cast<std::size_t>(1000 + 10 * i));
  }
  ASSERT_TRUE(wait_until([&] { return contains(daemon->stderr_text(), "database or disk is full"); }, 20s))
      << daemon->stderr_text();
  // Full for a while: the store retries every 50 ms, and says so once, not 20 times a second.
  const auto full_since = std::chrono::steady_clock::now();
  (void)wait_until([] { return false; }, 3s);
  EXPECT_TRUE(daemon->running());
  EXPECT_EQ(count_of(daemon->stderr_text(), "database or disk is full"), 1u) << daemon->stderr_text();
  EXPECT_LT(std::chrono::steady_clock::now() - full_since, 30s);

  fs::remove(dir_ / "state" / "filler");
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 1 + kDuringFull); }, 60s))
      << daemon->stderr_text();
  EXPECT_TRUE(contains(daemon->stderr_text(), "job store: writing again after")) << daemon->stderr_text();
  for (int i = 0; i < kDuringFull; ++i) {
    const std::string name = "while-full-" + std::to_string(i) + ".zip";
    EXPECT_TRUE(received(*api_, name)) << name;
    EXPECT_TRUE(eventually_exists(incoming_ / "done" / name)) << name;
  }
  EXPECT_TRUE(daemon->running());
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

// docs/files.md: exit within 10 s, also when nothing can be committed. Not a clean stop (exit 1),
// and the next start loses nothing.
TEST_F(DaemonTest, SigtermWhileTheDatabaseDiskIsFullExitsInTimeAndLosesNothing) {
  const auto mounted = ScopedMount::tmpfs(dir_ / "state", "512k");
  auto daemon = start_ready_daemon();
  fill_filesystem(dir_ / "state" / "filler");
  drop("stuck.zip", 1000);
  ASSERT_TRUE(wait_until([&] { return contains(daemon->stderr_text(), "database or disk is full"); }, 20s))
      << daemon->stderr_text();
  const auto stop_started = std::chrono::steady_clock::now();
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 1) << daemon->stderr_text();
  EXPECT_LT(std::chrono::steady_clock::now() - stop_started, 10s);
  EXPECT_TRUE(contains(daemon->stderr_text(), "operations that cannot be written")) << daemon->stderr_text();
  EXPECT_TRUE(fs::exists(incoming_ / "stuck.zip"));

  fs::remove(dir_ / "state" / "filler");
  auto again = start_daemon();
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 1); }, 30s)) << again->stderr_text();
  EXPECT_TRUE(received(*api_, "stuck.zip"));
  again->signal(SIGTERM);
  EXPECT_EQ(again->wait(10s), 0);
}

}  // namespace
}  // namespace modeldrop::test
