// In-doubt attempts through the real modeldropd and the fake: when the server stored the file
// but its answer was lost, the next attempt finds that copy in GET /v1/files and adopts it,
// so the server keeps exactly one copy; a listing that fails falls back to sending; two jobs
// of the same name and size never take each other's file.
#include "daemon_fixture.hpp"

#include "support/pseudo_random_file.hpp"

#include <csignal>

namespace modeldrop::test {
namespace {

using namespace std::chrono_literals;
using store::AttemptOutcome;
using store::JobState;

constexpr std::size_t kSize = 256 * 1024;

Fault fault(FaultKind kind, const std::function<void(Fault&)>& adjust = nullptr) {
  Fault f;
  f.kind = kind;
  if (adjust) adjust(f);
  return f;
}

// The server stores the upload, then the answer is lost in the way `kind` says.
Fault stored_then(FaultKind kind) {
  return fault(kind, [](Fault& f) {
    f.store_first = true;
    f.stall_for = 30s;
  });
}

class InDoubtTest : public DaemonTest {
 protected:
  // The fixture's config with a short idle timeout, so a silent server is noticed within a second.
  void use_short_idle_timeout() {
    std::string text = config_text();
    const std::string from = "idle_timeout: 10s";
    text.replace(text.find(from), from.size(), "idle_timeout: 1s");
    dir_.write("modeldrop.yaml", text);
  }

  // An archive with its own content under `name` in `dir` (default: the drop directory).
  std::filesystem::path drop_distinct(const std::string& name, std::uint64_t seed,
                                      const std::filesystem::path& dir = {}) {
    const auto target = dir.empty() ? incoming_ : dir;
    std::filesystem::create_directories(target);
    const auto temp = target / (".part-" + std::to_string(seed));
    write_pseudo_random_file(temp, kSize, seed);
    contents_[(target / name).string()] = sha256_of(temp);
    std::filesystem::rename(temp, target / name);
    return target / name;
  }

  // Every job names a stored copy of its own bytes (never another archive's).
  void expect_each_job_holds_its_own_content() {
    const auto files = api_->files();
    for (const auto& job : jobs()) {
      ASSERT_TRUE(job.file_id) << job.path;
      const auto stored = std::find_if(files.begin(), files.end(), [&](const auto& f) { return f.id == *job.file_id; });
      ASSERT_NE(stored, files.end()) << *job.file_id;
      EXPECT_EQ(stored->sha256, contents_.at(job.path.string())) << job.path << " holds another archive's copy";
    }
  }

  store::JobWithAttempts wait_for_success(std::size_t jobs_expected = 1, std::chrono::seconds bound = 60s) {
    EXPECT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, jobs_expected); }, bound))
        << (daemon_ ? daemon_->stderr_text() : "");
    const auto all = jobs();
    EXPECT_FALSE(all.empty());
    return job_with_attempts(database_, all.empty() ? 0 : all.back().id).value_or(store::JobWithAttempts{});
  }

  std::size_t uploads_sent() const {
    std::size_t n = 0;
    for (const auto& r : api_->requests()) n += r.target.starts_with("/v0/models/upload") ? 1U : 0U;
    return n;
  }

  // The job ended with the one copy the fake holds, after an in-doubt attempt and a reconciled one.
  void expect_adopted_the_one_copy(const store::JobWithAttempts& j) {
    const auto files = api_->files();
    ASSERT_EQ(files.size(), 1U) << "one copy on the server";
    EXPECT_EQ(j.job.state, JobState::succeeded);
    EXPECT_EQ(j.job.file_id, files[0].id);
    EXPECT_EQ(j.job.file_status, "uploaded");
    ASSERT_EQ(j.attempts.size(), 2U);
    EXPECT_EQ(j.attempts[1].outcome, AttemptOutcome::reconciled);
    EXPECT_EQ(j.attempts[1].http_status, 200);
    EXPECT_EQ(uploads_sent(), 1U) << "adopted, not sent again";
  }

  void stop_daemon() {
    if (!daemon_) return;
    daemon_->signal(SIGTERM);
    EXPECT_EQ(daemon_->wait(10s), 0);
    daemon_.reset();
  }

  void TearDown() override { stop_daemon(); }

  std::unique_ptr<ChildProcess> daemon_;
  std::map<std::string, std::string> contents_;
};

