// The upload transport against the fake API over real TLS on 127.0.0.1 (docs/http.md): what the
// server receives, keep-alive, faults, certificates, the proxy, the file checks, cancel, the
// bandwidth cap and flat memory.
#include "upload/upload_pool.hpp"
#include "upload/source_file.hpp"

#include "integration/upload/connect_proxy.hpp"
#include "integration/upload/draining_server.hpp"
#include "support/fake_api/fake_api.hpp"
#include "support/run_process.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <chrono>
#include <fstream>
#include <random>

namespace modeldrop::upload {
namespace {

using namespace std::chrono_literals;
using test::FakeApi;
using test::FakeApiOptions;
using test::Fault;
using test::FaultKind;
using test::TempDir;
using test::TestPki;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kMiB = 1024 * 1024;

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned i = 0; i < length; ++i) {
    static constexpr char kHex[] = "0123456789abcdef";
    hex += kHex[digest[i] >> 4U];
    hex += kHex[digest[i] & 0xFU];
  }
  return hex;
}

std::string random_bytes(std::size_t size, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; i += 8) {
    const std::uint64_t word = rng();
    std::memcpy(data.data() + i, &word, std::min<std::size_t>(8, size - i));
  }
  return data;
}

// A fault with the fields a test names; the rest keep the fake's defaults.
Fault fault(FaultKind kind, const std::function<void(Fault&)>& adjust = nullptr) {
  Fault f;
  f.kind = kind;
  if (adjust) adjust(f);
  return f;
}

// The shared PKI: generating it takes a few OpenSSL runs, so once per test program.
class UploadPoolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_dir_ = new TempDir();
    pki_ = new TestPki(TestPki::generate(pki_dir_->path()));
  }
  static void TearDownTestSuite() {
    delete pki_;
    delete pki_dir_;
  }

  FakeApi& start_fake(FakeApiOptions options = {}) {
    if (options.cert_file.empty()) {
      options.cert_file = pki_->server_cert;
      options.key_file = pki_->server_key;
    }
    fake_ = std::make_unique<FakeApi>(options);
    return *fake_;
  }

  PoolSettings settings() const {
    PoolSettings settings;
    settings.api.base_url = fake_ ? fake_->base_url() : "https://127.0.0.1:1";
    settings.api.ca_file = pki_->ca_cert;
    settings.api.connect_timeout = 5s;
    settings.api.idle_timeout = 10s;
    settings.token = "test-token";
    settings.sessions = 4;
    settings.proxy_environment = {};  // hermetic: whatever the machine's HTTPS_PROXY says
    return settings;
  }

  std::unique_ptr<UploadPool> make_pool(const PoolSettings& pool_settings) {
    auto pool = UploadPool::create(io_, pool_settings);
    EXPECT_TRUE(pool) << (pool ? "" : pool.error().message);
    return pool ? std::move(*pool) : nullptr;
  }

  std::filesystem::path write_file(const std::string& name, const std::string& content) {
    return dir_.write(name, content);
  }

  std::filesystem::path sparse_file(const std::string& name, std::uint64_t size) {
    const auto path = dir_ / name;
    { std::ofstream create(path); }
    std::filesystem::resize_file(path, size);
    return path;
  }

  static UploadRequest request_for(const std::filesystem::path& path, std::int64_t job_id = 1) {
    UploadRequest request;
    request.job_id = job_id;
    request.path = path;
    request.filename = path.filename().string();
    auto identity = identify_file(path);
    EXPECT_TRUE(identity);
    if (identity) request.expected = *identity;
    return request;
  }

  // Runs the loop until `done` or the bound; every wait in these tests is bounded.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds bound = 60s) {
    const auto until = Clock::now() + bound;
    io_.restart();
    while (!done() && Clock::now() < until) io_.run_one_for(50ms);
    return done();
  }

  UploadResult upload(UploadPool& pool, UploadRequest request, std::function<void(std::uint64_t)> progress = nullptr) {
    std::optional<UploadResult> result;
    pool.start(std::move(request), std::move(progress), [&](UploadResult r) { result = std::move(r); });
    EXPECT_TRUE(run_until([&] { return result.has_value(); })) << "the upload did not finish";
    return result.value_or(UploadResult{});
  }

  ApiAnswer call(UploadPool& pool, ApiRequest request) {
    std::optional<ApiAnswer> answer;
    pool.request(std::move(request), [&](ApiAnswer a) { answer = std::move(a); });
    EXPECT_TRUE(run_until([&] { return answer.has_value(); }));
    return answer.value_or(ApiAnswer{});
  }

  static ApiRequest newest_file() { return ApiRequest::get("/v1/files", {{"limit", "1"}}); }
  static ApiRequest with_token(ApiRequest request, std::string token) {
    request.token = std::move(token);
    return request;
  }

  static inline TempDir* pki_dir_ = nullptr;
  static inline TestPki* pki_ = nullptr;
  TempDir dir_;
  boost::asio::io_context io_{1};
  std::unique_ptr<FakeApi> fake_;
};

