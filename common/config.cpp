#include "common/config.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <ostream>
#include <set>

extern char** environ;

namespace distconv::config {
namespace {

void collect_options(CLI::App& app, std::vector<CLI::Option*>& out) {
    for (CLI::Option* opt : app.get_options()) out.push_back(opt);
    for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) collect_options(*sub, out);
}

void collect_options(const CLI::App& app, std::vector<const CLI::Option*>& out) {
    for (const CLI::Option* opt : app.get_options()) out.push_back(opt);
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
        collect_options(*sub, out);
}

std::string upper_snake(const std::string& s) {
    std::string out;
    for (char c : s)
        out.push_back(c == '-' || c == '.' ? '_'
                                           : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    return out;
}

Error cli_error(const CLI::Error& e) {
    std::string msg = e.what();
    std::string kind = e.get_name();
    nlohmann::json details{{"kind", kind}};
    if (kind == "ConfigError" || kind == "FileError") details["source"] = "config";
    if (msg.find("INI was not able to parse") != std::string::npos) {
        // CLI11 says "INI was not able to parse KEY": say it in our words.
        std::string key = msg.substr(msg.rfind(' ') + 1);
        msg = "unknown key '" + key + "' in the config file";
        details["key"] = key;
    }
    return Error(ErrorCode::InvalidArgument, msg, details);
}

}  // namespace

std::string env_name_for(const std::string& prefix, const std::string& long_name) {
    return prefix + upper_snake(long_name);
}

void add_sources(CLI::App& app, const SourceSettings& settings) {
    std::string default_file;
    for (const auto& f : settings.default_files) {
        std::error_code ec;
        if (std::filesystem::is_regular_file(f, ec)) {
            default_file = f;
            break;
        }
    }
    app.set_config("--config", default_file, "INI config file (keys are the long flag names)", false);
    app.allow_config_extras(false);  // an unknown key in the file is an error, not silently ignored
    std::vector<CLI::Option*> options;
    collect_options(app, options);
    for (CLI::Option* opt : options) {
        const auto& lnames = opt->get_lnames();
        if (lnames.empty() || lnames.front() == "config" || lnames.front() == "help" ||
            lnames.front() == "version")
            continue;
        if (opt->get_envname().empty()) opt->envname(env_name_for(settings.env_prefix, lnames.front()));
    }
}

Result<Outcome> parse(CLI::App& app, const std::vector<std::string>& args, std::ostream& out) {
    // CLI11 wants the arguments reversed when given as a vector (program name excluded).
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    try {
        app.parse(reversed);
    } catch (const CLI::CallForHelp& e) {
        out << app.help();
        return Outcome::ExitSuccess;
    } catch (const CLI::CallForAllHelp& e) {
        out << app.help("", CLI::AppFormatMode::All);
        return Outcome::ExitSuccess;
    } catch (const CLI::CallForVersion& e) {
        out << app.version() << "\n";
        return Outcome::ExitSuccess;
    } catch (const CLI::Error& e) {
        return cli_error(e);
    }
    return Outcome::Run;
}

Result<Outcome> parse(CLI::App& app, int argc, const char* const* argv, std::ostream& out) {
    std::vector<std::string> args;
    for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
    return parse(app, args, out);
}

std::vector<std::string> unknown_env_vars(const CLI::App& app, const std::vector<std::string>& environment,
                                          const std::string& prefix) {
    std::set<std::string> known;
    std::vector<const CLI::Option*> options;
    collect_options(app, options);
    for (const auto* opt : options)
        if (!opt->get_envname().empty()) known.insert(opt->get_envname());
    std::vector<std::string> unknown;
    for (const auto& kv : environment) {
        if (kv.rfind(prefix, 0) != 0) continue;
        std::string name = kv.substr(0, kv.find('='));
        if (!known.count(name)) unknown.push_back(name);
    }
    return unknown;
}

std::vector<std::string> process_environment() {
    std::vector<std::string> out;
    for (char** e = environ; e && *e; ++e) out.emplace_back(*e);
    return out;
}

Result<uint64_t> parse_byte_size(const std::string& text) {
    std::string s = text;
    s.erase(std::remove_if(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); }), s.end());
    if (s.empty()) return Error(ErrorCode::InvalidArgument, "empty size");
    size_t pos = 0;
    double number = 0;
    try {
        number = std::stod(s, &pos);
    } catch (...) {
        return Error(ErrorCode::InvalidArgument,
                     "'" + text + "' is not a size (examples: 500M, 64GiB, 1048576)");
    }
    if (!std::isfinite(number) || number < 0)
        return Error(ErrorCode::InvalidArgument, "'" + text + "' is not a size (must be >= 0)");
    std::string unit = s.substr(pos);
    for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (unit.size() >= 2 && unit.substr(unit.size() - 2) == "IB")
        unit = unit.substr(0, unit.size() - 2);
    else if (unit.size() >= 2 && unit.back() == 'B')
        unit.pop_back();
    double mult = 1;
    if (unit.empty() || unit == "B")
        mult = 1;
    else if (unit == "K")
        mult = 1024.0;
    else if (unit == "M")
        mult = 1024.0 * 1024;
    else if (unit == "G")
        mult = 1024.0 * 1024 * 1024;
    else if (unit == "T")
        mult = 1024.0 * 1024 * 1024 * 1024;
    else
        return Error(ErrorCode::InvalidArgument, "'" + text + "' has an unknown unit (use K, M, G or T)");
    double bytes = number * mult;
    if (bytes > 1.8e19) return Error(ErrorCode::InvalidArgument, "'" + text + "' is too large");
    return static_cast<uint64_t>(bytes);
}

Result<int64_t> parse_duration_ms(const std::string& text) {
    std::string s = text;
    s.erase(std::remove_if(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); }), s.end());
    size_t pos = 0;
    double number = 0;
    try {
        number = std::stod(s, &pos);
    } catch (...) {
        return Error(ErrorCode::InvalidArgument,
                     "'" + text + "' is not a duration (examples: 30s, 5m, 24h, 7d)");
    }
    if (!std::isfinite(number) || number < 0)
        return Error(ErrorCode::InvalidArgument, "'" + text + "' is not a duration (must be >= 0)");
    std::string unit = s.substr(pos);
    double mult;
    if (unit.empty() || unit == "s")
        mult = 1000;
    else if (unit == "ms")
        mult = 1;
    else if (unit == "m" || unit == "min")
        mult = 60e3;
    else if (unit == "h")
        mult = 3600e3;
    else if (unit == "d")
        mult = 86400e3;
    else
        return Error(ErrorCode::InvalidArgument, "'" + text + "' has an unknown unit (use ms, s, m, h or d)");
    double ms = number * mult;
    if (ms > 9.2e18) return Error(ErrorCode::InvalidArgument, "'" + text + "' is too long");
    return static_cast<int64_t>(ms);
}

}  // namespace distconv::config