TEST_F(InDoubtTest, ResetAfterTheWholeBodyIsReconciledWithTheStoredCopy) {
  api_->push_fault(stored_then(FaultKind::reset_after_body));
  daemon_ = start_ready_daemon();
  drop("model.zip", kSize);
  const auto j = wait_for_success();
  expect_adopted_the_one_copy(j);
  EXPECT_EQ(j.attempts[0].outcome, AttemptOutcome::retry);
}

TEST_F(InDoubtTest, IdleTimeoutAfterTheWholeBodyIsReconciledWithTheStoredCopy) {
  use_short_idle_timeout();
  api_->push_fault(fault(FaultKind::slow, [](Fault& f) { f.stall_for = 20s; }));
  daemon_ = start_ready_daemon();
  drop("model.zip", kSize);
  const auto j = wait_for_success();
  expect_adopted_the_one_copy(j);
  EXPECT_NE(j.attempts[0].error.value_or("").find("no bytes moved"), std::string::npos);
}

TEST_F(InDoubtTest, Garbage200IsReconciledWithTheStoredCopy) {
  api_->push_fault(fault(FaultKind::malformed_json));
  daemon_ = start_ready_daemon();
  drop("model.zip", kSize);
  const auto j = wait_for_success();
  expect_adopted_the_one_copy(j);
  EXPECT_NE(j.attempts[0].error.value_or("").find("malformed response"), std::string::npos);
}

TEST_F(InDoubtTest, SigkillAfterTheServerStoredTheFileIsReconciledAtTheNextStart) {
  api_->push_fault(fault(FaultKind::slow, [](Fault& f) { f.stall_for = 30s; }));
  daemon_ = start_ready_daemon();
  drop("model.zip", kSize);
  ASSERT_TRUE(wait_until([&] { return api_->files().size() == 1; }, 30s)) << daemon_->stderr_text();
  daemon_->signal(SIGKILL);
  daemon_->wait(10s);
  daemon_ = start_ready_daemon();
  const auto j = wait_for_success();
  expect_adopted_the_one_copy(j);
  EXPECT_EQ(j.attempts[0].outcome, AttemptOutcome::aborted);
}

// The hash the lost attempt computed beside its send died with it (the kill came before its
// commit; here the column is cleared while the daemon is down, as a user's sqlite3 could):
// the adopted job still gets its file's sha256 before the file is let go.
TEST_F(InDoubtTest, AnAdoptedJobWhoseHashWasLostIsHashedBeforeItsFileIsLetGo) {
  api_->push_fault(fault(FaultKind::slow, [](Fault& f) { f.stall_for = 30s; }));
  daemon_ = start_ready_daemon();
  const auto archive = drop_distinct("model.zip", 41);
  ASSERT_TRUE(wait_until([&] { return api_->files().size() == 1; }, 30s)) << daemon_->stderr_text();
  daemon_->signal(SIGKILL);
  daemon_->wait(10s);
  {
    auto db = store::Connection::open(database_, store::OpenMode::existing_only, 1000ms);
    ASSERT_TRUE(db) << db.error().message;
    auto cleared = db->execute("UPDATE jobs SET sha256 = NULL");
    ASSERT_TRUE(cleared) << cleared.error().message;
  }
  daemon_ = start_ready_daemon();
  const auto j = wait_for_success();
  expect_adopted_the_one_copy(j);
  EXPECT_EQ(j.job.sha256, contents_.at(archive.string()));
  expect_each_job_holds_its_own_content();
}

struct FailedListing {
  std::string name;
  Fault fault;
  friend void PrintTo(const FailedListing& c, std::ostream* out) { *out << c.name; }
};

class FailedListingTest : public InDoubtTest, public ::testing::WithParamInterface<FailedListing> {};

TEST_P(FailedListingTest, FallsBackToSendingAgain) {
  use_short_idle_timeout();
  api_->push_fault(stored_then(FaultKind::reset_after_body));
  api_->push_list_fault(GetParam().fault);
  daemon_ = start_ready_daemon();
  drop("model.zip", kSize);
  const auto j = wait_for_success();
  const auto files = api_->files();
  ASSERT_EQ(files.size(), 2U) << "the listing failed: the file was sent again";
  EXPECT_EQ(j.job.file_id, files[1].id);
  EXPECT_EQ(uploads_sent(), 2U);
  ASSERT_EQ(j.attempts.size(), 2U);
  EXPECT_EQ(j.attempts[1].outcome, AttemptOutcome::succeeded);
}