TEST_F(UploadPoolTest, UploadIsRecordedByteExact) {
  auto& fake = start_fake();
  const std::string content = random_bytes(5 * kMiB + 123, 1);
  const auto path = write_file("model.tar.gz", content);
  auto pool = make_pool(settings());
  auto request = request_for(path);
  request.project_id = "proj 1&x";
  const UploadResult result = upload(*pool, request);

  ASSERT_EQ(result.error, AttemptError::none) << result.error_message;
  EXPECT_TRUE(result.accepted_2xx());
  EXPECT_EQ(result.http_status, 200);
  EXPECT_TRUE(result.body_complete);
  EXPECT_FALSE(result.answered_early);
  EXPECT_EQ(result.bytes_sent, content.size());
  EXPECT_EQ(result.sha256, sha256_hex(content));
  EXPECT_EQ(result.file_after, request.expected);
  ASSERT_NE(result.header("content-type"), nullptr);
  EXPECT_EQ(*result.header("content-type"), "application/json");

  const auto files = fake.files();
  ASSERT_EQ(files.size(), 1U);
  EXPECT_EQ(files[0].sha256, sha256_hex(content));
  EXPECT_EQ(files[0].bytes, content.size());
  EXPECT_EQ(files[0].filename, "model.tar.gz");
  EXPECT_EQ(files[0].project_id, "proj 1&x");
  EXPECT_EQ(files[0].content_type, "application/gzip");
  const auto body = boost::json::parse(result.body).as_object();
  EXPECT_EQ(body.at("id").as_string(), files[0].id);
  EXPECT_EQ(body.at("bytes").as_int64(), static_cast<std::int64_t>(content.size()));

  const auto requests = fake.requests();
  ASSERT_EQ(requests.size(), 1U);
  EXPECT_EQ(requests[0].authorization, "Bearer test-token");
  EXPECT_EQ(requests[0].user_agent, std::string("modeldrop/") + kVersion);
}

