#pragma once
// Routes of the engine protocol (/engines, /assignments) over the shared router.

#include "dispatch_server/api/budget.hpp"
#include "dispatch_server/api/http_util.hpp"

namespace distconv::dispatch {

class AuthService;
class EngineService;

void install_engine_routes(http_util::Router& router, AuthService& auth, EngineService& engines,
                           LongRequestBudget& budget, int max_claims_per_key);

}  // namespace distconv::dispatch
