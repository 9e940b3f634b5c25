#pragma once

// Before a job whose earlier attempt is in doubt is sent again: lists the project's files
// (GET /v1/files, newest first, page by page back to the in-doubt window) and lets the store
// adopt the one file that can only be that attempt's copy. Runs on the event loop; the store
// is reached through StoreClient. A listing that fails never holds the upload back.

#include "app/store_client.hpp"
#include "common/timestamp.hpp"
#include "store/job_store.hpp"
#include "upload/upload_pool.hpp"

#include <functional>
#include <optional>
#include <vector>

namespace modeldrop::app {

class InDoubtReconciler {
 public:
  InDoubtReconciler(StoreClient& store, upload::UploadPool& pool, const Clock& clock)
      : store_(store), pool_(pool), clock_(clock) {}

  // `job` is claimed and its attempt open. `done` gets the job as adoption left it (succeeded),
  // or none: send the file. It always runs, on the event loop, never inside this call.
  // The listing carries the job's `token` (none: the pool's own), as its upload will.
  void before_sending(const store::Job& job, std::optional<std::string> token,
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
  };

  void list_next_page(std::shared_ptr<Search> search, std::optional<std::string> after);
  void on_page(std::shared_ptr<Search> search, const upload::ApiAnswer& answer);
  void decide(std::shared_ptr<Search> search);

  StoreClient& store_;
  upload::UploadPool& pool_;
  const Clock& clock_;
};

}  // namespace modeldrop::app