TEST_F(UploadPoolTest, KeepAliveReusesOneConnection) {
  auto& fake = start_fake();
  auto pool = make_pool(settings());
  for (int i = 0; i < 3; ++i) {
    const auto path = write_file("m" + std::to_string(i) + ".zip", random_bytes(100'000, static_cast<unsigned>(i)));
    const UploadResult result = upload(*pool, request_for(path, i + 1));
    ASSERT_TRUE(result.accepted_2xx()) << result.error_message;
    EXPECT_EQ(result.reused_connection, i > 0);
    EXPECT_EQ(pool->idle_connections(), 1U);
  }
  EXPECT_EQ(fake.connections_accepted(), 1U);
  const auto requests = fake.requests();
  ASSERT_EQ(requests.size(), 3U);
  EXPECT_EQ(requests[0].connection_id, requests[2].connection_id);
  const ApiAnswer listed = call(*pool, newest_file());
  EXPECT_EQ(listed.status(), 200);
  ASSERT_TRUE(listed.ok()) << listed.reason;
  EXPECT_TRUE(listed.exchange.reused_connection);
  EXPECT_EQ(fake.connections_accepted(), 1U);
  const auto list = listed.json.as_object();
  ASSERT_EQ(list.at("data").as_array().size(), 1U);
  EXPECT_EQ(list.at("data").as_array()[0].as_object().at("filename").as_string(), "m2.zip");
}

TEST_F(UploadPoolTest, JsonCallsGoThroughTheUploadsConnectionAndTheObserverSeesEveryExchange) {
  auto& fake = start_fake();
  auto pool = make_pool(settings());
  std::vector<std::string> seen;
  pool->set_exchange_observer([&](const ExchangeSeen& e) {
    seen.push_back(std::string(e.method) + " " + std::string(e.path) + " " + std::to_string(e.http_status.value_or(0)));
  });
  ASSERT_TRUE(upload(*pool, request_for(write_file("a.zip", "abc"))).accepted_2xx());
  const ApiAnswer listed = call(*pool, ApiRequest::get("/v1/files", {{"limit", "100"}, {"ai_project_id", "p 1"}}));
  EXPECT_TRUE(listed.ok()) << listed.reason;
  EXPECT_TRUE(listed.exchange.reused_connection);
  const ApiAnswer posted = call(*pool, ApiRequest::post("/_fake/faults", boost::json::array{}));
  ASSERT_TRUE(posted.ok()) << posted.reason;
  EXPECT_EQ(posted.json.at("queued").as_int64(), 0);
  const ApiAnswer missing = call(*pool, ApiRequest::get("/v1/files/file-nope"));
  EXPECT_EQ(missing.verdict, Verdict::failed);
  EXPECT_EQ(missing.reason, "HTTP 404: File not found");

  EXPECT_EQ(seen, (std::vector<std::string>{"POST /v0/models/upload 200", "GET /v1/files 200", "POST /_fake/faults 200",
                                            "GET /v1/files/file-nope 404"}));
  const auto requests = fake.requests();
  ASSERT_EQ(requests.size(), 3U);  // /_fake/ requests are not recorded
  EXPECT_EQ(requests[1].target, "/v1/files?limit=100&ai_project_id=p%201");
  EXPECT_EQ(fake.connections_accepted(), 1U);
}

TEST_F(UploadPoolTest, APerRequestTokenReplacesThePoolsToken) {
  auto& fake = start_fake();
  auto pool = make_pool(settings());
  const ApiAnswer refused = call(*pool, with_token(ApiRequest::get("/v1/files"), "another-token"));
  EXPECT_EQ(refused.status(), 401);
  EXPECT_EQ(refused.verdict, Verdict::hold_auth);
  auto request = request_for(write_file("a.zip", "abc"));
  request.token = "another-token";
  EXPECT_EQ(upload(*pool, request).http_status, 401);
  fake.set_token("another-token");
  EXPECT_TRUE(call(*pool, with_token(ApiRequest::get("/v1/files"), "another-token")).ok());
  const ApiAnswer unsendable = call(*pool, with_token(ApiRequest::get("/v1/files"), "line\nbreak"));
  EXPECT_EQ(unsendable.verdict, Verdict::failed);
  EXPECT_EQ(unsendable.exchange.error, AttemptError::invalid_request);
}

TEST_F(UploadPoolTest, ReconnectsCleanlyAfterTheServerClosedAnIdleConnection) {
  start_fake();
  const std::uint16_t port = fake_->port();
  auto pool = make_pool(settings());
  const auto path = write_file("a.zip", "first");
  ASSERT_TRUE(upload(*pool, request_for(path)).accepted_2xx());
  ASSERT_EQ(pool->idle_connections(), 1U);

  fake_.reset();  // the server goes away, closing the kept-alive connection
  FakeApiOptions options;
  options.port = port;
  auto& second = start_fake(options);
  const UploadResult result = upload(*pool, request_for(path, 2));
  ASSERT_TRUE(result.accepted_2xx()) << result.error_message;
  EXPECT_FALSE(result.reused_connection);
  EXPECT_EQ(second.files().size(), 1U);
}

TEST_F(UploadPoolTest, ZeroByteFile) {
  auto& fake = start_fake();
  auto pool = make_pool(settings());
  const UploadResult result = upload(*pool, request_for(write_file("empty.zip", "")));
  ASSERT_TRUE(result.accepted_2xx()) << result.error_message;
  EXPECT_EQ(result.bytes_sent, 0U);
  EXPECT_EQ(result.sha256, sha256_hex(""));
  ASSERT_EQ(fake.files().size(), 1U);
  EXPECT_EQ(fake.files()[0].bytes, 0U);
  EXPECT_EQ(fake.files()[0].sha256, sha256_hex(""));
}

TEST_F(UploadPoolTest, FilenamesAreQuotedSoTheServerDecodesThemExactly) {
  auto& fake = start_fake();
  auto pool = make_pool(settings());
  const std::vector<std::pair<std::string, std::string>> names = {
      {"with space.zip", "with space.zip"},   {"quote\"d.zip", "quote\"d.zip"}, {"back\\slash.zip", "back\\slash.zip"},
      {"new\nline.zip", "new%0Aline.zip"},  // control characters cannot go into a header
      {"модель-😀.tar.gz", "модель-😀.tar.gz"},
  };
  std::int64_t job = 0;
  for (const auto& [on_disk, _] : names) {
    const UploadResult result = upload(*pool, request_for(write_file(on_disk, on_disk), ++job));
    ASSERT_TRUE(result.accepted_2xx()) << on_disk << ": " << result.error_message;
  }
  const auto files = fake.files();
  ASSERT_EQ(files.size(), names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(files[i].filename, names[i].second);
    EXPECT_EQ(files[i].sha256, sha256_hex(names[i].first));
  }
}

TEST_F(UploadPoolTest, ResetMidBodyIsAConnectionError) {
  auto& fake = start_fake();
  fake.push_fault(fault(FaultKind::reset_after_bytes, [](Fault& f) { f.after_bytes = kMiB; }));
  auto pool = make_pool(settings());
  const auto path = sparse_file("big.zip", 256 * kMiB);
  const UploadResult result = upload(*pool, request_for(path));
  EXPECT_EQ(result.error, AttemptError::connection_closed) << result.error_message;
  EXPECT_FALSE(result.http_status);
  EXPECT_FALSE(result.body_complete);
  EXPECT_LT(result.bytes_sent, 256 * kMiB);
  EXPECT_FALSE(result.sha256) << "only over the whole file";
  EXPECT_TRUE(fake.files().empty());
  EXPECT_EQ(pool->idle_connections(), 0U);
}

TEST_F(UploadPoolTest, ResetAfterTheWholeBodyLeavesTheAttemptInDoubt) {
  auto& fake = start_fake();
  fake.push_fault(fault(FaultKind::reset_after_body));
  auto pool = make_pool(settings());
  const auto path = write_file("a.zip", random_bytes(300'000, 3));
  const UploadResult result = upload(*pool, request_for(path));
  EXPECT_EQ(result.error, AttemptError::connection_closed);
  EXPECT_TRUE(result.body_complete) << "sent whole, answer lost: the case in-doubt reconciliation is for";
  EXPECT_EQ(result.bytes_sent, 300'000U);
  EXPECT_NE(result.error_message.find("without an answer"), std::string::npos) << result.error_message;
}

TEST_F(UploadPoolTest, StallIsCaughtByTheIdleTimeout) {
  auto& fake = start_fake();
  fake.push_fault(fault(FaultKind::stall, [](Fault& f) { f.stall_for = 30s; }));
  auto settings_with_idle = settings();
  settings_with_idle.api.idle_timeout = 500ms;
  auto pool = make_pool(settings_with_idle);
  const auto started = Clock::now();
  const UploadResult result = upload(*pool, request_for(write_file("a.zip", "data")));
  EXPECT_EQ(result.error, AttemptError::idle_timeout) << result.error_message;
  EXPECT_TRUE(result.body_complete);
  EXPECT_GE(Clock::now() - started, 500ms);
  EXPECT_LT(Clock::now() - started, 10s);
  EXPECT_NE(result.error_message.find("waiting for the answer"), std::string::npos) << result.error_message;
}

TEST_F(UploadPoolTest, IdleTimeoutIsAProgressDeadlineNotAWholeRequestOne) {
  auto& fake = start_fake();
  // 3 MiB paced at 2 MiB/s by the client's own cap takes 1.5 s, three times the idle timeout,
  // with bytes moving all along. (Pacing on the server side would not do: the last few MiB sit
  // in loopback socket buffers, invisible to the client, for as long as the server dawdles.)
  auto slow = settings();
  slow.api.idle_timeout = 500ms;
  slow.max_bytes_per_second = 2 * kMiB;
  auto pool = make_pool(slow);
  std::vector<std::pair<Clock::time_point, std::uint64_t>> reports;
  const auto started = Clock::now();
  const UploadResult result = upload(*pool, request_for(write_file("a.zip", random_bytes(3 * kMiB, 4))),
                                     [&](std::uint64_t sent) { reports.emplace_back(Clock::now(), sent); });
  ASSERT_TRUE(result.accepted_2xx()) << result.error_message;
  EXPECT_GE(Clock::now() - started, 1s);
  EXPECT_EQ(fake.files().size(), 1U);
  // Progress: at most every 250 ms, never backwards, never past the file.
  ASSERT_GE(reports.size(), 2U);
  for (std::size_t i = 1; i < reports.size(); ++i) {
    EXPECT_GE(reports[i].first - reports[i - 1].first, 245ms);
    EXPECT_GE(reports[i].second, reports[i - 1].second);
  }
  EXPECT_LE(reports.back().second, 3 * kMiB);
}

TEST_F(UploadPoolTest, UntrustedCertificateIsRefusedBeforeAnythingIsSent) {
  FakeApiOptions options;
  options.cert_file = pki_->untrusted_server_cert;
  options.key_file = pki_->untrusted_server_key;
  auto& fake = start_fake(options);
  auto pool = make_pool(settings());
  const UploadResult result = upload(*pool, request_for(write_file("a.zip", "data")));
  EXPECT_EQ(result.error, AttemptError::certificate_rejected) << result.error_message;
  EXPECT_FALSE(result.http_status);
  EXPECT_EQ(result.bytes_sent, 0U);
  EXPECT_EQ(result.error_message.find("test-token"), std::string::npos);
  EXPECT_TRUE(fake.requests().empty()) << "no request, so no token, reached the server";
}

TEST_F(UploadPoolTest, WrongHostNameIsRefusedBeforeAnythingIsSent) {
  FakeApiOptions options;
  options.cert_file = pki_->wrong_host_cert;
  options.key_file = pki_->wrong_host_key;
  auto& fake = start_fake(options);
  auto pool = make_pool(settings());
  const UploadResult result = upload(*pool, request_for(write_file("a.zip", "data")));
  EXPECT_EQ(result.error, AttemptError::certificate_rejected) << result.error_message;
  EXPECT_NE(result.error_message.find("not valid for 127.0.0.1"), std::string::npos) << result.error_message;
  EXPECT_TRUE(fake.requests().empty());
}

TEST_F(UploadPoolTest, HostNameWithSniIsVerified) {
  auto& fake = start_fake();
  auto by_name = settings();
  by_name.api.base_url = "https://localhost:" + std::to_string(fake.port());
  auto pool = make_pool(by_name);
  const UploadResult result = upload(*pool, request_for(write_file("a.zip", "data")));
  EXPECT_TRUE(result.accepted_2xx()) << result.error_message;
}

TEST_F(UploadPoolTest, ThroughAConnectProxy) {
  auto& fake = start_fake();
  test::ConnectProxy proxy;
  auto via_config = settings();
  via_config.api.proxy = proxy.url();
  auto pool = make_pool(via_config);
  const auto path = write_file("a.zip", random_bytes(1 * kMiB, 5));
  const UploadResult result = upload(*pool, request_for(path));
  ASSERT_TRUE(result.accepted_2xx()) << result.error_message;
  EXPECT_EQ(fake.files().size(), 1U);
  const auto connects = proxy.requests();
  ASSERT_EQ(connects.size(), 1U);
  const std::string authority = "127.0.0.1:" + std::to_string(fake.port());
  EXPECT_EQ(connects[0].rfind("CONNECT " + authority + " HTTP/1.1\r\n", 0), 0U) << connects[0];
  EXPECT_NE(connects[0].find("Host: " + authority + "\r\n"), std::string::npos);
  EXPECT_EQ(connects[0].find("test-token"), std::string::npos) << "the token travels only inside TLS";
}

TEST_F(UploadPoolTest, ProxyFromTheEnvironmentUnlessNoProxySaysOtherwise) {
  auto& fake = start_fake();
  test::ConnectProxy proxy;
  auto via_env = settings();
  via_env.proxy_environment = ProxyEnvironment{proxy.url(), "example.com"};
  auto pool = make_pool(via_env);
  ASSERT_TRUE(upload(*pool, request_for(write_file("a.zip", "a"))).accepted_2xx());
  EXPECT_EQ(proxy.requests().size(), 1U);

  auto exempt = settings();
  exempt.proxy_environment = ProxyEnvironment{proxy.url(), "localhost, 127.0.0.0/8"};
  auto direct = make_pool(exempt);
  ASSERT_TRUE(upload(*direct, request_for(write_file("b.zip", "b"), 2)).accepted_2xx());
  EXPECT_EQ(proxy.requests().size(), 1U) << "NO_PROXY: straight to the server";
  EXPECT_EQ(fake.files().size(), 2U);
}

TEST_F(UploadPoolTest, ProxyRefusalIsAProxyError) {
  auto& fake = start_fake();
  test::ConnectProxy proxy;
  proxy.refuse_with(407);
  auto via_config = settings();
  via_config.api.proxy = proxy.url();
  auto pool = make_pool(via_config);
  const UploadResult result = upload(*pool, request_for(write_file("a.zip", "a")));
  EXPECT_EQ(result.error, AttemptError::proxy_failed);
  EXPECT_NE(result.error_message.find("407"), std::string::npos) << result.error_message;
  EXPECT_TRUE(fake.requests().empty());
}

TEST_F(UploadPoolTest, Early413IsReadWhileTheBodyIsStillBeingSent) {
  auto& fake = start_fake();
  fake.push_fault(fault(FaultKind::early_status, [](Fault& f) {
    f.status = 413;
    f.body = R"({"detail":"Request Entity Too Large"})";
    f.linger_for = 20s;
  }));
  auto pool = make_pool(settings());
  const auto path = sparse_file("huge.zip", 4096 * kMiB);
  const auto started = Clock::now();
  const UploadResult result = upload(*pool, request_for(path));
  EXPECT_EQ(result.error, AttemptError::none) << result.error_message;
  EXPECT_EQ(result.http_status, 413);
  EXPECT_TRUE(result.answered_early);
  EXPECT_FALSE(result.body_complete);
  EXPECT_FALSE(result.accepted_2xx());
  EXPECT_LT(result.bytes_sent, 4096 * kMiB);
  EXPECT_NE(result.body.find("Request Entity Too Large"), std::string::npos);
  EXPECT_LT(Clock::now() - started, 15s) << "did not wait for the server to close";
  EXPECT_EQ(pool->idle_connections(), 0U);
}

TEST_F(UploadPoolTest, Early2xxCountsOnlyAfterTheWholeBodyWentOut) {
  auto& fake = start_fake();
  fake.push_fault(fault(FaultKind::early_status, [](Fault& f) {
    f.status = 200;
    f.body = R"({"id":"file-early"})";
    f.linger_for = 60s;  // keeps draining until the whole body is in
  }));
  auto pool = make_pool(settings());
  // Far more than the loopback socket buffers hold, so the answer surely comes first.
  const std::uint64_t size = 256 * kMiB;
  const UploadResult result = upload(*pool, request_for(sparse_file("a.zip", size)));
  EXPECT_EQ(result.error, AttemptError::none) << result.error_message;
  EXPECT_EQ(result.http_status, 200);
  EXPECT_TRUE(result.answered_early);
  EXPECT_TRUE(result.body_complete);
  EXPECT_EQ(result.bytes_sent, size);
  EXPECT_TRUE(result.accepted_2xx());
  const auto requests = fake.requests();
  ASSERT_EQ(requests.size(), 1U);
}

TEST_F(UploadPoolTest, StatusHeadersAndBodyAreReturnedAsSent) {
  auto& fake = start_fake();
  fake.push_fault(fault(FaultKind::status, [](Fault& f) {
    f.status = 429;
    f.headers = {{"Retry-After", "3"}, {"retry-after-ms", "2500"}};
    f.body = R"({"detail":"slow down"})";
  }));
  fake.push_fault(fault(FaultKind::malformed_json));
  auto pool = make_pool(settings());
  const auto path = write_file("a.zip", "abc");
  const UploadResult limited = upload(*pool, request_for(path));
  EXPECT_EQ(limited.error, AttemptError::none);
  EXPECT_EQ(limited.http_status, 429);
  ASSERT_NE(limited.header("retry-after"), nullptr);
  EXPECT_EQ(*limited.header("retry-after"), "3");
  ASSERT_NE(limited.header("retry-after-ms"), nullptr);
  EXPECT_EQ(limited.body, R"({"detail":"slow down"})");

  const UploadResult malformed = upload(*pool, request_for(path));
  EXPECT_EQ(malformed.error, AttemptError::none) << "the transport returns it; the policy judges it";
  EXPECT_EQ(malformed.http_status, 200);
  EXPECT_ANY_THROW((void)boost::json::parse(malformed.body));
}

TEST_F(UploadPoolTest, OversizedResponseIsRefused) {
  auto& fake = start_fake();
  fake.push_fault(fault(FaultKind::oversized_response, [](Fault& f) { f.oversized_bytes = 8 * kMiB; }));
  auto pool = make_pool(settings());
  const UploadResult result = upload(*pool, request_for(write_file("a.zip", "abc")));
  EXPECT_EQ(result.error, AttemptError::response_too_large) << result.error_message;
  EXPECT_TRUE(result.body.empty());
}

TEST_F(UploadPoolTest, WrongTokenIs401AndTheProbeSeesItToo) {
  auto& fake = start_fake();
  auto wrong = settings();
  wrong.token = "not-the-token";
  auto pool = make_pool(wrong);
  const UploadResult result = upload(*pool, request_for(write_file("a.zip", "abc")));
  EXPECT_EQ(result.error, AttemptError::none);
  EXPECT_EQ(result.http_status, 401);
  EXPECT_TRUE(result.body_complete);
  const ApiAnswer refused = call(*pool, newest_file());
  EXPECT_EQ(refused.status(), 401);
  EXPECT_EQ(refused.verdict, Verdict::hold_auth);

  // SIGHUP with the right token: the next attempts use it.
  auto right = wrong;
  right.token = "test-token";
  ASSERT_TRUE(pool->apply(right));
  EXPECT_EQ(call(*pool, newest_file()).status(), 200);
  EXPECT_TRUE(upload(*pool, request_for(dir_ / "a.zip", 2)).accepted_2xx());
  EXPECT_EQ(fake.files().size(), 1U);
}

TEST_F(UploadPoolTest, SymlinkOrAnotherInodeAtThePathIsRefusedWithoutARequest) {
  auto& fake = start_fake();
  auto pool = make_pool(settings());
  const auto path = write_file("a.zip", "original");
  const UploadRequest queued = request_for(path);

  // The queued file itself, moved away and linked back: O_NOFOLLOW still refuses it.
  const auto kept = dir_ / "kept.zip";
  std::filesystem::rename(path, kept);
  std::filesystem::create_symlink(kept, path);
  const UploadResult symlinked = upload(*pool, queued);
  EXPECT_EQ(symlinked.error, AttemptError::file_replaced) << symlinked.error_message;

  // Same name, size and content, but another inode (the original still exists, so its inode
  // number cannot be reused).
  std::filesystem::remove(path);
  write_file("a.zip", "original");
  const UploadResult replaced = upload(*pool, queued);
  EXPECT_EQ(replaced.error, AttemptError::file_replaced) << replaced.error_message;

  std::filesystem::remove(path);
  const UploadResult missing = upload(*pool, queued);
  EXPECT_EQ(missing.error, AttemptError::file_missing) << missing.error_message;
  EXPECT_TRUE(fake.requests().empty());
  EXPECT_EQ(fake.connections_accepted(), 0U);
}

TEST_F(UploadPoolTest, FileGrowingWhileSentIsReportedChanged) {
  auto& fake = start_fake();
  auto paced = settings();
  paced.max_bytes_per_second = 4 * kMiB;  // about a second of sending: progress gets reported
  auto pool = make_pool(paced);
  const auto path = write_file("growing.zip", random_bytes(4 * kMiB, 7));
  bool appended = false;
  const UploadResult result = upload(*pool, request_for(path), [&](std::uint64_t) {
    if (appended) return;
    std::ofstream(path, std::ios::app) << "more";
    appended = true;
  });
  ASSERT_TRUE(appended);
  EXPECT_EQ(result.error, AttemptError::file_changed) << result.error_message;
  EXPECT_FALSE(result.accepted_2xx()) << "whatever the server answered";
  EXPECT_TRUE(result.body_complete);
  EXPECT_EQ(result.file_after.size, 4 * kMiB + 4);
  EXPECT_EQ(result.bytes_sent, 4 * kMiB) << "exactly the Content-Length promised";
  ASSERT_EQ(fake.files().size(), 1U);
  EXPECT_EQ(fake.files()[0].bytes, 4 * kMiB);
}

TEST_F(UploadPoolTest, CancelEndsAnUploadInFlightWithinOneSecond) {
  auto& fake = start_fake();
  fake.push_fault(fault(FaultKind::throttle, [](Fault& f) { f.bytes_per_second = kMiB; }));
  auto pool = make_pool(settings());
  std::optional<UploadResult> result;
  std::optional<Clock::time_point> cancelled_at;
  pool->start(
      request_for(sparse_file("a.zip", 64 * kMiB), 42),
      [&](std::uint64_t) {
        if (!cancelled_at) {
          cancelled_at = Clock::now();
          EXPECT_TRUE(pool->cancel(42));
        }
      },
      [&](UploadResult r) { result = std::move(r); });
  EXPECT_EQ(pool->free_sessions(), 3U);
  EXPECT_EQ(pool->uploads_in_flight(), 1U);
  ASSERT_TRUE(run_until([&] { return result.has_value(); }));
  ASSERT_TRUE(cancelled_at);
  EXPECT_LT(Clock::now() - *cancelled_at, 1s);
  EXPECT_EQ(result->error, AttemptError::cancelled);
  EXPECT_FALSE(result->body_complete);
  EXPECT_EQ(pool->free_sessions(), 4U);
  EXPECT_FALSE(pool->cancel(42)) << "no longer in flight";
  EXPECT_TRUE(fake.files().empty());
}

TEST_F(UploadPoolTest, CancelAllEndsEveryAttemptEvenWhileConnecting) {
  // A server that accepts TCP but never speaks TLS: the attempt sits in the handshake.
  const int silent = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(silent, 8), 0);
  ASSERT_EQ(::getsockname(silent, reinterpret_cast<sockaddr*>(&address), &length), 0);
  auto silent_settings = settings();
  silent_settings.api.base_url = "https://127.0.0.1:" + std::to_string(ntohs(address.sin_port));
  silent_settings.api.connect_timeout = 30s;
  auto pool = make_pool(silent_settings);
  std::vector<UploadResult> results;
  const auto path = write_file("a.zip", "a");
  pool->start(request_for(path, 1), nullptr, [&](UploadResult r) { results.push_back(std::move(r)); });
  pool->request(newest_file(), [&](ApiAnswer a) { results.push_back(std::move(a.exchange)); });
  run_until([] { return false; }, 200ms);
  const auto cancelled_at = Clock::now();
  pool->cancel_all();
  ASSERT_TRUE(run_until([&] { return results.size() == 2; }));
  EXPECT_LT(Clock::now() - cancelled_at, 1s);
  for (const auto& r : results) EXPECT_EQ(r.error, AttemptError::cancelled);
  ::close(silent);
}

TEST_F(UploadPoolTest, ConnectTimeoutCoversTheHandshake) {
  const int silent = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(silent, 8), 0);
  ASSERT_EQ(::getsockname(silent, reinterpret_cast<sockaddr*>(&address), &length), 0);
  auto quick = settings();
  quick.api.base_url = "https://127.0.0.1:" + std::to_string(ntohs(address.sin_port));
  quick.api.connect_timeout = 300ms;
  auto pool = make_pool(quick);
  const auto started = Clock::now();
  const UploadResult result = upload(*pool, request_for(write_file("a.zip", "a")));
  EXPECT_EQ(result.error, AttemptError::connect_timeout) << result.error_message;
  EXPECT_GE(Clock::now() - started, 300ms);
  EXPECT_LT(Clock::now() - started, 5s);
  ::close(silent);
}

TEST_F(UploadPoolTest, RefusedConnectionIsAConnectError) {
  const int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(::bind(probe, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::getsockname(probe, reinterpret_cast<sockaddr*>(&address), &length), 0);
  ::close(probe);  // nothing listens on that port now
  auto closed = settings();
  closed.api.base_url = "https://127.0.0.1:" + std::to_string(ntohs(address.sin_port));
  auto pool = make_pool(closed);
  const UploadResult result = upload(*pool, request_for(write_file("a.zip", "a")));
  EXPECT_EQ(result.error, AttemptError::connect_failed) << result.error_message;
  EXPECT_NE(result.error_message.find("refused"), std::string::npos) << result.error_message;
}

TEST_F(UploadPoolTest, BandwidthCapIsSharedByAllSessions) {
  auto& fake = start_fake();
  auto capped = settings();
  const std::uint64_t cap = 8 * kMiB;
  capped.max_bytes_per_second = cap;
  auto pool = make_pool(capped);
  std::vector<UploadResult> results;
  const auto started = Clock::now();
  for (int i = 0; i < 2; ++i) {
    const auto path = write_file("m" + std::to_string(i) + ".zip", random_bytes(8 * kMiB, static_cast<unsigned>(i)));
    pool->start(request_for(path, i + 1), nullptr, [&](UploadResult r) { results.push_back(std::move(r)); });
  }
  ASSERT_TRUE(run_until([&] { return results.size() == 2; }));
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  for (const auto& r : results) EXPECT_TRUE(r.accepted_2xx()) << r.error_message;
  // A lower bound only (a slow machine is slower, never faster): 16 MiB at 8 MiB/s, less the
  // bucket's one burst of 50 ms.
  EXPECT_GE(seconds, (16.0 * kMiB - 0.05 * static_cast<double>(cap)) / static_cast<double>(cap) - 0.05);
  EXPECT_EQ(fake.files().size(), 2U);
}

TEST_F(UploadPoolTest, BadSettingsAreRefusedAtCreation) {
  auto bad_ca = settings();
  bad_ca.api.ca_file = dir_ / "missing.pem";
  auto pool = UploadPool::create(io_, bad_ca);
  ASSERT_FALSE(pool);
  EXPECT_NE(pool.error().message.find("missing.pem"), std::string::npos);

  auto bad_token = settings();
  bad_token.token = "abc\r\nX-Injected: 1";
  auto refused = UploadPool::create(io_, bad_token);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message.find("abc"), std::string::npos) << "never the token";

  auto bad_proxy = settings();
  bad_proxy.proxy_environment = ProxyEnvironment{"socks5://proxy:1080", std::nullopt};
  EXPECT_FALSE(UploadPool::create(io_, bad_proxy));
}

// Peak RSS of a process that uploads a 4 GiB sparse file stays within a few MiB of one that
// uploads 4 MiB: the body streams from disk through one fixed buffer.
TEST_F(UploadPoolTest, MemoryStaysFlatWhateverTheFileSize) {
  test::DrainingServer sink(pki_->server_cert, pki_->server_key);
  const auto small = sparse_file("small.zip", 4 * kMiB);
  const auto large = sparse_file("large.zip", 4096 * kMiB);
  test::ProcessOptions options;
  options.timeout = 300s;
  // OpenSSL allocates a few dozen bytes per TLS record and frees them at once; under ASan the
  // quarantine would hold every such block (up to 256 MB) and show as growth that is not ours.
  const char* asan = std::getenv("ASAN_OPTIONS");
  options.env_set["ASAN_OPTIONS"] = std::string(asan != nullptr ? asan : "") + ":quarantine_size_mb=0";
  const auto peak_kib = [&](const std::filesystem::path& file) -> std::int64_t {
    const auto run =
        test::run_process({UPLOAD_BENCH_PATH, "--url", "https://127.0.0.1:" + std::to_string(sink.port()), "--ca-file",
                           pki_->ca_cert.string(), "--token", "test-token", "--no-sha256", file.string()},
                          options);
    EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
    if (run.exit_code != 0) return -1;
    const auto report = boost::json::parse(run.out).as_object();
    const auto& result = report.at("results").as_array().at(0).as_object();
    EXPECT_EQ(result.at("bytes_sent").as_int64(), static_cast<std::int64_t>(std::filesystem::file_size(file)));
    return report.at("vmhwm_kib").as_int64();
  };
  const std::int64_t small_kib = peak_kib(small);
  const std::int64_t large_kib = peak_kib(large);
  ASSERT_GT(small_kib, 0);
  ASSERT_GT(large_kib, 0);
  EXPECT_LE(large_kib - small_kib, 4 * 1024) << "4 MiB: " << small_kib << " KiB, 4 GiB: " << large_kib << " KiB";
  EXPECT_EQ(sink.requests_answered(), 2);
  EXPECT_GT(sink.bytes_drained(), 4096 * kMiB) << "the whole body reached the server";
}

}  // namespace
}  // namespace modeldrop::upload
