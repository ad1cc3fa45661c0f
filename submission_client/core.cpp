#include "submission_client/core.hpp"

#include "common/hash.hpp"
#include "common/media/options.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <sstream>

namespace distconv::client {

namespace stdfs = std::filesystem;

int exit_code_for(const Error& error) {
    switch (error.code) {
        case ErrorCode::Unauthenticated:
        case ErrorCode::Forbidden:
        case ErrorCode::Unavailable:
            return k_exit_unreachable;
        case ErrorCode::InvalidArgument:
            return k_exit_usage;
        default:
            return k_exit_job_failed;
    }
}

std::string error_line(const Error& error) {
    return "distconv: " + error.to_string();
}

// --- submit ---------------------------------------------------------------------------------------

namespace {

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

media::JobOptions options_from(const TranscodeFlags& f) {
    media::JobOptions o;
    o.preset = f.preset;
    o.container = f.container;
    o.video.codec = f.video_codec;
    o.video.crf = f.crf;
    o.video.bitrate = f.bitrate;
    o.video.scale = f.scale;
    o.video.fps = f.fps;
    o.audio.codec = f.audio_codec;
    o.audio.bitrate = f.audio_bitrate;
    o.split.mode = f.split;
    o.split.segment_seconds = f.segment_seconds;
    return o;
}

// The container an output file name asks for ("x.mkv" -> "mkv"), if it is one we support.
std::optional<std::string> container_of_name(const stdfs::path& p) {
    std::string ext = lower(p.extension().string());
    if (ext.size() < 2) return std::nullopt;
    ext = ext.substr(1);
    for (const auto& c : media::supported_containers())
        if (media::container_extension(c) == ext || c == ext) return c;
    return std::nullopt;
}

}  // namespace

Result<std::string> resolve_container(const TranscodeFlags& flags,
                                      const std::optional<stdfs::path>& explicit_output) {
    if (flags.priority && (*flags.priority < -100 || *flags.priority > 100))
        return Error::invalid("priority", "--priority must be between -100 and 100");
    media::JobOptions o = options_from(flags);
    if (!o.container && explicit_output) o.container = container_of_name(*explicit_output);
    auto resolved = media::resolve_options(o);
    if (!resolved) return resolved.error();
    return resolved->container.value_or(std::string("mp4"));
}

Result<nlohmann::json> build_job_json(const TranscodeFlags& flags, const std::string& container,
                                      const std::string& output_filename) {
    media::JobOptions o = options_from(flags);
    o.container = container;
    o.output_filename = output_filename;
    auto checked = media::resolve_options(o);
    if (!checked) return checked.error();
    nlohmann::json j = media::to_json(o);
    if (flags.priority) j["priority"] = *flags.priority;
    return j;
}

stdfs::path derive_output_path(const stdfs::path& input, const std::string& container,
                               const std::optional<stdfs::path>& output_dir) {
    std::string ext = media::container_extension(container);
    if (ext.empty()) ext = container;
    stdfs::path dir = output_dir ? *output_dir : input.parent_path();
    std::string stem = input.stem().string();
    if (stem.empty()) stem = "output";
    stdfs::path candidate = dir / (stem + "." + ext);
    std::error_code ec;
    auto same = [&](const stdfs::path& a, const stdfs::path& b) {
        return stdfs::weakly_canonical(stdfs::absolute(a, ec), ec) ==
               stdfs::weakly_canonical(stdfs::absolute(b, ec), ec);
    };
    if (same(candidate, input)) candidate = dir / (stem + ".transcoded." + ext);
    return candidate;
}

// --- multipart ------------------------------------------------------------------------------------

namespace {
// Quotes and line breaks cannot appear inside a quoted Content-Disposition parameter.
std::string safe_filename(const std::string& name) {
    std::string out;
    for (unsigned char c : name) {
        if (c == '"')
            out += "%22";
        else if (c == '\r' || c == '\n' || c == 0)
            out += '_';
        else
            out += static_cast<char>(c);
    }
    return out.empty() ? "input" : out;
}
}  // namespace

MultipartFraming make_multipart_framing(const std::string& job_json, const std::string& filename,
                                        const std::string& boundary) {
    MultipartFraming f;
    f.boundary = boundary;
    f.head = "--" + boundary + "\r\n" + "Content-Disposition: form-data; name=\"job\"\r\n" +
             "Content-Type: application/json\r\n\r\n" + job_json + "\r\n" + "--" + boundary + "\r\n" +
             "Content-Disposition: form-data; name=\"file\"; filename=\"" + safe_filename(filename) +
             "\"\r\n" + "Content-Type: application/octet-stream\r\n\r\n";
    f.tail = "\r\n--" + boundary + "--\r\n";
    return f;
}

std::string random_boundary() {
    std::string token = random_token(24);
    // URL-safe base64 may contain '-' and '_', both allowed in a boundary.
    return "distconv-" + token;
}

size_t MultipartBody::read(char* buf, size_t size) {
    size_t written = 0;
    while (written < size && m_phase != Phase::Done) {
        if (m_phase == Phase::Head || m_phase == Phase::Tail) {
            const std::string& s = m_phase == Phase::Head ? m_framing.head : m_framing.tail;
            size_t n = std::min(size - written, s.size() - m_pos);
            std::memcpy(buf + written, s.data() + m_pos, n);
            written += n;
            m_pos += n;
            if (m_pos == s.size()) {
                m_phase = m_phase == Phase::Head ? Phase::File : Phase::Done;
                m_pos = 0;
            }
        } else {
            size_t got = std::fread(buf + written, 1, size - written, m_file);
            if (got == 0) {
                if (std::ferror(m_file)) return http::k_read_abort;
                m_phase = Phase::Tail;
            }
            written += got;
        }
    }
    return written;
}

// --- SSE ------------------------------------------------------------------------------------------

std::vector<SseEvent> SseParser::feed(std::string_view bytes) {
    std::vector<SseEvent> out;
    for (char c : bytes) {
        if (m_skip_lf) {
            m_skip_lf = false;
            if (c == '\n') continue;
        }
        if (c == '\r' || c == '\n') {
            if (c == '\r') m_skip_lf = true;
            line(m_buffer, out);
            m_buffer.clear();
        } else {
            m_buffer.push_back(c);
        }
    }
    return out;
}

void SseParser::line(std::string_view l, std::vector<SseEvent>& out) {
    if (l.empty()) {  // a blank line dispatches the event
        if (m_has_data) {
            if (!m_current.data.empty() && m_current.data.back() == '\n') m_current.data.pop_back();
            out.push_back(m_current);
        }
        std::string last_id = m_current.id;
        m_current = SseEvent{};
        m_current.id = last_id;
        m_has_data = false;
        return;
    }
    if (l.front() == ':') return;  // comment (keep-alive)
    auto colon = l.find(':');
    std::string_view field = l.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view{} : l.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field == "event") {
        m_current.event = std::string(value);
    } else if (field == "data") {
        m_current.data.append(value);
        m_current.data.push_back('\n');
        m_has_data = true;
    } else if (field == "id") {
        m_current.id = std::string(value);
    }
}

