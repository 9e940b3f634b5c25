#include "metrics/metrics_server.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <list>
#include <optional>

namespace modeldrop::metrics {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr std::string_view kExpositionType = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view kIndexPage =
    "<!DOCTYPE html>\n<html><head><title>modeldrop</title></head>\n"
    "<body><h1>modeldrop</h1><p><a href=\"/metrics\">Metrics</a></p></body></html>\n";
constexpr auto kAcceptRetry = 100ms;  // after an accept error such as EMFILE, instead of spinning
constexpr auto kAcceptErrorLogInterval = 1min;

class Connection;

}  // namespace

struct MetricsServer::Impl : std::enable_shared_from_this<MetricsServer::Impl> {
  Impl(asio::io_context& context, Collect produce, ServerLimits bounds)
      : io(context), acceptor(context), collect(std::move(produce)), limits(bounds), accept_retry(context) {}

  void accept();
  void on_accept_error(const boost::system::error_code& ec);
  void admit(tcp::socket socket);
  std::size_t live_connections();

  asio::io_context& io;
  tcp::acceptor acceptor;
  Collect collect;
  ServerLimits limits;
  asio::steady_timer accept_retry;
  std::list<std::weak_ptr<Connection>> connections;  // oldest first
  std::optional<std::chrono::steady_clock::time_point> accept_error_logged;
  bool stopped = false;
};

namespace {

// One client connection: requests read one at a time within the request timeout (a client
// trickling bytes is dropped at the deadline), each answered before the next is read.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, const std::shared_ptr<MetricsServer::Impl>& server)
      : stream_(std::move(socket)), buffer_(server->limits.max_header_bytes + 1024), server_(server) {}

  void start() { read(); }
  [[nodiscard]] bool waiting_for_request() const { return reading_; }
  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

 private:
  void read() {
    auto server = server_.lock();
    if (!server || server->stopped) return close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server->limits.max_header_bytes));
    parser_->body_limit(1024);  // GET and HEAD carry no body worth reading
    reading_ = true;
    stream_.expires_after(server->limits.request_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    reading_ = false;
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset || ec == asio::error::eof) {
      return close();
    }
    if (ec) {
      spdlog::debug("metrics: bad request: {}", ec.message());
      return send(http::status::bad_request, "text/plain", "bad request\n", false, false);
    }
    handle(parser_->get());
  }

  void handle(const http::request<http::empty_body>& request) {
    const bool head = request.method() == http::verb::head;
    const bool keep_alive = request.keep_alive();
    if (request.method() != http::verb::get && !head) {
      return send(http::status::method_not_allowed, "text/plain", "only GET and HEAD\n", false, false);
    }
    const std::string_view target = request.target();
    const auto path = target.substr(0, target.find('?'));
    if (path == "/")
      return send(http::status::ok, "text/html; charset=utf-8", std::string(kIndexPage), head, keep_alive);
    if (path != "/metrics") return send(http::status::not_found, "text/plain", "not found\n", head, keep_alive);
    auto server = server_.lock();
    if (!server) return close();
    server->collect([self = shared_from_this(), head, keep_alive](std::string text) {
      self->send(http::status::ok, kExpositionType, std::move(text), head, keep_alive);
    });
  }

  void send(http::status status, std::string_view type, std::string body, bool head, bool keep_alive) {
    auto server = server_.lock();
    if (!server || server->stopped) return close();
    auto response = std::make_shared<http::response<http::string_body>>(status, 11);
    response->set(http::field::server, "modeldrop");
    response->set(http::field::content_type, type);
    if (status == http::status::method_not_allowed) response->set(http::field::allow, "GET, HEAD");
    response->keep_alive(keep_alive);
    response->body() = std::move(body);
    response->prepare_payload();
    if (head) response->body().clear();  // the length stays that of the GET
    stream_.expires_after(server->limits.response_timeout);
    http::async_write(stream_, *response,
                      [self = shared_from_this(), response, keep_alive](beast::error_code ec, std::size_t) {
                        if (ec || !keep_alive) return self->close();
                        self->read();
                      });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  std::weak_ptr<MetricsServer::Impl> server_;
  bool reading_ = false;
};

