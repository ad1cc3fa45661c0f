#include "transcoding_engine/assignment_check.hpp"

#include "common/hash.hpp"
#include "common/media/input_policy.hpp"
#include "common/media/options.hpp"
#include "common/ulid.hpp"

#include <algorithm>
#include <cctype>

namespace distconv::engine {
namespace {

Error refused(const std::string& field, const std::string& why) {
    // Reasons quote untrusted values (from validation too): no control character gets through.
    std::string clean;
    for (unsigned char c : why) clean += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
    return Error::invalid(field, "assignment refused: " + field + " " + clean);
}

// host:port of an authority, port made explicit from the scheme.
std::string authority_of(std::string_view rest, std::string_view scheme) {
    auto end = rest.find_first_of("/?#");
    std::string auth(rest.substr(0, end));
    if (auth.find('@') != std::string::npos) return "";  // userinfo: never in a server URL of ours
    std::transform(auth.begin(), auth.end(), auth.begin(), [](unsigned char c) { return std::tolower(c); });
    bool bracketed = !auth.empty() && auth.front() == '[';
    auto colon = auth.rfind(':');
    bool has_port = colon != std::string::npos && (!bracketed || colon > auth.find(']'));
    if (!has_port) auth += scheme == "https" ? ":443" : ":80";
    return auth;
}

}  // namespace

std::string printable(const std::string& text) {
    std::string out;
    for (size_t i = 0; i < text.size() && i < 64; ++i) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x20 || c == 0x7f || c == '\\') {
            out += "\\x" + to_hex(std::string(1, static_cast<char>(c)));
        } else {
            out += static_cast<char>(c);
        }
    }
    if (text.size() > 64) out += "...";
    return out;
}

std::string url_origin(const std::string& url) {
    for (std::string_view scheme : {"http", "https"}) {
        std::string prefix = std::string(scheme) + "://";
        if (url.size() > prefix.size() && url.compare(0, prefix.size(), prefix) == 0) {
            auto auth = authority_of(std::string_view(url).substr(prefix.size()), scheme);
            if (auth.empty() || auth.front() == ':') return "";
            return std::string(scheme) + "://" + auth;
        }
    }
    return "";
}

Status check_assignment(const protocol::Assignment& a, const std::string& server) {
    if (!is_ulid(a.assignment_id)) return refused("assignment_id", "is not a ULID");
    if (!is_ulid(a.job_id)) return refused("job_id", "is not a ULID");
    if (a.fencing_token < 1) return refused("fencing_token", "must be at least 1");
    if (a.source_size < 0) return refused("source_size", "must not be negative");

    // The server builds the absolute URL from the Host the engine sent, so it names the configured
    // server; the scheme may differ behind a TLS-terminating proxy, the host and port may not.
    const std::string path = "/api/v1/assignments/" + a.assignment_id + "/source";
    if (a.source_url != path) {
        auto origin = url_origin(a.source_url);
        auto ours = url_origin(server);
        auto host_port = [](const std::string& o) { return o.substr(o.find("://") + 3); };
        std::string rest = a.source_url.substr(std::min(a.source_url.size(), a.source_url.find("://") + 3));
        std::string url_path = rest.substr(std::min(rest.size(), rest.find('/')));
        if (origin.empty() || ours.empty() || host_port(origin) != host_port(ours) || url_path != path)
            return refused("source_url", "is not this assignment's source on the configured server " + ours);
    }

    if (!media::demuxer_allowed(a.source_format))
        return refused("source_format",
                       "'" + printable(a.source_format) + "' is not a demuxer engines read sources with");
    if (media::container_muxer(a.output_container).empty())
        return refused("output_container",
                       "'" + printable(a.output_container) + "' is not a known container");

    auto plan = protocol::assignment_plan(a);
    if (!plan) return refused("source_probe", "gives no stream plan: " + plan.error().message);
    auto expected = protocol::assignment_argv(a.options, a.transfer_mode, a.source_format,
                                              plan->has_value() ? &**plan : nullptr, a.video_segment());
    if (!expected) return refused("options", "are not valid: " + expected.error().message);
    if (*expected != a.ffmpeg_argv)
        return refused("ffmpeg_argv", "differs from the command this engine builds from the job's options");
    if (a.options.container.value_or("mp4") != a.output_container)
        return refused("output_container", "differs from the job's container");

    auto printable = [](const std::string& s) {
        return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; });
    };
    if (a.credential.size() > 512 || !printable(a.credential))
        return refused("credential", "is not a plain token");
    return {};
}

}  // namespace distconv::engine
