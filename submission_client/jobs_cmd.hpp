#pragma once
// The commands on existing jobs: status, list, watch, cancel, retry, download.

#include "protocol/protocol.hpp"
#include "submission_client/session.hpp"

#include <string>
#include <vector>

namespace distconv::client {

struct ListOptions {
    std::string state;
    bool all = false;
    int limit = protocol::k_default_list_limit;
};

struct DownloadCommandOptions {
    std::string job_id;
    std::string output;
    bool force = false;
};

int run_status(Session& s, const std::string& id);
int run_list(Session& s, const ListOptions& o);
int run_watch(Session& s, const std::vector<std::string>& ids);
int run_cancel(Session& s, const std::vector<std::string>& ids);
int run_retry(Session& s, const std::string& id);
int run_download(Session& s, const DownloadCommandOptions& o);

}  // namespace distconv::client
