#pragma once

// With `upload.dedupe`, every job's content hash is known before it may be claimed, so an
// archive already uploaded to the same project is never sent again (docs/http.md). Hashing
// reads whole files: it runs on its own thread, never on the event loop.

#include "app/store_client.hpp"
#include "common/timestamp.hpp"
#include "config/config.hpp"
#include "store/job_store.hpp"

#include <boost/asio/thread_pool.hpp>

#include <functional>
#include <set>

namespace modeldrop::app {

class HashStage {
 public:
  HashStage(boost::asio::io_context& io, StoreClient& store, const Clock& clock, config::Config config,
            std::function<void()> hashed);
  ~HashStage();
  HashStage(const HashStage&) = delete;
  HashStage& operator=(const HashStage&) = delete;

  // Looks for pending jobs without a hash and hashes them (startup, new jobs, CLI changes).
  void sweep();
  void reconfigure(config::Config config);
  void stop();

 private:
  void hash(store::Job job);
  void record(const store::Job& job, std::string sha256);
  void batch_done();

  boost::asio::io_context& io_;
  StoreClient& store_;
  const Clock& clock_;
  config::Config config_;
  std::function<void()> hashed_;
  boost::asio::thread_pool workers_{1};
  std::set<store::JobId> in_progress_;
  bool sweeping_ = false;
  bool sweep_again_ = false;
  bool stopped_ = false;
  std::size_t outstanding_ = 0;
  bool batch_was_full_ = false;
  std::size_t hashed_in_batch_ = 0;
};

}  // namespace modeldrop::app
