#include "upload/connection_cache.hpp"

#include <algorithm>

namespace modeldrop::upload {

std::unique_ptr<Connection> ConnectionCache::take() {
  while (!idle_->empty()) {
    std::unique_ptr<Connection> connection = std::move(idle_->back());
    idle_->pop_back();
    error_code ignored;
    connection->socket().cancel(ignored);  // ends the watch started by keep()
    if (!connection->looks_closed()) return connection;
    connection->close();
  }
  return nullptr;
}

void ConnectionCache::keep(std::unique_ptr<Connection> connection, std::size_t limit) {
  while (!idle_->empty() && idle_->size() >= std::max<std::size_t>(limit, 1)) {
    idle_->front()->close();
    idle_->erase(idle_->begin());
  }
  // By id, not pointer: a completion already queued may outlive the connection it watched.
  connection->socket().async_wait(tcp::socket::wait_read,
                                  [weak = std::weak_ptr<Idle>(idle_), id = connection->id()](const error_code& ec) {
                                    if (ec) return;  // cancelled: taken for reuse, or closed
                                    if (auto idle = weak.lock()) drop(*idle, id);
                                  });
  idle_->push_back(std::move(connection));
}

void ConnectionCache::drop(Idle& idle, std::uint64_t id) {
  const auto it = std::find_if(idle.begin(), idle.end(), [&](const auto& c) { return c->id() == id; });
  if (it == idle.end()) return;
  (*it)->close();
  idle.erase(it);
}

void ConnectionCache::close_all() {
  for (auto& connection : *idle_) connection->close();
  idle_->clear();
}

}  // namespace modeldrop::upload
