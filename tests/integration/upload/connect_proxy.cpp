#include "integration/upload/connect_proxy.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace modeldrop::test {
namespace {

bool send_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

int connect_loopback(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

ConnectProxy::ConnectProxy() {
  if (::pipe2(stop_pipe_, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(listener_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listener_, 16) != 0 || ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    throw std::runtime_error(std::string("test proxy cannot listen: ") + std::strerror(errno));
  }
  port_ = ntohs(address.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

ConnectProxy::~ConnectProxy() {
  const char stop = 's';
  (void)!::write(stop_pipe_[1], &stop, 1);
  acceptor_.join();
  for (auto& worker : workers_) worker.join();
  ::close(listener_);
  ::close(stop_pipe_[0]);
  ::close(stop_pipe_[1]);
}

std::vector<std::string> ConnectProxy::requests() const {
  const std::lock_guard lock(mutex_);
  return requests_;
}

void ConnectProxy::accept_loop() {
  for (;;) {
    pollfd fds[2] = {{listener_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if ((fds[1].revents & POLLIN) != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    workers_.emplace_back([this, client] { serve(client); });
  }
}

void ConnectProxy::serve(int client) {
  // The request head, byte by byte, so nothing of the tunnelled stream is read by mistake.
  std::string head;
  while (head.size() < 8192 && head.find("\r\n\r\n") == std::string::npos) {
    char c = 0;
    pollfd fds[2] = {{client, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (::poll(fds, 2, 10'000) <= 0 || (fds[1].revents & POLLIN) != 0 || ::recv(client, &c, 1, 0) != 1) {
      ::close(client);
      return;
    }
    head += c;
  }
  {
    const std::lock_guard lock(mutex_);
    requests_.push_back(head);
  }
  // "CONNECT host:port HTTP/1.1": tunnels only to loopback, whatever the host says.
  const auto space = head.find(' ');
  const auto colon = head.rfind(':', head.find(' ', space + 1));
  const int target = head.rfind("CONNECT ", 0) == 0 && colon != std::string::npos
                         ? connect_loopback(static_cast<std::uint16_t>(std::stoi(head.substr(colon + 1))))
                         : -1;
  if (const int status = refuse_status_.load(); status != 0 || target < 0) {
    const std::string answer = "HTTP/1.1 " + std::to_string(status != 0 ? status : 502) +
                               " Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    send_all(client, answer.data(), answer.size());
    if (target >= 0) ::close(target);
    ::close(client);
    return;
  }
  const std::string established = "HTTP/1.1 200 Connection established\r\n\r\n";
  send_all(client, established.data(), established.size());
  std::vector<char> buffer(64 * 1024);
  for (bool open = true; open;) {
    pollfd fds[3] = {{client, POLLIN, 0}, {target, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0 && errno != EINTR) break;
    if ((fds[2].revents & POLLIN) != 0) break;
    for (int i = 0; i < 2 && open; ++i) {
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t n = ::recv(fds[i].fd, buffer.data(), buffer.size(), 0);
      open = n > 0 && send_all(fds[1 - i].fd, buffer.data(), static_cast<std::size_t>(n));
    }
  }
  ::close(target);
  ::close(client);
}

}  // namespace modeldrop::test
