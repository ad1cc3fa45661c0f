#pragma once
// The interactive menu `distconv` shows on a terminal when no subcommand is given.

#include "submission_client/session.hpp"

namespace distconv::client {

int run_menu(const GlobalOptions& g);

}  // namespace distconv::client
