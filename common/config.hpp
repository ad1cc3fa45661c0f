#pragma once
// Typed configuration from three sources, highest precedence first:
//   1. command-line flags (CLI11),
//   2. an INI file given with --config FILE (top-level `key = value`, keys named like the long flags),
//   3. DISTCONV_<FLAG_NAME> environment variables (--data-dir → DISTCONV_DATA_DIR).
// Programs declare their options on a CLI::App bound to a typed struct, call add_sources() once, then
// parse(). Errors come back as an INVALID_ARGUMENT Error naming the key and where it came from; a
// check-only mode (`check-config`) runs the same parse and validation without starting anything.

#include "common/error.hpp"

#include <CLI/CLI.hpp>

#include <iosfwd>
#include <map>
#include <string>
#include <vector>

namespace distconv::config {

struct SourceSettings {
    std::string env_prefix = "DISTCONV_";
    // Config files read when --config is not given (the first that exists), e.g.
    // ~/.config/distconv/client.ini.
    std::vector<std::string> default_files;
};

// Adds --config and gives every long option of `app` and its subcommands an INI key and an env name
// (unless one was set explicitly). Options that fall through from subcommands work in any position.
void add_sources(CLI::App& app, const SourceSettings& settings = {});

enum class Outcome {
    Run,         // parsed: go on
    ExitSuccess  // --help or --version was printed
};

// Parses and validates; never throws for user errors. Help text goes to `out`.
Result<Outcome> parse(CLI::App& app, const std::vector<std::string>& args, std::ostream& out);
Result<Outcome> parse(CLI::App& app, int argc, const char* const* argv, std::ostream& out);

// DISTCONV_* variables set in `environment` that no option of `app` reads (for a warning: a typo there
// would otherwise be silently ignored). `environment` is a list of NAME=VALUE strings (e.g. from environ).
std::vector<std::string> unknown_env_vars(const CLI::App& app, const std::vector<std::string>& environment,
                                          const std::string& prefix = "DISTCONV_");
std::vector<std::string> process_environment();

// The env name for a flag: "data-dir" → "DISTCONV_DATA_DIR".
std::string env_name_for(const std::string& prefix, const std::string& long_name);

// Parses "64GiB", "500M", "1.5G", "1048576" into bytes (binary multiples for K/M/G/T with or without "iB").
Result<uint64_t> parse_byte_size(const std::string& text);
// Parses "30s", "5m", "24h", "7d", "250ms" or a plain number of seconds into milliseconds.
Result<int64_t> parse_duration_ms(const std::string& text);

}  // namespace distconv::config
