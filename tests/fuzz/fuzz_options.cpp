// Fuzzes the job options pipeline (common/media/options.hpp, ffmpeg_args.hpp): JSON -> parse ->
// resolve (preset + validate) -> ffmpeg argv -> the quoted command shown to users.
// Input: the job's "options" JSON. The ffmpeg settings (progress, streaming, threads, endpoints)
// are picked from a hash of the input.
// Invariants:
//  - to_json() and parse_job_options() round-trip;
//  - argv is argv[0], then only flags ffmpeg_args.cpp may emit (or the allow-listed extra_args),
//    each value flag followed by a value that is not an option; exactly one -i (the given input),
//    and it ends with -f <the container's muxer> <the given output>; no control characters;
//  - quote_command() is one shell word per argument and unquotes back to argv;
//  - default_output_filename() always yields a name validate() accepts;
//  - an input or output endpoint accepted by build_ffmpeg_argv cannot be read as an option.

#include "common/media/ffmpeg_args.hpp"
#include "common/media/input_policy.hpp"
#include "common/media/options.hpp"
#include "fuzz_check.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

using namespace distconv::media;

namespace {

const std::set<std::string>& no_value_flags() {
    static const std::set<std::string> flags = {"-hide_banner", "-nostdin", "-y", "-nostats", "-vn", "-an"};
    return flags;
}

const std::set<std::string>& value_flags() {
    static const std::set<std::string> flags = {
        // emitted by build_ffmpeg_argv
        "-loglevel", "-progress", "-ss", "-i", "-t", "-map", "-c:v", "-preset", "-cpu-used", "-deadline",
        "-row-mt", "-crf", "-b:v", "-maxrate", "-bufsize", "-profile:v", "-pix_fmt", "-r", "-vf",
        "-x265-params", "-tag:v", "-c:a", "-b:a", "-ac", "-ar", "-movflags", "-threads",
        // the pinned input (input_policy.hpp), before -i
        "-protocol_whitelist", "-format_whitelist", "-f",
        // the extra_args allow-list
        "-g", "-keyint_min", "-bf", "-refs", "-sc_threshold", "-tile-columns", "-lag-in-frames", "-aq-mode",
        "-tune", "-level"};
    return flags;
}

bool has_control(const std::string& s) {
    return std::any_of(s.begin(), s.end(), [](char ch) {
        auto c = static_cast<unsigned char>(ch);
        return c < 0x20 || c == 0x7f;
    });
}

// POSIX shell word splitting for what quote_command() produces: unquoted words, '...' and \x.
std::vector<std::string> shell_split(const std::string& command) {
    std::vector<std::string> words;
    std::string word;
    bool in_word = false;
    for (size_t i = 0; i < command.size(); ++i) {
        char c = command[i];
        if (c == ' ') {
            if (in_word) words.push_back(word);
            word.clear();
            in_word = false;
        } else if (c == '\'') {
            auto end = command.find('\'', i + 1);
            FUZZ_CHECK(end != std::string::npos, "quote_command closes every quote");
            word.append(command, i + 1, end - i - 1);
            i = end;
            in_word = true;
        } else if (c == '\\') {
            FUZZ_CHECK(i + 1 < command.size(), "quote_command never ends with a backslash");
            word += command[++i];
            in_word = true;
        } else {
            FUZZ_CHECK(c != '"' && c != '$' && c != '`' && c != ';' && c != '&' && c != '|' && c != '<' &&
                           c != '>' && c != '(' && c != ')' && c != '*' && c != '?' && c != '[' && c != '~' &&
                           c != '\n' && c != '\t' && c != '#',
                       "no unquoted shell metacharacter");
            word += c;
            in_word = true;
        }
    }
    if (in_word) words.push_back(word);
    return words;
}

void check_quoting(const std::vector<std::string>& argv) {
    FUZZ_CHECK(shell_split(quote_command(argv)) == argv, "quote_command unquotes back to argv");
}

void check_argv(const std::vector<std::string>& argv, const JobOptions& resolved, const std::string& input,
                const std::string& output, const ArgvSettings& settings) {
    const size_t n = argv.size();
    FUZZ_CHECK(n >= 6, "argv has the program, -i INPUT and -f MUXER OUTPUT");
    FUZZ_CHECK(argv[0] == settings.ffmpeg, "argv[0] is the ffmpeg program");
    FUZZ_CHECK(argv[n - 3] == "-f", "the muxer is always named");
    FUZZ_CHECK(argv[n - 2] == container_muxer(resolved.container.value_or("mp4")), "the container's muxer");
    FUZZ_CHECK(argv[n - 1] == output, "the output is last");
    static const std::regex k_scale("^scale=-?[0-9]+:-?[0-9]+$");
    int inputs = 0, whitelists = 0;
    for (size_t i = 1; i < n - 3;) {
        const std::string& flag = argv[i];
        if (no_value_flags().count(flag)) {
            ++i;
            continue;
        }
        FUZZ_CHECK(value_flags().count(flag) == 1, "only known flags reach ffmpeg");
        FUZZ_CHECK(i + 1 < n - 3, "every value flag has a value");
        const std::string& value = argv[i + 1];
        if (flag == "-i") {
            ++inputs;
            FUZZ_CHECK(value == input, "the only input is the given one");
        } else {
            FUZZ_CHECK(!value.empty() && value.front() != '-', "option values are not options");
            FUZZ_CHECK(!has_control(value), "no control characters in values");
        }
        if (flag == "-protocol_whitelist") {
            ++whitelists;
            FUZZ_CHECK(inputs == 0 && value == settings.input_protocols, "the input's protocols are pinned");
            FUZZ_CHECK(value == "file" || value == "http,tcp", "only the file or relay protocols");
        }
        if (flag == "-format_whitelist" || flag == "-f")
            FUZZ_CHECK(inputs == 0 && value == settings.input_format && demuxer_allowed(value),
                       "the input's demuxer is pinned to an allowed one");
        if (flag == "-vf") FUZZ_CHECK(std::regex_match(value, k_scale), "the only filter is a plain scale");
        if (flag == "-progress") FUZZ_CHECK(value == "pipe:1", "progress goes to stdout only");
        if (flag == "-map")
            FUZZ_CHECK(value == "0:v:0?" || value == "0:a:0?", "only the first input's streams");
        i += 2;
    }
    FUZZ_CHECK(inputs == 1, "exactly one -i");
    FUZZ_CHECK(whitelists == 1, "the input always has a protocol whitelist");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    const std::size_t h = std::hash<std::string>{}(text);

    static const std::array<std::string, 4> k_inputs = {"{input}", "/srv/pool/src/My Movie.mov",
                                                        "http://127.0.0.1:8080/api/v1/x?token=a&b=c", "-"};
    static const std::array<std::string, 3> k_outputs = {"{output}", "/srv/out/o'ut.mp4", "-"};
    ArgvSettings settings;
    settings.progress = (h & 1) != 0;
    settings.streamable = (h & 2) != 0;
    if (h & 4) settings.threads = static_cast<int>((h >> 3) % 9);
    static const std::array<std::string, 3> k_formats = {"", "mov", "matroska"};
    settings.input_format = k_formats[(h >> 16) % k_formats.size()];
    if (h & (1u << 20)) settings.input_protocols = "http,tcp";
    const std::string& input = k_inputs[(h >> 8) % k_inputs.size()];
    const std::string& output = k_outputs[(h >> 12) % k_outputs.size()];

    // The raw text as an endpoint and as an argument.
    if (auto argv = build_ffmpeg_argv(JobOptions{}, text, "{output}", settings)) {
        FUZZ_CHECK(text == "-" || (!text.empty() && text.front() != '-'), "an input is never an option");
        FUZZ_CHECK(!has_control(text), "an input has no control characters");
    }
    check_quoting({"ffmpeg", text, "", "x"});
    if (auto bitrate = parse_bitrate(text)) FUZZ_CHECK(std::isfinite(*bitrate) && *bitrate >= 0, "bitrate");

    auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded()) return 0;
    auto parsed = parse_job_options(json);
    if (!parsed) {
        FUZZ_CHECK(parsed.error().code == distconv::ErrorCode::InvalidArgument,
                   "parse errors are INVALID_ARGUMENT");
        return 0;
    }
    auto again = parse_job_options(to_json(*parsed));
    FUZZ_CHECK(again && *again == *parsed, "to_json and parse_job_options round-trip");

    auto resolved = resolve_options(*parsed);
    if (!resolved) {
        FUZZ_CHECK(resolved.error().code == distconv::ErrorCode::InvalidArgument,
                   "resolve errors are INVALID_ARGUMENT");
        // Options that fail validation never reach an argv. (Options can validate and still not
        // resolve: {"output_filename":"x"} resolves to mp4, and "x" does not end with .mp4; the
        // argv builder never sees output_filename, so that one is the submit's refusal to make.)
        if (!validate(*parsed).ok())
            FUZZ_CHECK(!build_ffmpeg_argv(*parsed, input, output, settings), "invalid options build no argv");
        return 0;
    }
    FUZZ_CHECK(validate(*resolved).ok(), "resolved options validate");

    auto argv = build_ffmpeg_argv(*resolved, input, output, settings);
    FUZZ_CHECK(argv.ok(), "resolved options always build an argv");
    check_argv(*argv, *resolved, input, output, settings);
    check_quoting(*argv);

    JobOptions named = *resolved;
    named.output_filename = default_output_filename(text, *resolved);
    FUZZ_CHECK(validate(named).ok(), "default_output_filename yields a valid name");
    return 0;
}
