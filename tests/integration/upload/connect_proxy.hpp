#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace modeldrop::test {

// A tiny HTTP CONNECT proxy on 127.0.0.1 for tests: tunnels to loopback targets only and
// records every CONNECT request line and its headers.
class ConnectProxy {
 public:
  ConnectProxy();
  ~ConnectProxy();
  ConnectProxy(const ConnectProxy&) = delete;
  ConnectProxy& operator=(const ConnectProxy&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Answer every CONNECT with this status instead of opening a tunnel (0 = tunnel).
  void refuse_with(int status) { refuse_status_ = status; }

  // The head of each CONNECT request received, e.g. "CONNECT 127.0.0.1:4431 HTTP/1.1\r\nHost: ...".
  [[nodiscard]] std::vector<std::string> requests() const;

 private:
  void accept_loop();
  void serve(int client);

  int listener_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::atomic<int> refuse_status_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> requests_;
  std::vector<std::thread> workers_;
  std::thread acceptor_;
};

}  // namespace modeldrop::test
