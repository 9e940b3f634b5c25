#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>

namespace modeldrop::test {

// A bare HTTPS sink for the flat-memory test: reads each request's Content-Length bytes as
// fast as OpenSSL decrypts them and answers 200. The fake API does the same with a status
// fault, but in a Debug or ASan build its event loop moves ~50 MB/s, and this test sends 4 GiB.
class DrainingServer {
 public:
  DrainingServer(const std::filesystem::path& cert, const std::filesystem::path& key);
  ~DrainingServer();
  DrainingServer(const DrainingServer&) = delete;
  DrainingServer& operator=(const DrainingServer&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::uint64_t bytes_drained() const { return drained_.load(); }
  [[nodiscard]] int requests_answered() const { return answered_.load(); }

 private:
  void serve();

  void* context_ = nullptr;  // SSL_CTX
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> drained_{0};
  std::atomic<int> answered_{0};
  std::thread thread_;
};

}  // namespace modeldrop::test