// --- formatting -----------------------------------------------------------------------------------

std::string format_bytes(uint64_t bytes) {
    static const char* k_units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) return std::to_string(bytes) + " B";
    double v = static_cast<double>(bytes);
    int unit = 0;
    while (v >= 1024 && unit < 4) {
        v /= 1024;
        ++unit;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f %s", v, k_units[unit]);
    return buf;
}

std::string format_rate(double bytes_per_second) {
    if (!(bytes_per_second >= 0) || !std::isfinite(bytes_per_second)) return "-- B/s";
    return format_bytes(static_cast<uint64_t>(bytes_per_second)) + "/s";
}

std::string format_duration(double seconds) {
    if (!(seconds >= 0) || !std::isfinite(seconds) || seconds > 360000) return "--:--";
    auto total = static_cast<long long>(std::llround(seconds));
    long long h = total / 3600, m = (total % 3600) / 60, s = total % 60;
    char buf[32];
    if (h > 0)
        std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", h, m, s);
    else
        std::snprintf(buf, sizeof buf, "%lld:%02lld", m, s);
    return buf;
}

std::string render_bar(double fraction, int width) {
    if (width < 1) width = 1;
    if (!(fraction >= 0)) fraction = 0;
    fraction = std::min(fraction, 1.0);
    int filled = static_cast<int>(std::floor(fraction * width + 1e-9));
    return "[" + std::string(static_cast<size_t>(filled), '#') +
           std::string(static_cast<size_t>(width - filled), '.') + "]";
}

std::string format_transfer_line(uint64_t done, uint64_t total, double elapsed_seconds, int bar_width) {
    std::ostringstream out;
    double rate = elapsed_seconds > 0 ? static_cast<double>(done) / elapsed_seconds : 0;
    if (total > 0) {
        double fraction = static_cast<double>(done) / static_cast<double>(total);
        char pct[8];
        std::snprintf(pct, sizeof pct, "%3d%%", static_cast<int>(std::min(fraction, 1.0) * 100));
        out << render_bar(fraction, bar_width) << ' ' << pct << "  " << format_bytes(done) << " / "
            << format_bytes(total);
    } else {
        out << format_bytes(done);
    }
    out << "  " << format_rate(rate);
    std::optional<double> eta;
    if (total > 0 && rate > 0) eta = static_cast<double>(total > done ? total - done : 0) / rate;
    out << "  ETA " << (eta ? format_duration(*eta) : std::string("--:--"));
    return out.str();
}

