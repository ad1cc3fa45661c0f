#pragma once
// The distconv command-line client: subcommands, the interactive menu, and the submit/follow/
// download flow. main.cpp only calls client_main(); the pure parts live in core.hpp.

namespace distconv::client {

// Parses argv, runs one subcommand (or the menu on a terminal) and returns the exit code
// (0 ok, 1 job failed/canceled, 2 usage, 3 unreachable/auth, 130 interrupted).
int client_main(int argc, char** argv);

}  // namespace distconv::client
