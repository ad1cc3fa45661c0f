#include "common/logging.hpp"

#include "common/time.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <regex>
#include <utility>
#include <vector>

namespace distconv::logging {
namespace {

std::vector<std::pair<std::string, std::string>>& context() {
    thread_local std::vector<std::pair<std::string, std::string>> fields;
    return fields;
}

class RedactingFormatter final : public spdlog::formatter {
  public:
    RedactingFormatter(Format format, std::string program)
        : m_format(format), m_program(std::move(program)) {}

    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        std::string text = redact(std::string_view(msg.payload.data(), msg.payload.size()));
        std::string ts = format_rfc3339(msg.time, true);
        auto level = spdlog::level::to_string_view(msg.level);
        std::string line;
        if (m_format == Format::Json) {
            nlohmann::json j{{"ts", ts},
                             {"level", std::string(level.data(), level.size())},
                             {"logger", m_program},
                             {"msg", text}};
            for (const auto& [key, value] : context()) j[key] = value;
            line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        } else {
            // One record is one line: a newline or other control character in a message or a field
            // (a decoded URL's %0a, a filename) is written escaped, so no line can be forged.
            line = ts + " " + std::string(level.data(), level.size()) + " [" + m_program + "] " +
                   escape_control(text);
            for (const auto& [key, value] : context())
                line += " " + escape_control(key) + "=" + escape_control(value);
        }
        line.push_back('\n');
        dest.append(line.data(), line.data() + line.size());
    }

    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<RedactingFormatter>(m_format, m_program);
    }

  private:
    Format m_format;
    std::string m_program;
};

}  // namespace

void set_context(std::string key, std::string value) {
    for (auto& [k, v] : context())
        if (k == key) {
            v = std::move(value);
            return;
        }
    context().emplace_back(std::move(key), std::move(value));
}

void clear_context() {
    context().clear();
}

std::string escape_control(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (unsigned char c : text) {
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            static constexpr char k_hex[] = "0123456789abcdef";
            out += "\\x";
            out += k_hex[c >> 4];
            out += k_hex[c & 0xf];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

Result<Format> parse_format(std::string_view name) {
    if (name == "text") return Format::Text;
    if (name == "json") return Format::Json;
    return Error::invalid("log-format",
                          "log format must be 'text' or 'json', not '" + std::string(name) + "'");
}

Result<spdlog::level::level_enum> parse_level(std::string_view name) {
    static const std::pair<std::string_view, spdlog::level::level_enum> k_levels[] = {
        {"trace", spdlog::level::trace},       {"debug", spdlog::level::debug},
        {"info", spdlog::level::info},         {"warn", spdlog::level::warn},
        {"warning", spdlog::level::warn},      {"error", spdlog::level::err},
        {"critical", spdlog::level::critical}, {"off", spdlog::level::off}};
    for (const auto& [n, l] : k_levels)
        if (n == name) return l;
    return Error::invalid("log-level",
                          "log level must be one of trace, debug, info, warn, error, critical, off; not '" +
                              std::string(name) + "'");
}

std::string redact(std::string_view text) {
    static const std::regex k_bearer(R"((Bearer\s+)[^\s"',;]+)", std::regex::icase);
    static const std::regex k_key(R"(dcv_[A-Za-z0-9_\-]{8,})");
    static const std::regex k_assign(R"(((?:api[_-]?key|key|token|password|secret)\s*[=:]\s*"?)[^\s"&,;]+)",
                                     std::regex::icase);
    static const std::regex k_userinfo(R"((://[^/\s:@]+:)[^/\s@]+@)");
    std::string s(text);
    s = std::regex_replace(s, k_bearer, "$1***");
    s = std::regex_replace(s, k_key, "dcv_***");
    s = std::regex_replace(s, k_assign, "$1***");
    s = std::regex_replace(s, k_userinfo, "$1***@");
    return s;
}

std::unique_ptr<spdlog::formatter> make_formatter(Format format, std::string program) {
    return std::make_unique<RedactingFormatter>(format, std::move(program));
}

Status setup(const Settings& settings) {
    auto level = parse_level(settings.level);
    if (!level) return level.error();
    spdlog::sink_ptr sink;
    try {
        if (settings.file.empty())
            sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
        else
            sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(settings.file);
    } catch (const spdlog::spdlog_ex& e) {
        return Error::invalid("log-file", std::string("cannot open log file: ") + e.what());
    }
    sink->set_formatter(make_formatter(settings.format, settings.program));
    auto logger = std::make_shared<spdlog::logger>(settings.program, sink);
    logger->set_level(*level);
    logger->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(logger);
    return {};
}

}  // namespace distconv::logging
