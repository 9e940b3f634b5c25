#pragma once

// Before a job whose earlier attempt is in doubt is sent again: lists the project's files
// (GET /v1/files, newest first, page by page back to the in-doubt window) and lets the store
// adopt the one file that can only be that attempt's copy. Runs on the event loop; the store
// is reached through StoreClient. A listing that fails never holds the upload back.
// A job adopted without sending still gets its sha256: when the hash the lost attempt computed
// was lost with it (a kill before the commit), the file is hashed on a reader thread beside
// the listing, and the hash is recorded with the adoption.

#include "app/store_client.hpp"
#include "common/timestamp.hpp"
#include "store/job_store.hpp"
#include "upload/body_feed.hpp"
#include "upload/upload_pool.hpp"

#include <boost/asio/io_context.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace modeldrop::app {

class InDoubtReconciler {
 public:
  InDoubtReconciler(boost::asio::io_context& io, StoreClient& store, upload::UploadPool& pool, const Clock& clock)
      : io_(io), store_(store), pool_(pool), clock_(clock) {}
  // Stops the hashes still running (their searches end without a word).
  ~InDoubtReconciler() = default;
  InDoubtReconciler(const InDoubtReconciler&) = delete;
  InDoubtReconciler& operator=(const InDoubtReconciler&) = delete;

  // `job` is claimed and its attempt open; its earliest attempt in doubt started at `since`
  // (JobStore::in_doubt_since). `done` gets the job as adoption left it (succeeded), or none:
  // send the file. It always runs, on the event loop, never inside this call.
  // The listing carries the job's `token` (none: the pool's own), as its upload will.
  void before_sending(const store::Job& job, WallTime since, std::optional<std::string> token,
                      std::function<void(std::optional<store::Job>)> done);

  // How many files one look at the listing reads at most before it gives up (and the file is sent).
  static constexpr std::size_t kMaxListedFiles = 10000;

 private:
  struct Search {
    store::Job job;
    std::optional<std::string> token;  // a secret
    WallTime since;                    // the earliest in-doubt attempt's start
    std::vector<store::ListedFile> files;
    std::function<void(std::optional<store::Job>)> done;
    bool listed = false;                // the listing reached the window's start
    std::optional<std::string> sha256;  // the file's, when it had to be computed here (hashing_)
    std::optional<std::string> file_problem;
  };

  void start_hash(const std::shared_ptr<Search>& search);
  void list_next_page(std::shared_ptr<Search> search, std::optional<std::string> after);
  void on_page(std::shared_ptr<Search> search, const upload::ApiAnswer& answer);
  void decide_when_ready(const std::shared_ptr<Search>& search);
  void decide(std::shared_ptr<Search> search);
  void send_instead(const std::shared_ptr<Search>& search);

  boost::asio::io_context& io_;
  StoreClient& store_;
  upload::UploadPool& pool_;
  const Clock& clock_;
  // The hashes being computed, by job; last: stopped first.
  std::map<store::JobId, std::unique_ptr<upload::BodyFeed>> hashing_;
};

}  // namespace modeldrop::app