INSTANTIATE_TEST_SUITE_P(
    Listing, FailedListingTest,
    ::testing::Values(FailedListing{"Http500", fault(FaultKind::status, [](Fault& f) { f.status = 500; })},
                      FailedListing{"Http404", fault(FaultKind::status, [](Fault& f) { f.status = 404; })},
                      FailedListing{"Timeout", fault(FaultKind::stall, [](Fault& f) { f.stall_for = 20s; })},
                      FailedListing{"NotAList", fault(FaultKind::malformed_json)}),
    [](const auto& p) { return p.param.name; });

TEST_F(InDoubtTest, TheListingIsFollowedOverSeveralPages) {
  // Other clients upload 25 files right after ours was stored: with 4 files a page, our copy is
  // on the seventh page.
  api_->set_list_page_cap(4);
  api_->on_file_stored([this](const ReceivedFile& stored) {
    if (stored.filename != "model.zip") return;
    for (int i = 0; i < 25; ++i) {
      ReceivedFile other;
      other.filename = "other-" + std::to_string(i) + ".zip";
      other.bytes = kSize;
      other.created_at = stored.created_at;
      api_->add_file(other);
    }
  });
  api_->push_fault(stored_then(FaultKind::reset_after_body));
  daemon_ = start_ready_daemon();
  drop("model.zip", kSize);
  const auto j = wait_for_success();
  const auto files = api_->files();
  ASSERT_EQ(files.size(), 26U);
  EXPECT_EQ(j.job.file_id, files[0].id);
  EXPECT_EQ(j.attempts.back().outcome, AttemptOutcome::reconciled);
  std::size_t listings = 0;
  for (const auto& r : api_->requests()) listings += r.target.starts_with("/v1/files?") ? 1U : 0U;
  EXPECT_EQ(listings, 7U);
  EXPECT_EQ(uploads_sent(), 1U);
}

// Two archives of the same name and size but different content, both in doubt at once: neither
// may take the other's copy, so both are sent again and each job names a copy of its own bytes.
TEST_F(InDoubtTest, TwoSameNameSameSizeArchivesInDoubtEachGetTheirOwnFile) {
  config_options_.incoming_watch = "    recursive: true\n";
  write_config();
  api_->push_fault(stored_then(FaultKind::reset_after_body));
  api_->push_fault(stored_then(FaultKind::reset_after_body));
  daemon_ = start_ready_daemon();
  drop_distinct("model.zip", 1, incoming_ / "a");
  drop_distinct("model.zip", 2, incoming_ / "b");
  wait_for_success(2);
  expect_each_job_holds_its_own_content();
}

// B's upload is stored while its answer is still on the way when A, in doubt with nothing
// stored, lists the files: A must not adopt B's copy.
TEST_F(InDoubtTest, ACopyWhoseAnswerIsStillInFlightIsNeverAdoptedByAnotherJob) {
  config_options_.incoming_watch = "    recursive: true\n";
  write_config();
  api_->push_fault(fault(FaultKind::reset_after_body));                          // A: in doubt, nothing stored
  api_->push_fault(fault(FaultKind::slow, [](Fault& f) { f.stall_for = 8s; }));  // B: stored, answer late
  // A's listing is answered 3 s after it was asked: B's copy is stored by then, its answer not.
  api_->push_list_fault(fault(FaultKind::slow, [](Fault& f) { f.stall_for = 3s; }));
  daemon_ = start_ready_daemon();
  drop_distinct("model.zip", 1, incoming_ / "a");
  ASSERT_TRUE(wait_until([&] { return !api_->requests().empty(); }, 30s)) << daemon_->stderr_text();
  drop_distinct("model.zip", 2, incoming_ / "b");
  wait_for_success(2);
  expect_each_job_holds_its_own_content();
  EXPECT_EQ(api_->files().size(), 2U) << "A sent again, B's copy stayed B's";
  EXPECT_EQ(uploads_sent(), 3U);
}

}  // namespace
}  // namespace modeldrop::test
