// Every scriptable fault of the fake API, observed from the client side and in its records.

#include "fake_api_fixture.hpp"

#include <algorithm>
#include <thread>

namespace modeldrop::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class FakeApiFaultTest : public FakeApiTest {
 protected:
  void SetUp() override { start(); }

  // An upload request (head and body) for `content`.
  static std::string upload_request(const std::string& content, std::string& body) {
    body = multipart_body("fault-boundary", "\"f.zip\"", content);
    return upload_head("fault-boundary", body.size(), "test-token") + body;
  }
};

TEST_F(FakeApiFaultTest, StatusFaultAnswersWithItsHeadersThenTheQueueMovesOn) {
  api().push_fault({.kind = FaultKind::status, .status = 429, .headers = {{"Retry-After", "3"}}});
  const auto file = temp_.write("a.zip", test_content(200 * 1024, 1));
  const auto limited = upload(file, "a.zip", {"-D", "-"});
  EXPECT_EQ(limited.status, 429);
  EXPECT_NE(limited.body.find("etry-After: 3"), std::string::npos) << limited.body;
  EXPECT_NE(limited.body.find(R"({"detail":"Too Many Requests"})"), std::string::npos);
  EXPECT_EQ(upload(file, "a.zip").status, 200);

  const auto requests = api().requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].fault, FaultKind::status);
  EXPECT_EQ(requests[0].status, 429);
  EXPECT_GT(requests[0].body_bytes_read, 200u * 1024);  // the whole body was read first
  EXPECT_EQ(requests[1].fault, FaultKind::none);
  EXPECT_EQ(api().files().size(), 1u);
}

TEST_F(FakeApiFaultTest, FaultsApplyOnlyToUploadsAndTheDefaultWhenTheQueueIsEmpty) {
  api().set_default_fault({.kind = FaultKind::status, .status = 503, .body = R"({"detail":"maintenance"})"});
  api().push_fault({.kind = FaultKind::status, .status = 500});
  EXPECT_EQ(curl_answer({"-H", "Authorization: Bearer test-token", url("/v1/files")}).status, 200);
  const auto file = temp_.write("a.zip", "x");
  EXPECT_EQ(upload(file, "a.zip").status, 500);
  const auto first_default = upload(file, "a.zip");
  EXPECT_EQ(first_default.status, 503);
  EXPECT_EQ(first_default.body, R"({"detail":"maintenance"})");
  EXPECT_EQ(upload(file, "a.zip").status, 503);
  api().set_default_fault({});
  EXPECT_EQ(upload(file, "a.zip").status, 200);
}

TEST_F(FakeApiFaultTest, EarlyStatusIsReadableBeforeAnyBodyIsSent) {
  api().push_fault({.kind = FaultKind::early_status, .status = 413, .linger_for = 300ms});
  auto connection = client();
  ASSERT_TRUE(connection->write(upload_head("b", 64ull << 20, "test-token")));
  const auto response = connection->read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 413);
  EXPECT_EQ(response->header("connection"), "close");
  const auto requests = api().requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].status, 413);
  EXPECT_EQ(requests[0].body_bytes_read, 0u);
  // The server keeps reading for linger_for, then closes although the body is incomplete.
  // (The write itself may already meet the close when this thread was slow.)
  const auto end = connection->write(std::string(256 * 1024, 'b')) ? connection->wait_for_close() : connection->end();
  EXPECT_TRUE(end == ConnectionEnd::eof || end == ConnectionEnd::reset);
}

TEST_F(FakeApiFaultTest, EarlyStatusCanBeReadAfterWritingWhileTheServerLingers) {
  api().push_fault({.kind = FaultKind::early_status, .status = 401, .body = R"({"detail":"early"})"});
  std::string body;
  const std::string request = upload_request(test_content(4 * 1024 * 1024, 2), body);
  auto connection = client();
  ASSERT_TRUE(connection->write(request));  // the lingering server drains it
  const auto response = connection->read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 401);
  EXPECT_EQ(response->body, R"({"detail":"early"})");
  EXPECT_TRUE(api().files().empty());
}

