#pragma once
// Routes the web dashboard reads besides the job and engine API: one event stream for every job the
// caller may see (live progress bars of a whole list) and the overview page's figures.

#include "dispatch_server/api/budget.hpp"
#include "dispatch_server/api/http_util.hpp"

namespace distconv::dispatch {

class AuthService;
class JobService;
class EngineService;
class ChangeNotifier;
struct DispatchConfig;

void install_dashboard_routes(http_util::Router& router, AuthService& auth, JobService& jobs,
                              EngineService* engines, ChangeNotifier& notifier, LongRequestBudget& budget,
                              const DispatchConfig& config);

}  // namespace distconv::dispatch
