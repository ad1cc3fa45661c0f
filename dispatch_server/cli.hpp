#pragma once
// distconv-dispatch's command line: serve, keys create|list|revoke, check-config, backup.
// Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.

namespace distconv::dispatch {

int dispatch_main(int argc, char** argv);

}  // namespace distconv::dispatch
