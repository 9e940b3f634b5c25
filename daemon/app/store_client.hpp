#pragma once

// The event loop's door to the store thread: runs an operation on the StoreWorker (where it
// joins whatever else is queued in one transaction) and brings its result back to the loop.

#include "store/store_worker.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

namespace modeldrop::app {

class StoreClient {
 public:
  StoreClient(boost::asio::io_context& io, store::StoreWorker& worker) : io_(io), worker_(worker) {}

  // `op` runs on the store thread; `then` runs on the event loop with op's result.
  template <class Op, class Then>
  void call(Op op, Then then) {
    using R = std::invoke_result_t<Op&, store::JobStore&>;
    worker_.post([this, op = std::move(op), then = std::move(then)](store::JobStore& store) mutable {
      auto result = std::make_shared<R>(op(store));
      boost::asio::post(io_, [then = std::move(then), result]() mutable { then(std::move(*result)); });
    });
  }

  // Fire and forget: errors are the op's to log.
  template <class Op>
  void run(Op op) {
    worker_.post([op = std::move(op)](store::JobStore& store) mutable { op(store); });
  }

 private:
  boost::asio::io_context& io_;
  store::StoreWorker& worker_;
};

}  // namespace modeldrop::app
