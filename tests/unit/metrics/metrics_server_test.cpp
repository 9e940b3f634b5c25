// The endpoint over real sockets on 127.0.0.1: what it answers, and the bounds that keep
// hostile or broken clients from piling up (request time, header size, connection count).
#include "metrics/metrics_server.hpp"

#include "support/http_client.hpp"

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <thread>

namespace modeldrop::metrics {
namespace {

using namespace std::chrono_literals;
using test::http_request;

std::uint16_t port_of(const std::string& address) {
  return static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

// The server on an event loop of its own thread; the test is the client.
class MetricsServerTest : public ::testing::Test {
 protected:
  void start(ServerLimits limits = {}) {
    auto server = MetricsServer::start(
        io_, config::ListenAddress{"127.0.0.1", 0},
        [this](auto reply) {
          ++scrapes_;
          reply("# TYPE demo gauge\ndemo 1\n");
        },
        limits);
    ASSERT_TRUE(server) << server.error().message;
    server_ = std::move(*server);
    port_ = port_of(server_->local_address());
    loop_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    if (loop_.joinable()) {
      boost::asio::post(io_, [this] {
        server_->stop();
        work_.reset();
      });
      loop_.join();
    }
  }

  std::size_t open_connections() {
    std::promise<std::size_t> count;
    boost::asio::post(io_, [&] { count.set_value(server_->open_connections()); });
    return count.get_future().get();
  }

  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{io_.get_executor()};
  std::unique_ptr<MetricsServer> server_;
  std::thread loop_;
  std::uint16_t port_ = 0;
  std::atomic<int> scrapes_{0};
};

TEST_F(MetricsServerTest, AnswersGetAndHeadOfMetricsAndTheIndex) {
  start();
  auto reply = http_request("127.0.0.1", port_, "GET", "/metrics");
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  EXPECT_NE(reply->head.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << reply->head;
  EXPECT_EQ(reply->body, "# TYPE demo gauge\ndemo 1\n");

  reply = http_request("127.0.0.1", port_, "HEAD", "/metrics");
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body, "");
  EXPECT_NE(reply->head.find("Content-Length: 25"), std::string::npos) << "the GET's length: " << reply->head;

  reply = http_request("127.0.0.1", port_, "GET", "/metrics?debug=1");
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);

  reply = http_request("127.0.0.1", port_, "GET", "/");
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  EXPECT_NE(reply->body.find("<a href=\"/metrics\">"), std::string::npos);
}

TEST_F(MetricsServerTest, OtherPathsAreNotFoundOtherMethodsNotAllowed) {
  start();
  for (const char* path : {"/metrics/", "/favicon.ico", "/../etc/passwd", "/Metrics"}) {
    auto reply = http_request("127.0.0.1", port_, "GET", path);
    ASSERT_TRUE(reply) << path;
    EXPECT_EQ(reply->status, 404) << path;
  }
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "TRACE"}) {
    auto reply = http_request("127.0.0.1", port_, method, "/metrics");
    ASSERT_TRUE(reply) << method;
    EXPECT_EQ(reply->status, 405) << method;
    EXPECT_NE(reply->head.find("Allow: GET, HEAD"), std::string::npos);
  }
  EXPECT_EQ(scrapes_, 0);
}

TEST_F(MetricsServerTest, GarbageAndOversizedRequestsAreRefusedAndServingGoesOn) {
  start();
  const std::vector<std::string> garbage{
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 a TLS hello\r\n\r\n",
      "GET\r\n\r\n",
      "GET /metrics HTTP/9.9\r\n\r\n",
      "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
      "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n",
      std::string(100 * 1024, '\0')};
  for (const auto& request : garbage) {
    const auto answer = test::exchange("127.0.0.1", port_, request, 5s);
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->find("200 OK"), std::string::npos) << request.substr(0, 40);
  }
  auto reply = http_request("127.0.0.1", port_, "GET", "/metrics");
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
}

TEST_F(MetricsServerTest, SlowClientIsDroppedAtTheRequestTimeout) {
  ServerLimits limits;
  limits.request_timeout = 300ms;
  start(limits);
  const int fd = test::connect_tcp("127.0.0.1", port_);
  ASSERT_GE(fd, 0);
  const auto started = std::chrono::steady_clock::now();
  // One byte at a time, never finishing the request: slowloris.
  const std::string partial = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  bool closed = false;
  for (std::size_t i = 0; i < 100 && !closed; ++i) {
    if (::send(fd, &partial[i % partial.size()], 1, MSG_NOSIGNAL) != 1) closed = true;
    char c = 0;
    timeval wait{0, 50'000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    if (::recv(fd, &c, 1, 0) == 0) closed = true;
  }
  ::close(fd);
  EXPECT_TRUE(closed) << "the server kept a trickling client for 5 s";
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
}

TEST_F(MetricsServerTest, ConnectionsAreBoundedAndIdleOnesMakeRoomForScrapes) {
  ServerLimits limits;
  limits.max_connections = 8;
  start(limits);
  std::vector<int> idle;
  for (int i = 0; i < 200; ++i) {
    const int fd = test::connect_tcp("127.0.0.1", port_);
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  for (int i = 0; i < 5; ++i) {
    auto reply = http_request("127.0.0.1", port_, "GET", "/metrics", 2s);
    ASSERT_TRUE(reply) << "scrape " << i << " behind 200 idle connections";
    EXPECT_EQ(reply->status, 200);
  }
  EXPECT_LE(open_connections(), 8U);
  for (int fd : idle) ::close(fd);
}

TEST(MetricsServerStart, PortInUseIsAnErrorNamingIt) {
  std::uint16_t port = 0;
  const int fd = test::listen_on_loopback(port);
  ASSERT_GE(fd, 0);

  boost::asio::io_context io;
  auto server = MetricsServer::start(io, config::ListenAddress{"127.0.0.1", port}, [](auto reply) { reply(""); });
  ::close(fd);
  ASSERT_FALSE(server);
  EXPECT_NE(server.error().message.find("metrics.listen 127.0.0.1:" + std::to_string(port)), std::string::npos)
      << server.error().message;
  EXPECT_NE(server.error().message.find("in use"), std::string::npos) << server.error().message;
}

}  // namespace
}  // namespace modeldrop::metrics
