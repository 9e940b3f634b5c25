#include "upload/exchange.hpp"

#include "common/duration.hpp"
#include "common/text.hpp"
#include "upload/multipart.hpp"
#include "upload/source_file.hpp"

#include <boost/asio/post.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <algorithm>
#include <cstring>

namespace modeldrop::upload {
namespace {

constexpr auto kProgressInterval = std::chrono::milliseconds(250);
constexpr std::uint32_t kMaxResponseHeader = 64U * 1024U;

bool is_connection_loss(const error_code& ec) {
  return ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted || ec == ssl::error::stream_truncated ||
         ec == http::error::end_of_stream || ec == http::error::partial_message;
}

bool is_size_limit(const error_code& ec) {
  return ec == http::error::body_limit || ec == http::error::header_limit || ec == http::error::buffer_overflow;
}

std::string format_bytes_limit() {
  return std::to_string(kMaxResponseBody / 1024) + " KiB (body) or " + std::to_string(kMaxResponseHeader / 1024) +
         " KiB (head)";
}

}  // namespace

Exchange::Exchange(std::shared_ptr<UploadPool::Core> core, std::optional<std::int64_t> job_id, Label label,
                   std::function<void(UploadResult)> done)
    : core_(std::move(core)),
      job_id_(job_id),
      label_(std::move(label)),
      done_(std::move(done)),
      deadline_(core_->io),
      throttle_(core_->io),
      progress_timer_(core_->io),
      resolver_(core_->io) {}

void Exchange::start_upload(const UploadRequest& request, std::function<void(std::uint64_t)> progress) {
  progress_ = std::move(progress);
  const std::string& token = request.token ? *request.token : core_->settings.token;
  if (!is_header_safe(token))
    return fail_before_connecting({AttemptError::invalid_request, "the API token contains control characters"});
  auto file = SourceFile::open(request.path, request.expected);
  if (!file) return fail_before_connecting(file.error());
  const MultipartFraming framing = make_multipart_framing(request.filename, make_boundary(core_->rng));
  std::string target = core_->route.origin.path_prefix + label_.path;
  if (request.project_id) {
    target += "?ai_project_id=" + boost::urls::encode(*request.project_id, boost::urls::unreserved_chars);
  }
  std::string head =
      request_head(http::verb::post, target, framing.content_type(), framing.content_length(file->size()), token);
  upload_.emplace(std::move(head), framing, std::make_unique<BodyFeed>(std::move(*file), feed_options(request)));
  total_ = upload_->total_size();
  buffer_size_ = std::max<std::size_t>(core_->settings.io_buffer_bytes, 64U * 1024U);
  buffer_ = std::make_unique_for_overwrite<std::byte[]>(buffer_size_);
  connect();
}

FeedOptions Exchange::feed_options(const UploadRequest& request) const {
  FeedOptions options;
  options.hash = request.compute_sha256;
  options.check = request.check;
  options.post = [&io = core_->io](std::function<void()> task) { asio::post(io, std::move(task)); };
  if (request.hashed) {
    options.finished = [hashed = request.hashed](const FeedOutcome& outcome) {
      if (outcome.sha256) hashed(*outcome.sha256);
    };
  }
  return options;
}

void Exchange::start_request(const std::string& target, const std::optional<std::string>& json_body,
                             const std::optional<std::string>& token) {
  const std::string& bearer = token ? *token : core_->settings.token;
  if (!is_header_safe(bearer))
    return fail_before_connecting({AttemptError::invalid_request, "the API token contains control characters"});
  const auto verb = http::string_to_verb(label_.method);
  std::string bytes = json_body ? request_head(verb, target, "application/json", json_body->size(), bearer)
                                : request_head(verb, target, {}, std::nullopt, bearer);
  if (json_body) bytes += *json_body;
  buffer_size_ = bytes.size();
  buffer_ = std::make_unique_for_overwrite<std::byte[]>(buffer_size_);
  std::memcpy(buffer_.get(), bytes.data(), bytes.size());
  buffer_end_ = bytes.size();
  total_ = bytes.size();
  connect();
}

void Exchange::abort(AttemptError error, std::string message) {
  if (phase_ == Phase::finished) return;
  if (phase_ != Phase::aborting) {
    phase_ = Phase::aborting;
    failure_ = Failure{error, std::move(message)};
  }
  deadline_.cancel();
  throttle_.cancel();
  progress_timer_.cancel();
  resolver_.cancel();
  if (write_wait_ == WriteWait::body) stop_waiting_for_body();
  if (connection_) connection_->close();
  // Never `done` from inside cancel(): the caller may be iterating over its own jobs.
  asio::post(core_->io, [self = shared_from_this()] { self->maybe_finish(); });
}

std::string Exchange::request_head(http::verb method, const std::string& target, const std::string& content_type,
                                   std::optional<std::uint64_t> content_length, const std::string& token) const {
  const PoolSettings& settings = core_->settings;
  http::request<http::empty_body> request{method, target, 11};
  request.set(http::field::host, core_->route.origin.host_header);
  request.set(http::field::authorization, "Bearer " + token);
  request.set(http::field::user_agent, settings.user_agent);
  request.set(http::field::accept, "application/json");
  if (!content_type.empty()) request.set(http::field::content_type, content_type);
  // Content-Length, never chunked: the body's size is known before it is read.
  if (content_length) request.set(http::field::content_length, std::to_string(*content_length));
  http::request_serializer<http::empty_body> serializer{request};
  serializer.split(true);
  std::string head;
  error_code ec;
  while (!ec && !serializer.is_header_done()) {
    serializer.next(ec, [&](error_code&, const auto& buffers) {
      for (const auto buffer : beast::buffers_range_ref(buffers)) {
        head.append(static_cast<const char*>(buffer.data()), buffer.size());
      }
      serializer.consume(beast::buffer_bytes(buffers));
    });
  }
  return head;
}

void Exchange::fail_before_connecting(const FileProblem& problem) {
  phase_ = Phase::aborting;
  failure_ = Failure{problem.error, problem.message};
  // `done` never runs inside start(): the caller may still be setting up around it.
  asio::post(core_->io, [self = shared_from_this()] { self->maybe_finish(); });
}

void Exchange::begin_exchange() {
  phase_ = Phase::sending;
  connection_->touch();
  // From here on the deadline is an idle deadline: it moves whenever bytes move.
  arm_deadline(connection_->last_activity() + core_->settings.api.idle_timeout);
  last_progress_ = SteadyClock::now();
  read_response();
  write_more();
  watch_send_queue();
}

// While the kernel still holds written bytes, the peer draining them is progress: it keeps
// the idle deadline away and moves bytes_sent, even when every write has long completed.
void Exchange::watch_send_queue() {
  progress_timer_.expires_after(kProgressInterval);
  progress_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
    if (ec || self->phase_ == Phase::finished || self->phase_ == Phase::aborting || !self->connection_) return;
    const std::uint64_t queued = self->connection_->unacknowledged_bytes();
    if (queued < self->last_unacknowledged_) self->connection_->touch();
    self->last_unacknowledged_ = queued;
    self->report_progress();
    self->watch_send_queue();
  });
}

