#pragma once
// The distconv command-line client's entry: the flags and the dispatch to one command (each in its
// own file: submit_cmd, jobs_cmd, admin_cmd, library_cmd, menu; following jobs in follow.hpp).
// main.cpp only calls client_main(); the pure parts live in core.hpp.

namespace distconv::client {

// Parses argv, runs one subcommand (or the menu on a terminal) and returns the exit code
// (0 ok, 1 job failed/canceled, 2 usage, 3 unreachable/auth, 130 interrupted).
int client_main(int argc, char** argv);

}  // namespace distconv::client
