#include "upload/exchange.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>

namespace modeldrop::upload {

// The connect deadline covers every step up to the end of the TLS handshake; a kept-alive
// connection skips them all.
void Exchange::connect() {
  arm_deadline(SteadyClock::now() + core_->settings.api.connect_timeout);
  if (auto reused = core_->idle.take()) {
    connection_ = std::move(reused);
    result_.reused_connection = true;
    begin_exchange();
    return;
  }
  connection_ = core_->new_connection();
  connecting_ = true;
  resolver_.async_resolve(
      core_->route.dial_host(), core_->route.dial_port(),
      [self = shared_from_this()](const error_code& ec, const tcp::resolver::results_type& results) {
        self->on_resolved(ec, results);
      });
}

void Exchange::connect_step_failed(AttemptError error, std::string message) {
  connecting_ = false;
  abort(error, std::move(message));
}

void Exchange::connect_step_ended() {
  connecting_ = false;
  maybe_finish();
}

void Exchange::on_resolved(const error_code& ec, const tcp::resolver::results_type& results) {
  if (phase_ == Phase::aborting) return connect_step_ended();
  if (ec) {
    return connect_step_failed(AttemptError::connect_failed,
                               "cannot resolve " + core_->route.peer_name() + ": " + ec.message());
  }
  asio::async_connect(
      connection_->socket(), results,
      [self = shared_from_this()](const error_code& error, const tcp::endpoint&) { self->on_connected(error); });
}

void Exchange::on_connected(const error_code& ec) {
  if (phase_ == Phase::aborting) return connect_step_ended();
  if (ec) {
    return connect_step_failed(AttemptError::connect_failed,
                               "cannot connect to " + core_->route.peer_name() + ": " + ec.message());
  }
  error_code ignored;
  connection_->socket().set_option(tcp::no_delay(true), ignored);  // the last record must not wait for an ACK
  if (core_->route.proxy) return send_connect_request();
  start_tls_or_exchange();
}

void Exchange::send_connect_request() {
  connect_request_ = core_->route.connect_request(core_->settings.user_agent);
  asio::async_write(
      connection_->socket(), asio::buffer(connect_request_),
      [self = shared_from_this()](const error_code& ec, std::size_t) { self->on_connect_request_sent(ec); });
}

void Exchange::on_connect_request_sent(const error_code& ec) {
  if (phase_ == Phase::aborting) return connect_step_ended();
  if (ec) {
    return connect_step_failed(AttemptError::proxy_failed,
                               core_->route.peer_name() + " closed the connection: " + ec.message());
  }
  proxy_parser_.emplace();
  proxy_parser_->skip(true);  // a 2xx to CONNECT has no body: the tunnel starts right after the head
  http::async_read_header(
      connection_->socket(), connection_->buffer(), *proxy_parser_,
      [self = shared_from_this()](const error_code& error, std::size_t) { self->on_proxy_answer(error); });
}

void Exchange::on_proxy_answer(const error_code& ec) {
  if (phase_ == Phase::aborting) return connect_step_ended();
  const std::string peer = core_->route.peer_name();
  if (ec) return connect_step_failed(AttemptError::proxy_failed, peer + " did not answer CONNECT: " + ec.message());
  const auto& answer = proxy_parser_->get();
  if (answer.result_int() / 100U != 2U) {
    return connect_step_failed(
        AttemptError::proxy_failed,
        peer + " refused CONNECT: " + std::to_string(answer.result_int()) + " " + std::string(answer.reason()));
  }
  if (connection_->buffer().size() != 0) {
    return connect_step_failed(AttemptError::proxy_failed, peer + " sent data before the TLS handshake");
  }
  proxy_parser_.reset();
  start_tls_or_exchange();
}

void Exchange::start_tls_or_exchange() {
  const std::string& host = core_->route.origin.host;
  if (!connection_->tls()) {
    connecting_ = false;
    return begin_exchange();
  }
  if (const error_code ec = connection_->prepare_tls(host)) {
    return connect_step_failed(AttemptError::tls_failed, "cannot set up TLS for " + host + ": " + ec.message());
  }
  connection_->async_handshake([self = shared_from_this()](const error_code& ec) { self->on_handshake(ec); });
}

void Exchange::on_handshake(const error_code& ec) {
  if (phase_ == Phase::aborting) return connect_step_ended();
  connecting_ = false;
  const std::string& host = core_->route.origin.host;
  if (ec) {
    // Nothing of the request, and so no token, has been written: the handshake came first.
    if (!connection_->verify_failure.empty()) {
      return abort(AttemptError::certificate_rejected,
                   "TLS certificate of " + host + " rejected: " + connection_->verify_failure);
    }
    return abort(AttemptError::tls_failed, "TLS handshake with " + host + " failed: " + ec.message());
  }
  begin_exchange();
}

}  // namespace modeldrop::upload