// Request bytes the peer has acknowledged (ciphertext overhead, under 0.2 %, is ignored).
std::uint64_t Exchange::delivered_bytes() {
  const std::uint64_t queued = connection_ ? connection_->unacknowledged_bytes() : 0;
  return written_ > queued ? written_ - queued : 0;
}

void Exchange::read_response() {
  parser_.emplace();
  parser_->header_limit(kMaxResponseHeader);
  parser_->body_limit(kMaxResponseBody);
  reading_ = true;
  http::async_read(*connection_, connection_->buffer(), *parser_,
                   [self = shared_from_this()](const error_code& ec, std::size_t) { self->on_response(ec); });
}

void Exchange::on_response(error_code ec) {
  reading_ = false;
  if (phase_ == Phase::aborting) return maybe_finish();
  // A response delimited by the end of the connection: over TLS the server may skip close_notify.
  if (ec == ssl::error::stream_truncated && parser_->is_header_done() && parser_->need_eof()) {
    ec.clear();
    parser_->put_eof(ec);
  }
  if (ec) return on_read_failed(ec);
  const auto& response = parser_->get();
  const int status = static_cast<int>(response.result_int());
  if (status >= 100 && status < 200 && status != 101) return read_response();  // interim, e.g. 100 Continue
  result_.http_status = status;
  result_.headers.clear();
  for (const auto& field : response) {
    result_.headers.emplace_back(ascii_lower(std::string(field.name_string())), std::string(field.value()));
  }
  result_.body = response.body();
  keep_alive_ = response.keep_alive();
  on_answer();
}

void Exchange::on_answer() {
  const bool is_2xx = *result_.http_status / 100 == 2;
  switch (phase_) {
    case Phase::sending:
      result_.answered_early = true;
      // A refusal ends the exchange now; a 2xx counts only once the whole body is out.
      if (!is_2xx) return stop_writing();
      phase_ = Phase::sending_answered;
      return maybe_finish();
    case Phase::send_broken:
      result_.answered_early = true;
      phase_ = Phase::answered;
      return maybe_finish();
    default:
      phase_ = Phase::answered;
      return maybe_finish();
  }
}

