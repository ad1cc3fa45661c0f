#pragma once
// The farm's commands: engines, pools, presets, and API keys (create, list, revoke).

#include "submission_client/session.hpp"

#include <string>

namespace distconv::client {

int run_engines(Session& s);
int run_pools(Session& s);
int run_presets(Session& s);
int run_keys_create(Session& s, const std::string& name, const std::string& role);
int run_keys_list(Session& s, bool all);
int run_keys_revoke(Session& s, const std::string& id);

}  // namespace distconv::client