Result<tcp::endpoint> resolve(asio::io_context& io, const config::ListenAddress& listen) {
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(listen.host, ec);
  if (!ec) return tcp::endpoint(address, listen.port);
  // A host name is looked up once, at startup (before the event loop runs).
  tcp::resolver resolver(io);
  auto results = resolver.resolve(listen.host, std::to_string(listen.port), tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return make_error("metrics.listen " + listen.text() + ": cannot resolve " + listen.host + ": " +
                      (ec ? ec.message() : std::string("no address")));
  }
  return results.begin()->endpoint();
}

std::string endpoint_text(const tcp::endpoint& endpoint) {
  const auto address = endpoint.address();
  const std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return host + ":" + std::to_string(endpoint.port());
}

}  // namespace

void MetricsServer::Impl::accept() {
  acceptor.async_accept([self = shared_from_this()](boost::system::error_code ec, tcp::socket socket) {
    if (self->stopped || ec == asio::error::operation_aborted) return;
    if (ec) return self->on_accept_error(ec);
    self->admit(std::move(socket));
    self->accept();
  });
}

void MetricsServer::Impl::on_accept_error(const boost::system::error_code& ec) {
  const auto now = std::chrono::steady_clock::now();
  if (!accept_error_logged || now - *accept_error_logged >= kAcceptErrorLogInterval) {
    spdlog::warn("metrics: cannot accept a connection: {} (trying again)", ec.message());
    accept_error_logged = now;
  }
  accept_retry.expires_after(kAcceptRetry);
  accept_retry.async_wait([self = shared_from_this()](boost::system::error_code wait_ec) {
    if (!wait_ec && !self->stopped) self->accept();
  });
}

std::size_t MetricsServer::Impl::live_connections() {
  connections.remove_if([](const std::weak_ptr<Connection>& c) { return c.expired(); });
  return connections.size();
}

// At the bound, a new client takes the place of the oldest one that has not sent its request
// yet: idle or trickling connections cannot lock a scraper out.
void MetricsServer::Impl::admit(tcp::socket socket) {
  if (live_connections() >= limits.max_connections) {
    auto idle = std::find_if(connections.begin(), connections.end(), [](const std::weak_ptr<Connection>& c) {
      auto connection = c.lock();
      return connection && connection->waiting_for_request();
    });
    if (idle == connections.end()) {
      boost::system::error_code ignored;
      socket.close(ignored);
      return;
    }
    if (auto connection = idle->lock()) connection->close();
    connections.erase(idle);
  }
  auto connection = std::make_shared<Connection>(std::move(socket), shared_from_this());
  connections.push_back(connection);
  connection->start();
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(asio::io_context& io, const config::ListenAddress& listen,
                                                            Collect collect, ServerLimits limits) {
  auto endpoint = resolve(io, listen);
  if (!endpoint) return endpoint.error();
  auto impl = std::make_shared<Impl>(io, std::move(collect), limits);
  boost::system::error_code ec;
  const auto fail = [&](std::string_view step) {
    return make_error("metrics.listen " + listen.text() + ": cannot " + std::string(step) + ": " + ec.message());
  };
  impl->acceptor.open(endpoint->protocol(), ec);
  if (ec) return fail("open a socket");
  // Lets a restarted daemon bind while old connections linger in TIME_WAIT; a live listener
  // on the port still makes bind fail.
  impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (ec) return fail("set SO_REUSEADDR");
  impl->acceptor.bind(*endpoint, ec);
  if (ec) return fail("listen");
  impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  impl->accept();
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

MetricsServer::~MetricsServer() {
  stop();
}

std::string MetricsServer::local_address() const {
  boost::system::error_code ec;
  const auto endpoint = impl_->acceptor.local_endpoint(ec);
  return ec ? std::string("?") : endpoint_text(endpoint);
}

std::size_t MetricsServer::open_connections() const {
  return impl_->live_connections();
}

void MetricsServer::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  boost::system::error_code ignored;
  impl_->acceptor.close(ignored);
  impl_->accept_retry.cancel();
  for (auto& weak : impl_->connections) {
    if (auto connection = weak.lock()) connection->close();
  }
  impl_->connections.clear();
}

}  // namespace modeldrop::metrics