TEST_F(FakeApiFaultTest, ResetAfterBytesSendsARstOnceThatMuchBodyWasRead) {
  api().push_fault({.kind = FaultKind::reset_after_bytes, .after_bytes = 65536});
  std::string body;
  const std::string request = upload_request(test_content(8 * 1024 * 1024, 3), body);
  auto connection = client();
  const bool written = connection->write(request);
  if (written) {
    EXPECT_FALSE(connection->read_response());
  }
  EXPECT_EQ(connection->end(), ConnectionEnd::reset) << "errno " << connection->last_errno();
  const auto requests = api().requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].fault, FaultKind::reset_after_bytes);
  EXPECT_EQ(requests[0].body_bytes_read, 65536u);
  EXPECT_EQ(requests[0].status, 0);
  EXPECT_TRUE(api().files().empty());
}

TEST_F(FakeApiFaultTest, ResetAfterBodyReadsEverythingThenResets) {
  api().push_fault({.kind = FaultKind::reset_after_body});
  std::string body;
  const std::string request = upload_request(test_content(1024 * 1024, 4), body);
  auto connection = client();
  ASSERT_TRUE(connection->write(request));
  EXPECT_FALSE(connection->read_response());
  EXPECT_EQ(connection->end(), ConnectionEnd::reset);
  const auto requests = api().requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].body_bytes_read, body.size());
  EXPECT_EQ(requests[0].status, 0);
}

TEST_F(FakeApiFaultTest, StallSaysNothingThenCloses) {
  api().push_fault({.kind = FaultKind::stall, .stall_for = 800ms});
  std::string body;
  const std::string request = upload_request("small", body);
  auto connection = client();
  const auto started = Clock::now();
  ASSERT_TRUE(connection->write(request));
  connection->set_timeout(200ms);
  EXPECT_FALSE(connection->read_response());
  EXPECT_EQ(connection->end(), ConnectionEnd::timed_out);
  const auto requests = api().requests();  // recorded while the stall goes on
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].fault, FaultKind::stall);
  EXPECT_EQ(requests[0].status, 0);
  EXPECT_EQ(requests[0].body_bytes_read, body.size());
  connection->set_timeout(10s);
  const auto end = connection->wait_for_close();
  EXPECT_TRUE(end == ConnectionEnd::eof || end == ConnectionEnd::reset);
  EXPECT_GE(Clock::now() - started, 700ms);
}

TEST_F(FakeApiFaultTest, ThrottleReadsAtTheGivenRateThenAnswers) {
  api().push_fault({.kind = FaultKind::throttle, .bytes_per_second = 512 * 1024});
  const std::string content = test_content(512 * 1024, 5);
  std::string body;
  const std::string request = upload_request(content, body);
  auto connection = client();
  const auto started = Clock::now();
  ASSERT_TRUE(connection->write(request));
  const auto response = connection->read_response();
  const auto elapsed = Clock::now() - started;
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_GE(elapsed, 900ms);  // 512 KiB at 512 KiB/s; no upper bound (loaded machines)
  ASSERT_EQ(api().files().size(), 1u);
  EXPECT_EQ(api().files()[0].sha256, sha256_hex(content));
}

TEST_F(FakeApiFaultTest, MalformedJsonIsA200ThatIsNotAnOpenAIFile) {
  api().push_fault({.kind = FaultKind::malformed_json});
  const auto file = temp_.write("a.zip", "content");
  const auto answer = upload(file, "a.zip");
  EXPECT_EQ(answer.status, 200);
  boost::json::error_code ec;
  (void)boost::json::parse(answer.body, ec);
  EXPECT_TRUE(ec) << answer.body;
  EXPECT_EQ(api().files().size(), 1u);  // stored: only the answer was mangled
}

TEST_F(FakeApiFaultTest, OversizedResponseIsValidJsonOfTheGivenSize) {
  api().push_fault({.kind = FaultKind::oversized_response, .oversized_bytes = 1024 * 1024});
  const auto file = temp_.write("a.zip", "content");
  const auto answer = upload(file, "a.zip");
  EXPECT_EQ(answer.status, 200);
  EXPECT_EQ(answer.body.size(), 1024u * 1024);
  const auto json = json_object(answer.body);
  ASSERT_EQ(api().files().size(), 1u);
  EXPECT_EQ(std::string(json.at("id").as_string()), api().files()[0].id);
}

