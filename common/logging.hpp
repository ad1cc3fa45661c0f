#pragma once
// spdlog set-up shared by every program: level, text or JSON lines, and secrets redacted from every
// message before it is written (API keys, bearer tokens, passwords in URLs).

#include "common/error.hpp"

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace distconv::logging {

enum class Format { Text, Json };

struct Settings {
    std::string level = "info";  // trace|debug|info|warn|error|critical|off
    Format format = Format::Text;
    std::string file;  // empty: stderr
    std::string program = "distconv";
};

Result<Format> parse_format(std::string_view name);  // "text" | "json"
Result<spdlog::level::level_enum> parse_level(std::string_view name);

// Installs the default logger. Safe to call more than once (the last call wins).
Status setup(const Settings& settings);

// Fields added to every line this thread logs until cleared (e.g. request_id, job_id): text lines end
// with " key=value", JSON lines carry them as members.
void set_context(std::string key, std::string value);
void clear_context();

// Masks secrets in free text: "Bearer abc" → "Bearer ***", "dcv_…" keys, "key=…"/"token=…"/
// "password=…" query or INI values, and "user:pass@" in URLs.
std::string redact(std::string_view text);

// Control characters written visibly: "\n" → "\\n", "\r", "\t", others "\\xNN". Text log lines pass
// every message and context field through it (JSON lines are escaped by the encoder).
std::string escape_control(std::string_view text);

// A formatter that redacts and writes either "2026-…Z INFO [program] message" or one JSON object per line
// ({"ts","level","logger","msg"}). Exposed for tests.
std::unique_ptr<spdlog::formatter> make_formatter(Format format, std::string program);

}  // namespace distconv::logging