void Exchange::on_read_failed(const error_code& ec) {
  if (is_size_limit(ec)) {
    return abort(AttemptError::response_too_large,
                 "the response exceeds " + format_bytes_limit() + ": " + ec.message());
  }
  if (ec.category() == http::make_error_code(http::error::bad_version).category() && !is_connection_loss(ec)) {
    return abort(AttemptError::malformed_response, "malformed HTTP response: " + ec.message());
  }
  if (phase_ == Phase::send_broken) {
    return abort(AttemptError::connection_closed, "the connection broke while sending the body (" + *write_error_ +
                                                      ") and no answer could be read (" + ec.message() + ")");
  }
  if (phase_ == Phase::awaiting_answer) {
    return abort(AttemptError::connection_closed,
                 "the connection closed after the whole request was sent, without an answer (" + ec.message() + ")");
  }
  if (phase_ == Phase::sending) {
    // The read noticed the reset first, e.g. while the body waited for its reader.
    return abort(AttemptError::connection_closed, "the connection broke while sending the body (" + ec.message() + ")");
  }
  abort(AttemptError::connection_closed, "the connection closed while sending the request (" + ec.message() + ")");
}

void Exchange::stop_writing() {
  phase_ = Phase::answered;
  throttle_.cancel();
  // The connection cannot carry another request after a half-sent body: close it, which also
  // ends a write the server is no longer reading.
  connection_->close();
  maybe_finish();
}

FileResult<std::size_t> Exchange::refill() {
  if (upload_) return upload_->fill(std::span<std::byte>(buffer_.get(), buffer_size_));
  return std::size_t{0};
}

void Exchange::write_more() {
  if (!may_write()) {
    write_wait_ = WriteWait::none;
    return maybe_finish();
  }
  if (buffer_pos_ == buffer_end_) {
    if (written_ == total_) return on_request_sent();
    // The file's bytes come from its reader thread (BodyFeed); none ready yet: wait for them.
    auto filled = refill();
    if (filled && *filled == 0 && upload_ && !upload_->complete()) return wait_for_body();
    if (!filled || *filled == 0) {
      write_wait_ = WriteWait::none;
      const FileProblem problem =
          filled ? FileProblem{AttemptError::file_changed, "the file ended early"} : filled.error();
      return abort(problem.error, problem.message);
    }
    buffer_pos_ = 0;
    buffer_end_ = *filled;
  }
  std::size_t n = buffer_end_ - buffer_pos_;
  if (!core_->bucket.unlimited()) {
    if (granted_ == 0) {
      const auto grant = core_->bucket.take(n, SteadyClock::now());
      if (grant.bytes == 0) {
        write_wait_ = WriteWait::budget;
        throttle_.expires_after(grant.wait);
        throttle_.async_wait([self = shared_from_this()](const error_code&) { self->on_throttle_wait(); });
        return;
      }
      granted_ = grant.bytes;
    }
    n = std::min(n, granted_);
  }
  write_wait_ = WriteWait::socket;
  connection_->async_write_some(
      asio::buffer(buffer_.get() + buffer_pos_, n),
      [self = shared_from_this()](const error_code& ec, std::size_t written) { self->on_written(ec, written); });
}

// The file's next bytes are still being read, or its final bytes wait for the content check.
void Exchange::wait_for_body() {
  write_wait_ = WriteWait::body;
  upload_->wait([weak = weak_from_this()] {
    if (auto self = weak.lock()) self->on_body_ready();
  });
}

void Exchange::on_body_ready() {
  if (write_wait_ != WriteWait::body) return;
  stop_waiting_for_body();
  // Our own reader or check was the wait, not the server.
  if (connection_ && phase_ != Phase::aborting) connection_->touch();
  write_more();
}

void Exchange::stop_waiting_for_body() {
  write_wait_ = WriteWait::none;
  upload_->cancel_wait();
}

void Exchange::on_throttle_wait() {
  // Waiting for the shared budget is not the server stalling.
  if (connection_ && phase_ != Phase::aborting) connection_->touch();
  write_more();
}

