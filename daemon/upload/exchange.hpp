#pragma once

// Internal to the upload component: one request and its answer on one connection, either an
// upload (head, multipart body from the file) or an API call (head, JSON body from memory).
// Reads the response while it writes, so an early answer is seen at once.

#include "upload/pool_core.hpp"
#include "upload/request_body.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace modeldrop::upload {

namespace http = boost::beast::http;

class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  // How far the exchange got. Each step's handler moves it on; `aborting` can follow any phase
  // before `finished`, and then waits for the pending operations to complete.
  enum class Phase {
    connecting,        // resolve, TCP, CONNECT tunnel, TLS handshake: under the connect deadline
    sending,           // the request goes out while the answer is read: under the idle deadline
    sending_answered,  // a 2xx came before the body's end: the rest goes out before it counts
    send_broken,       // a write failed: the pending read may still bring the server's answer
    awaiting_answer,   // the whole request is out
    answered,          // the answer is in and nothing more will be written
    aborting,          // ending with `failure_`
    finished,          // `done` ran
  };

  struct Label {
    std::string method;  // "POST"
    std::string path;    // "/v0/models/upload", without prefix or query
  };

  Exchange(std::shared_ptr<UploadPool::Core> core, std::optional<std::int64_t> job_id, Label label,
           std::function<void(UploadResult)> done);

  [[nodiscard]] std::optional<std::int64_t> job_id() const { return job_id_; }

  void start_upload(const UploadRequest& request, std::function<void(std::uint64_t)> progress);
  // A request whose whole body (maybe none) is in memory: API calls.
  void start_request(const std::string& target, const std::optional<std::string>& json_body,
                     const std::optional<std::string>& token);

  // Ends the exchange with `error` unless it already has a reason: every pending operation
  // completes at once (the socket closes), then `done` runs.
  void abort(AttemptError error, std::string message);

 private:
  std::string request_head(http::verb method, const std::string& target, const std::string& content_type,
                           std::optional<std::uint64_t> content_length, const std::string& token) const;
  void fail_before_connecting(const FileProblem& problem);

  // Connecting (exchange_connect.cpp).
  void connect();
  void on_resolved(const error_code& ec, const tcp::resolver::results_type& results);
  void on_connected(const error_code& ec);
  void send_connect_request();
  void on_connect_request_sent(const error_code& ec);
  void on_proxy_answer(const error_code& ec);
  void start_tls_or_exchange();
  void on_handshake(const error_code& ec);
  void connect_step_failed(AttemptError error, std::string message);
  void connect_step_ended();

  // The exchange proper.
  void begin_exchange();
  void watch_send_queue();
  [[nodiscard]] std::uint64_t delivered_bytes();
  void read_response();
  void on_response(error_code ec);
  void on_answer();
  void on_read_failed(const error_code& ec);
  void stop_writing();
  [[nodiscard]] bool may_write() const { return phase_ == Phase::sending || phase_ == Phase::sending_answered; }
  FileResult<std::size_t> refill();
  void write_more();
  void on_throttle_wait();
  void on_written(const error_code& ec, std::size_t n);
  void report_progress();
  void on_request_sent();
  void arm_deadline(SteadyClock::time_point at);
  void on_deadline();
  void maybe_finish();
  void finish();
  void release_connection(bool aborted);

  std::shared_ptr<UploadPool::Core> core_;
  std::optional<std::int64_t> job_id_;
  Label label_;
  std::function<void(UploadResult)> done_;
  std::function<void(std::uint64_t)> progress_;
  boost::asio::steady_timer deadline_;
  boost::asio::steady_timer throttle_;
  boost::asio::steady_timer progress_timer_;
  std::uint64_t last_unacknowledged_ = 0;
  tcp::resolver resolver_;
  SteadyClock::time_point last_progress_;

  std::unique_ptr<Connection> connection_;
  std::string connect_request_;
  std::optional<http::response_parser<http::empty_body>> proxy_parser_;
  std::optional<http::response_parser<http::string_body>> parser_;

  std::optional<UploadRequestBytes> upload_;
  std::unique_ptr<std::byte[]> buffer_;
  std::size_t buffer_size_ = 0;
  std::size_t buffer_pos_ = 0;
  std::size_t buffer_end_ = 0;
  std::size_t granted_ = 0;  // bytes the bandwidth budget allowed and not yet written
  std::uint64_t written_ = 0;
  std::uint64_t total_ = 0;

  Phase phase_ = Phase::connecting;
  // Operations in progress: the exchange ends only when none is, so the connection is never
  // destroyed or reused under one.
  enum class WriteWait { none, socket, budget };
  bool connecting_ = false;
  bool reading_ = false;
  WriteWait write_wait_ = WriteWait::none;

  std::optional<std::string> write_error_;
  struct Failure {
    AttemptError error = AttemptError::none;
    std::string message;
  };
  std::optional<Failure> failure_;           // why it is aborting
  std::optional<FileProblem> file_problem_;  // the file changed while it was sent
  bool keep_alive_ = false;
  UploadResult result_;
};

}  // namespace modeldrop::upload