TEST_F(FakeApiFaultTest, ClientVanishingMidBodyIsRecordedWithoutAnAnswer) {
  std::string body;
  const std::string request = upload_request(test_content(1024 * 1024, 6), body);
  {
    auto connection = client();
    ASSERT_TRUE(connection->write(request.substr(0, request.size() / 2)));
  }  // closed with half the body sent
  std::vector<RequestRecord> requests;
  for (int i = 0; i < 500 && requests.empty(); ++i) {
    std::this_thread::sleep_for(10ms);
    requests = api().requests();
  }
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].status, 0);
  EXPECT_GT(requests[0].body_bytes_read, 0u);
  EXPECT_LT(requests[0].body_bytes_read, body.size());
  EXPECT_TRUE(api().files().empty());
}

// Statuses of `count` small uploads sent one after another on one keep-alive connection.
std::vector<int> upload_statuses(TlsTestClient& connection, int count) {
  std::vector<int> statuses;
  for (int i = 0; i < count; ++i) {
    std::string body;
    const std::string content = test_content(1024, static_cast<unsigned>(i));
    body = multipart_body("mix-boundary", "\"m.zip\"", content);
    if (!connection.write(upload_head("mix-boundary", body.size(), "test-token") + body)) break;
    const auto response = connection.read_response();
    if (!response) break;
    statuses.push_back(response->status);
  }
  return statuses;
}

TEST_F(FakeApiFaultTest, FaultMixFailsASeededShareOfUploadsWithFaultsFromItsList) {
  const std::vector<Fault> kinds{{.kind = FaultKind::status, .status = 503},
                                 {.kind = FaultKind::status, .status = 429, .headers = {{"Retry-After", "1"}}}};
  api().set_fault_mix(0.3, kinds, 42);
  auto connection = client();
  const auto first = upload_statuses(*connection, 60);
  ASSERT_EQ(first.size(), 60u);
  const auto failed = std::count_if(first.begin(), first.end(), [](int s) { return s != 200; });
  // 30 % of 60 is 18; a seeded draw, so the bounds only guard against "never" and "always".
  EXPECT_GE(failed, 8);
  EXPECT_LE(failed, 30);
  EXPECT_GT(std::count(first.begin(), first.end(), 503), 0);
  EXPECT_GT(std::count(first.begin(), first.end(), 429), 0);

  // Every stored file is named by the request that stored it; failed ones stored nothing.
  const auto files = api().files();
  const auto requests = api().requests();
  ASSERT_EQ(requests.size(), 60u);
  EXPECT_EQ(files.size(), static_cast<std::size_t>(60 - failed));
  std::size_t file_index = 0;
  for (const auto& record : requests) {
    if (record.status == 200) {
      EXPECT_EQ(record.fault, FaultKind::none);
      ASSERT_LT(file_index, files.size());
      EXPECT_EQ(record.file_id, files[file_index++].id);
    } else {
      EXPECT_EQ(record.fault, FaultKind::status);
      EXPECT_TRUE(record.file_id.empty());
    }
  }

  // The same seed draws the same sequence again.
  api().set_fault_mix(0.3, kinds, 42);
  EXPECT_EQ(upload_statuses(*connection, 60), first);
  // Queued faults come first; probability 0 turns the mix off.
  api().set_fault_mix(1.0, kinds, 7);
  api().push_fault({.kind = FaultKind::status, .status = 418});
  const auto queued_then_mix = upload_statuses(*connection, 3);
  ASSERT_EQ(queued_then_mix.size(), 3u);
  EXPECT_EQ(queued_then_mix[0], 418);
  EXPECT_NE(queued_then_mix[1], 200);
  EXPECT_NE(queued_then_mix[2], 200);
  api().set_fault_mix(0.0, kinds, 7);
  EXPECT_EQ(upload_statuses(*connection, 5), std::vector<int>(5, 200));
}

}  // namespace
}  // namespace modeldrop::test