void Exchange::on_written(const error_code& ec, std::size_t n) {
  write_wait_ = WriteWait::none;
  buffer_pos_ += n;
  written_ += n;
  granted_ -= std::min(granted_, n);
  if (!may_write()) return maybe_finish();
  if (ec) {
    // The server may have answered and closed (e.g. 413 before reading the body): the read
    // still pending takes that answer out of the socket before the exchange ends.
    write_error_ = ec.message();
    if (phase_ == Phase::sending_answered) {
      phase_ = Phase::answered;
      return maybe_finish();
    }
    phase_ = Phase::send_broken;
    if (!reading_)
      return abort(AttemptError::connection_closed, "the connection broke while sending the body: " + *write_error_);
    return maybe_finish();
  }
  report_progress();
  write_more();
}

void Exchange::report_progress() {
  if (!progress_) return;
  const auto now = SteadyClock::now();
  if (now - last_progress_ < kProgressInterval) return;
  last_progress_ = now;
  progress_(upload_ ? upload_->file_bytes_within(delivered_bytes()) : 0);
}

void Exchange::on_request_sent() {
  write_wait_ = WriteWait::none;
  result_.body_complete = true;
  phase_ = phase_ == Phase::sending_answered ? Phase::answered : Phase::awaiting_answer;
  if (upload_) {
    // Size and mtime again, after the last byte; a change voids any answer.
    if (auto unchanged = upload_->feed().check_unchanged(result_.file_after); !unchanged) {
      file_problem_ = unchanged.error();
    }
    result_.sha256 = upload_->sha256();
  }
  maybe_finish();
}

void Exchange::arm_deadline(SteadyClock::time_point at) {
  deadline_.expires_at(at);
  deadline_.async_wait([self = shared_from_this()](const error_code& ec) {
    if (!ec) self->on_deadline();
  });
}

void Exchange::on_deadline() {
  if (phase_ == Phase::finished || phase_ == Phase::aborting) return;
  if (phase_ == Phase::connecting) {
    return abort(AttemptError::connect_timeout, "no connection to " + core_->route.peer_name() + " within " +
                                                    format_duration(core_->settings.api.connect_timeout));
  }
  const auto idle = core_->settings.api.idle_timeout;
  const auto quiet_until = connection_->last_activity() + idle;
  // Waiting for the bandwidth budget, the disk or our own check's verdict is not the server stalling.
  if (write_wait_ == WriteWait::budget || write_wait_ == WriteWait::body)
    return arm_deadline(SteadyClock::now() + idle);
  if (SteadyClock::now() < quiet_until) return arm_deadline(quiet_until);
  const std::string what = result_.body_complete ? "waiting for the answer" : "sending the request";
  abort(AttemptError::idle_timeout,
        "no bytes moved in either direction for " + format_duration(idle) + " while " + what);
}

void Exchange::maybe_finish() {
  if (phase_ == Phase::finished || connecting_ || reading_ || write_wait_ != WriteWait::none) return;
  // Still sending, or waiting for the answer (a 2xx that came early waits for the body to go out).
  if (phase_ != Phase::aborting && phase_ != Phase::answered) return;
  finish();
}

void Exchange::finish() {
  const bool aborted = phase_ == Phase::aborting;
  phase_ = Phase::finished;
  deadline_.cancel();
  throttle_.cancel();
  progress_timer_.cancel();
  if (upload_) result_.bytes_sent = upload_->file_bytes_within(written_);
  // Cancel wins over whatever else was going on: the caller asked for it.
  if (aborted) {
    result_.error = failure_->error;
    result_.error_message = failure_->message;
  } else if (file_problem_) {
    result_.error = file_problem_->error;
    result_.error_message = file_problem_->message;
  } else if (!result_.body_complete && result_.http_status && *result_.http_status / 100 == 2) {
    result_.error = AttemptError::connection_closed;
    result_.error_message =
        "a 2xx arrived before the body was complete, then the connection broke (" + write_error_.value_or("") + ")";
  }
  release_connection(aborted);
  core_->in_flight.erase(this);
  if (job_id_) --core_->uploads_in_flight;
  if (core_->observer) core_->observer(ExchangeSeen{label_.method, label_.path, result_.http_status, result_.error});
  auto done = std::move(done_);
  done(std::move(result_));
}

// A connection whose exchange ended cleanly and that the server keeps open serves the next one.
void Exchange::release_connection(bool aborted) {
  if (!connection_) return;
  const bool reusable = !aborted && result_.body_complete && result_.http_status && keep_alive_ && !write_error_ &&
                        connection_->buffer().size() == 0;
  if (reusable) {
    core_->keep_idle(std::move(connection_));
  } else {
    connection_->close();
    connection_.reset();
  }
}

}  // namespace modeldrop::upload