std::string format_job_line(const JobView& v, bool with_bar, int bar_width) {
    std::ostringstream out;
    out << (v.label.empty() ? v.job_id : v.label) << "  ";
    if (with_bar) out << render_bar(v.percent / 100.0, bar_width) << ' ';
    char pct[8];
    std::snprintf(pct, sizeof pct, "%3d%%", std::clamp(v.percent, 0, 100));
    out << pct << ' ' << v.state;
    char buf[64];
    if (v.state == "queued" && v.queue_position) out << " (position " << *v.queue_position << ")";
    if (v.fps) {
        std::snprintf(buf, sizeof buf, "  fps %.1f", *v.fps);
        out << buf;
    }
    if (v.speed) {
        std::snprintf(buf, sizeof buf, "  speed %.2fx", *v.speed);
        out << buf;
    }
    if (v.eta_seconds) out << "  ETA " << format_duration(*v.eta_seconds);
    if (!v.message.empty() && (v.state == "failed" || v.state == "canceled")) out << "  " << v.message;
    return out.str();
}

std::vector<std::string> format_stream_plan(const nlohmann::json& streams) {
    std::vector<std::string> out;
    if (!streams.is_array()) return out;
    auto text = [](const nlohmann::json& j, const char* key) {
        auto it = j.find(key);
        return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    for (const auto& s : streams) {
        if (!s.is_object()) continue;
        std::string line = "#" + (s.contains("index") && s["index"].is_number_integer()
                                      ? std::to_string(s["index"].get<int>())
                                      : std::string("?"));
        line += " " + text(s, "type") + " " + text(s, "codec");
        if (auto lang = text(s, "language"); !lang.empty()) line += " " + lang;
        if (auto title = text(s, "title"); !title.empty()) line += " \"" + title + "\"";
        if (auto d = s.find("disposition"); d != s.end() && d->is_array() && !d->empty()) {
            std::string flags;
            for (const auto& f : *d)
                if (f.is_string()) flags += (flags.empty() ? "" : ",") + f.get<std::string>();
            line += " [" + flags + "]";
        }
        line += " -> " + text(s, "action");
        if (auto reason = text(s, "reason"); !reason.empty()) line += " (" + reason + ")";
        out.push_back(line);
    }
    return out;
}

std::string render_table(const std::vector<std::string>& headers,
                         const std::vector<std::vector<std::string>>& rows) {
    std::vector<size_t> widths(headers.size(), 0);
    for (size_t i = 0; i < headers.size(); ++i) widths[i] = headers[i].size();
    for (const auto& r : rows)
        for (size_t i = 0; i < r.size() && i < widths.size(); ++i)
            widths[i] = std::max(widths[i], r[i].size());
    auto line = [&](const std::vector<std::string>& cells) {
        std::string s;
        for (size_t i = 0; i < widths.size(); ++i) {
            std::string cell = i < cells.size() ? cells[i] : "";
            if (i + 1 < widths.size()) cell.resize(widths[i], ' ');
            s += cell;
            if (i + 1 < widths.size()) s += "  ";
        }
        while (!s.empty() && s.back() == ' ') s.pop_back();
        return s + "\n";
    };
    std::string out = line(headers);
    for (const auto& r : rows) out += line(r);
    return out;
}

// --- server URL -----------------------------------------------------------------------------------

std::string api_base_url(const std::string& server) {
    std::string s = server;
    while (!s.empty() && s.back() == '/') s.pop_back();
    if (s.size() >= 7 && s.substr(s.size() - 7) == "/api/v1") return s;
    return s + "/api/v1";
}

bool is_loopback_host(std::string_view host) {
    std::string h = lower(std::string(host));
    if (h == "localhost" || h == "::1" || h == "[::1]" || h.ends_with(".localhost")) return true;
    if (h.rfind("127.", 0) != 0) return false;
    // A dotted IPv4 in 127.0.0.0/8, not a name like "127.0.0.1.example.com".
    int dots = 0;
    for (char c : h) {
        if (c == '.')
            ++dots;
        else if (!std::isdigit(static_cast<unsigned char>(c)))
            return false;
    }
    return dots == 3;
}

Status check_key_transport(const std::string& server, bool has_key, bool allow_insecure) {
    auto scheme_end = server.find("://");
    if (scheme_end == std::string::npos)
        return Error::invalid("server", "--server must be an http:// or https:// URL (got '" + server + "')");
    std::string scheme = lower(server.substr(0, scheme_end));
    if (scheme != "http" && scheme != "https")
        return Error::invalid("server", "--server must be an http:// or https:// URL (got '" + server + "')");
    if (scheme == "https" || !has_key || allow_insecure) return {};
    std::string rest = server.substr(scheme_end + 3);
    rest = rest.substr(0, rest.find_first_of("/?#"));
    if (auto at = rest.rfind('@'); at != std::string::npos) rest = rest.substr(at + 1);
    std::string host;
    if (!rest.empty() && rest.front() == '[')
        host = rest.substr(0, rest.find(']') + 1);
    else
        host = rest.substr(0, rest.find(':'));
    if (is_loopback_host(host)) return {};
    return Error::invalid("server", "refusing to send the API key over plain http to " + host +
                                        ": use https:// (with --ca-cert if needed) or pass --allow-insecure");
}

}  // namespace distconv::client
