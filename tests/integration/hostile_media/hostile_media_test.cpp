// The attack corpus of hostile files (tests/data/hostile_media, its README says what each is): HLS and
// DASH playlists, concat lists, SDP, subtitles and MP4 data references that make ffmpeg fetch URLs or
// read other local files. The real distconv-dispatch and distconv-engine binaries run them on
// 127.0.0.1 against a listener that records every connection and a secret engine-local clip:
//
//   - each file is refused at submit (415 naming the format the manifest says it is detected as),
//     or runs on a file-mode and a stream-mode engine to the end the manifest says, and then: the
//     listener saw nothing, no result holds the secret, the engine key is nowhere an attacker can
//     look, every daemon is alive;
//   - the playlists and lists swapped into the pool after the dispatch accepted a real clip (its
//     check bypassed) are read by the engines only as the format the dispatch recorded, with ffmpeg
//     unsandboxed so that pinning alone is what stops them;
//   - and, so that "nothing happened" means something: the armed cases do reach the listener or the
//     secret when ffmpeg is not pinned, and the control clip completes on both engines.
//
// DISTCONV_CORPUS_VERBOSE=1 prints what happened to every case and how long each phase took.

#include "tests/integration/engine_e2e/e2e_support.hpp"
#include "tests/support/sqlite_peer.hpp"

#include "common/hash.hpp"
#include "common/media/ffprobe.hpp"
#include "common/media/input_policy.hpp"
#include "common/process.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

using namespace distconv;
using namespace distconv::e2e;
using namespace std::chrono_literals;
namespace stdfs = std::filesystem;

namespace {

bool verbose() {
    const char* v = std::getenv("DISTCONV_CORPUS_VERBOSE");
    return v && *v && std::string(v) != "0";
}

// Prints how long the test has run at each phase (DISTCONV_CORPUS_VERBOSE=1), to keep it under a minute.
struct Phases {
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    void operator()(const char* what) const {
        if (!verbose()) return;
        auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
        std::cout << "  [" << ms.count() << " ms] " << what << "\n";
    }
};

bool contains(std::string_view haystack, std::string_view needle) {
    return !needle.empty() && haystack.find(needle) != std::string_view::npos;
}

std::string printable(std::string_view bytes, size_t max = 160) {
    std::string out;
    for (unsigned char c : bytes.substr(0, max)) {
        if (c == '\r')
            out += "\\r";
        else if (c == '\n')
            out += "\\n";
        else if (c < 0x20 || c >= 0x7f)
            out += '.';
        else
            out += static_cast<char>(c);
    }
    return out;
}

// --- The listener ---------------------------------------------------------------------------------

// TCP and UDP on 127.0.0.1, the same port: records every connection (at accept, before anything is
// read) and its first bytes, and every datagram; answers nothing and closes, so a client fails fast.
class Listener {
  public:
    struct Hit {
        std::string kind;  // "tcp" or "udp"
        std::string bytes;
    };

    Listener() {
        for (int attempt = 0; attempt < 50 && m_port == 0; ++attempt) {
            int tcp = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            socklen_t len = sizeof a;
            if (tcp < 0 || ::bind(tcp, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
                ::listen(tcp, 64) != 0 || ::getsockname(tcp, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
                if (tcp >= 0) ::close(tcp);
                continue;
            }
            int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            if (udp < 0 ||
                ::bind(udp, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {  // that UDP port is taken
                ::close(tcp);
                if (udp >= 0) ::close(udp);
                continue;
            }
            m_tcp = tcp;
            m_udp = udp;
            m_port = ntohs(a.sin_port);
        }
        EXPECT_NE(m_port, 0) << "the listener could not bind 127.0.0.1";
        EXPECT_EQ(::pipe2(m_wake, O_CLOEXEC), 0);
        m_thread = std::thread([this] { loop(); });
    }

    ~Listener() {
        m_stop = true;
        if (m_wake[1] >= 0) (void)!::write(m_wake[1], "x", 1);
        if (m_thread.joinable()) m_thread.join();
        for (int fd : {m_tcp, m_udp, m_wake[0], m_wake[1]})
            if (fd >= 0) ::close(fd);
    }

    int port() const { return m_port; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port); }

    std::vector<Hit> hits() const {
        std::lock_guard lock(m_mutex);
        return m_hits;
    }
    size_t count() const {
        std::lock_guard lock(m_mutex);
        return m_hits.size();
    }

    std::string describe() const {
        std::ostringstream out;
        for (const auto& h : hits()) out << "  " << h.kind << ": \"" << printable(h.bytes) << "\"\n";
        return out.str();
    }

  private:
    void loop() {
        while (!m_stop) {
            pollfd p[3] = {{m_tcp, POLLIN, 0}, {m_udp, POLLIN, 0}, {m_wake[0], POLLIN, 0}};
            if (::poll(p, 3, -1) < 0) {
                if (errno == EINTR) continue;
                return;
            }
            if (p[2].revents) return;
            if (p[0].revents & POLLIN) {
                int c = ::accept4(m_tcp, nullptr, nullptr, SOCK_CLOEXEC);
                if (c >= 0) {
                    size_t at = record("tcp", "");
                    std::string first = read_first_bytes(c);
                    {
                        std::lock_guard lock(m_mutex);
                        m_hits[at].bytes = first;
                    }
                    ::close(c);
                }
            }
            if (p[1].revents & POLLIN) {
                char buf[4096];
                ssize_t n = ::recv(m_udp, buf, sizeof buf, 0);
                if (n >= 0) record("udp", std::string(buf, static_cast<size_t>(n)));
            }
        }
    }

    size_t record(const std::string& kind, std::string bytes) {
        std::lock_guard lock(m_mutex);
        m_hits.push_back({kind, std::move(bytes)});
        return m_hits.size() - 1;
    }

    // Up to 4 KiB, the end of the request head, or 300 ms: whichever comes first.
    static std::string read_first_bytes(int fd) {
        std::string got;
        auto deadline = std::chrono::steady_clock::now() + 300ms;
        while (got.size() < 4096 && got.find("\r\n\r\n") == std::string::npos) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) break;
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
            char buf[1024];
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            got.append(buf, static_cast<size_t>(n));
        }
        return got;
    }

    int m_tcp = -1, m_udp = -1;
    int m_wake[2] = {-1, -1};
    int m_port = 0;
    std::atomic<bool> m_stop{false};
    std::thread m_thread;
    mutable std::mutex m_mutex;
    std::vector<Hit> m_hits;
};

// --- The secret and the clip ----------------------------------------------------------------------

// A clip on the engines' machine, outside every work dir, that no result may ever contain: a marker
// (random per run, so it is in no committed file) in its tags, and a picture size (112x80) and tone
// no other input of the test has, so a transcode of it is recognisable even when the tags are lost.
constexpr int k_secret_width = 112;
constexpr int k_secret_height = 80;

struct Secret {
    stdfs::path path;
    std::string marker;
    std::string sha256;
};

Secret make_secret(const stdfs::path& dir) {
    Secret s;
    stdfs::create_directories(dir);
    s.path = dir / "secret.mp4";
    s.marker = "DISTCONV-HOSTILE-SECRET-" + to_hex(random_bytes(8));
    const std::string size = std::to_string(k_secret_width) + "x" + std::to_string(k_secret_height);
    int rc = test::run_command({"ffmpeg",
                                "-nostdin",
                                "-hide_banner",
                                "-loglevel",
                                "error",
                                "-y",
                                "-f",
                                "lavfi",
                                "-i",
                                "testsrc2=size=" + size + ":rate=25:duration=0.68",
                                "-f",
                                "lavfi",
                                "-i",
                                "sine=frequency=1234:sample_rate=44100:duration=0.68",
                                "-c:v",
                                "libx264",
                                "-preset",
                                "ultrafast",
                                "-pix_fmt",
                                "yuv420p",
                                "-c:a",
                                "aac",
                                "-b:a",
                                "32k",
                                "-shortest",
                                "-metadata",
                                "title=" + s.marker,
                                "-metadata",
                                "comment=" + s.marker,
                                "-metadata:s:v:0",
                                "title=" + s.marker,
                                s.path.string()});
    EXPECT_EQ(rc, 0) << "ffmpeg could not make the secret clip";
    s.sha256 = sha256_hex(test::read_file(s.path));
    return s;
}

// What the cases are filled and built with.
struct World {
    const Listener& listener;
    Secret secret;
    stdfs::path clip;  // the control clip (64x48, 0.4 s, moov after mdat), also the base of the dref MP4s

    // The template variables for one case. {listener} carries the case's name as its first path
    // segment, so a request that ever reaches the listener says which file sent it.
    std::map<std::string, std::string> vars(const std::string& case_name) const {
        return {{"listener", listener.url() + "/c/" + case_name},
                {"listener_host", "127.0.0.1"},
                {"listener_port", std::to_string(listener.port())},
                {"secret", secret.path.string()}};
    }
};

World make_world(const stdfs::path& dir, const Listener& listener) {
    World w{listener, make_secret(dir / "engine-local"), dir / "clip.mp4"};
    EXPECT_TRUE(test::make_test_clip(w.clip, 0.4, 64, 48));
    return w;
}

std::string fill(std::string text, const std::map<std::string, std::string>& vars) {
    for (const auto& [name, value] : vars) {
        const std::string key = "{" + name + "}";
        for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + value.size()))
            text.replace(at, key.size(), value);
    }
    return text;
}

// A string member of a server's JSON, "" when absent or null (value() throws on null).
std::string str(const nlohmann::json& j, const char* key) {
    if (!j.is_object()) return "";
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Runs fn(0..n-1) on `threads` threads (ffprobe, ffmpeg and the dispatch's probes are processes:
// two cores run two at a time). fn must use EXPECT_*, not ASSERT_*.
void parallel(size_t n, const std::function<void(size_t)>& fn, int threads = 3) {
    std::atomic<size_t> next{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&] {
            for (size_t i = next++; i < n; i = next++) fn(i);
        });
    for (auto& t : pool) t.join();
}

// --- MP4 data references --------------------------------------------------------------------------

std::string be16(uint32_t v) {
    return {static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
}
std::string be32(uint32_t v) {
    return be16(v >> 16) + be16(v & 0xffff);
}

std::string box(std::string_view type, std::string_view payload) {
    return be32(static_cast<uint32_t>(8 + payload.size())) + std::string(type) + std::string(payload);
}

struct Box {
    std::string type;
    std::string payload;
};

// The boxes of an ISO-BMFF byte range (32-bit sizes only: the clips here are tiny).
std::optional<std::vector<Box>> children(std::string_view b) {
    std::vector<Box> out;
    size_t off = 0;
    while (off < b.size()) {
        if (b.size() - off < 8) return std::nullopt;
        auto u = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(b[off + i])); };
        uint32_t size = (u(0) << 24) | (u(1) << 16) | (u(2) << 8) | u(3);
        if (size < 8 || size > b.size() - off) return std::nullopt;
        out.push_back({std::string(b.substr(off + 4, 4)), std::string(b.substr(off + 8, size - 8))});
        off += size;
    }
    return out;
}

// A 'url ' data reference with flags 0 (the media is not in this file) and a location.
std::string url_dref(const std::string& location) {
    return box("url ", std::string(4, '\0') + location + '\0');
}

// A Mac alias record ('alis') naming an absolute path, laid out as ffmpeg's mov_read_dref reads it.
std::string alis_dref(const std::string& path) {
    std::string name = path.substr(path.rfind('/') + 1).substr(0, 63);
    std::string p(10, '\0');            // creator, record size, version, kind
    p += '\0' + std::string(27, '\0');  // volume name (Pascal string): none
    p += std::string(12, '\0');         // volume date, fs type, disk type, parent id
    p += static_cast<char>(name.size()) + name + std::string(63 - name.size(), '\0');  // file name
    p += std::string(16, '\0');  // file number, date, type, creator
    p += be16(0) + be16(0);      // nlvl_from, nlvl_to: an absolute path
    p += std::string(16, '\0');  // volume attributes and the rest
    std::string data = path + (path.size() % 2 ? std::string(1, '\0') : std::string());
    p += be16(2) + be16(static_cast<uint32_t>(path.size())) + data;  // record 2: the absolute path
    p += be16(0xffff) + be16(0);                                     // end of records
    return box("alis", std::string(4, '\0') + p);
}

// Rebuilds a box with every dref holding `entry` only; udta/meta dropped when `strip_tags`.
std::optional<std::string> rebuild(const Box& b, const std::string& entry, bool strip_tags) {
    static const std::set<std::string> k_containers = {"moov", "trak", "mdia", "minf", "dinf"};
    if (strip_tags && (b.type == "udta" || b.type == "meta")) return std::string();
    if (b.type == "dref") return box("dref", std::string(4, '\0') + be32(1) + entry);
    if (!k_containers.count(b.type)) return box(b.type, b.payload);
    auto kids = children(b.payload);
    if (!kids) return std::nullopt;
    std::string out;
    for (const auto& k : *kids) {
        auto r = rebuild(k, entry, strip_tags);
        if (!r) return std::nullopt;
        out += *r;
    }
    return box(b.type, out);
}

// base "clip": the control clip with its drefs replaced (its samples stay in its own mdat, which
// comes before moov, so no chunk offset moves). base "secret_index": the secret's ftyp and moov only,
// tags stripped, drefs replaced: an index whose samples are all in the file the dref names.
std::optional<std::string> make_dref_mp4(const nlohmann::json& spec, const World& w,
                                         const std::map<std::string, std::string>& vars) {
    const std::string base = spec.value("base", "");
    const std::string kind = spec.value("dref", "");
    const std::string target = fill(spec.value("target", ""), vars);
    std::string entry;
    if (kind == "url ")
        entry = url_dref(target);
    else if (kind == "alis")
        entry = alis_dref(target);
    else
        return std::nullopt;
    const bool index_only = base == "secret_index";
    if (!index_only && base != "clip") return std::nullopt;
    auto top = children(test::read_file(index_only ? w.secret.path : w.clip));
    if (!top) return std::nullopt;
    std::string out;
    bool moov_seen = false;
    for (const auto& b : *top) {
        if (b.type == "moov") {
            auto r = rebuild(b, entry, index_only);
            if (!r) return std::nullopt;
            out += *r;
            moov_seen = true;
        } else if (!index_only || b.type == "ftyp") {
            if (b.type == "mdat" && moov_seen) return std::nullopt;  // offsets would move
            out += box(b.type, b.payload);
        }
    }
    return moov_seen ? std::optional<std::string>(out) : std::nullopt;
}

// --- The manifest ---------------------------------------------------------------------------------

struct Case {
    std::string name;
    std::string file;         // under tests/data/hostile_media, or empty with `generate`
    nlohmann::json generate;  // {"kind": "clip"} or {"kind": "mp4_dref", ...}
    std::string upload_as;    // the multipart filename
    std::optional<std::string> detected;
    bool accepted = false;
    std::optional<std::string> refused_format;  // when refused: the details.format (nullopt: none)
    std::set<std::string> states;               // accepted: the end states allowed
    nlohmann::json armed;
    bool bypass = false;
};

std::vector<Case> load_cases() {
    const auto path = test::data_path("hostile_media/cases.json");
    auto j = nlohmann::json::parse(test::read_file(path), nullptr, false);
    EXPECT_TRUE(j.is_array()) << path << " is not a JSON array";
    if (!j.is_array()) return {};
    static const std::set<std::string> k_keys = {"name",     "file",   "generate", "upload_as", "why",
                                                 "detected", "expect", "armed",    "bypass"};
    std::vector<Case> out;
    std::set<std::string> names;
    for (const auto& c : j) {
        Case k;
        k.name = c.value("name", "");
        EXPECT_FALSE(k.name.empty()) << c.dump();
        EXPECT_TRUE(names.insert(k.name).second) << "two cases named " << k.name;
        for (const auto& [key, _] : c.items())
            EXPECT_TRUE(k_keys.count(key)) << k.name << ": unknown key " << key;
        EXPECT_FALSE(c.value("why", "").empty()) << k.name << ": say why";
        k.file = c.value("file", "");
        k.generate = c.value("generate", nlohmann::json());
        EXPECT_NE(k.file.empty(), k.generate.is_null()) << k.name << ": one of file and generate";
        k.upload_as = c.value("upload_as", stdfs::path(k.file).filename().string());
        EXPECT_FALSE(k.upload_as.empty()) << k.name;
        EXPECT_TRUE(c.contains("detected")) << k.name << ": say what ffprobe detects (null for nothing)";
        if (c.contains("detected") && c["detected"].is_string())
            k.detected = c["detected"].get<std::string>();
        const auto& e = c.value("expect", nlohmann::json::object());
        k.accepted = e.value("accepted", false);
        if (k.accepted) {
            for (const auto& s : e.value("states", nlohmann::json::array()))
                k.states.insert(s.get<std::string>());
            EXPECT_FALSE(k.states.empty()) << k.name << ": an accepted case lists its end states";
        } else {
            EXPECT_TRUE(e.contains("refused_format")) << k.name << ": expect accepted or refused_format";
            if (e.contains("refused_format") && e["refused_format"].is_string())
                k.refused_format = e["refused_format"].get<std::string>();
            EXPECT_EQ(k.refused_format, k.detected) << k.name << ": a refusal names the detected format";
        }
        k.armed = c.value("armed", nlohmann::json());
        if (!k.armed.is_null()) {
            EXPECT_TRUE(k.armed.value("reaches", "") == "listener" ||
                        k.armed.value("reaches", "") == "secret")
                << k.name << ": armed.reaches is listener or secret";
        }
        k.bypass = c.value("bypass", false);
        EXPECT_FALSE(k.bypass && k.accepted) << k.name << ": bypass is for refused cases";
        out.push_back(std::move(k));
    }
    return out;
}

// The case's bytes, filled in (or built) for this world.
std::string case_bytes(const Case& k, const World& w) {
    if (!k.file.empty()) {
        auto src = test::data_path("hostile_media/" + k.file);
        EXPECT_TRUE(stdfs::is_regular_file(src)) << k.name << ": " << src;
        return fill(test::read_file(src), w.vars(k.name));
    }
    const std::string kind = k.generate.value("kind", "");
    if (kind == "clip") return test::read_file(w.clip);
    if (kind == "mp4_dref") {
        auto made = make_dref_mp4(k.generate, w, w.vars(k.name));
        EXPECT_TRUE(made) << k.name << ": cannot build " << k.generate.dump();
        return made.value_or("");
    }
    ADD_FAILURE() << k.name << ": unknown generator " << k.generate.dump();
    return "";
}

// Writes the case under dir/<name>/<upload_as> and returns that path.
stdfs::path materialize(const Case& k, const World& w, const stdfs::path& dir) {
    auto path = dir / k.name / k.upload_as;
    stdfs::create_directories(path.parent_path());
    std::string bytes = case_bytes(k, w);
    EXPECT_FALSE(contains(bytes, w.secret.marker)) << k.name << ": the case itself holds the marker";
    test::write_file(path, bytes);
    return path;
}

// What the dispatch's detection (ffprobe without starting a demuxer) makes of a file: the demuxer.
std::optional<std::string> detect(const stdfs::path& file) {
    auto r = process::run(media::ffprobe_detect_argv("ffprobe", file.string()), {20s, 1 << 20});
    if (!r) return std::nullopt;
    auto format = media::parse_probed_format(r->err);
    if (!format) return std::nullopt;
    return media::demuxer_of(*format);
}

// --- What must never come back ----------------------------------------------------------------------

// Why `file` (a result, or anything else an attacker can read) gives away the secret or the key.
std::vector<std::string> leaks(const stdfs::path& file, const Secret& secret, const std::string& engine_key) {
    std::vector<std::string> out;
    const std::string bytes = test::read_file(file);
    if (contains(bytes, secret.marker)) out.push_back("holds the secret's marker");
    if (sha256_hex(bytes) == secret.sha256) out.push_back("is the secret");
    if (contains(bytes, engine_key)) out.push_back("holds the engine key");
    std::string json;
    if (test::run_command({"ffprobe", "-v", "error", "-show_entries", "stream=codec_type,width,height", "-of",
                           "json", file.string()},
                          &json) == 0) {
        auto j = nlohmann::json::parse(json, nullptr, false);
        if (j.is_object())
            for (const auto& s : j.value("streams", nlohmann::json::array()))
                if (s.value("codec_type", "") == "video" && s.value("width", 0) == k_secret_width &&
                    s.value("height", 0) == k_secret_height)
                    out.push_back("has the secret's 112x80 picture");
    }
    return out;
}

std::string joined(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
    return out;
}

bool alive(pid_t pid) {
    if (pid <= 0 || ::kill(pid, 0) != 0) return false;
    std::string stat = test::read_file("/proc/" + std::to_string(pid) + "/stat");
    auto paren = stat.rfind(')');
    return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

bool is_final(const nlohmann::json& j) {
    auto s = str(j, "state");
    return s == "completed" || s == "failed" || s == "canceled";
}

// --- Running cases on a cluster -----------------------------------------------------------------------

struct Mode {
    std::string name;  // the attempt's transfer_mode
    std::string engine;
    std::string tag;
};
const Mode k_modes[] = {{"file", "engine-file", "hm-file"}, {"stream", "engine-stream", "hm-stream"}};

EngineOptions engine_options(const Mode& m, int slots, std::vector<std::string> extra = {}) {
    EngineOptions o;
    o.slots = slots;
    o.tags = {m.tag};
    // A reserve larger than any disk: the engine reports no free space and gets stream mode.
    if (m.name == "stream") o.reserve_disk = "1000T";
    o.extra_args = std::move(extra);
    return o;
}

nlohmann::json job_for(const Mode& m) {
    return {{"preset", "h264-web"}, {"max_attempts", 1}, {"requirements", {{"tags", {m.tag}}}}};
}

struct JobRun {
    const Case* k = nullptr;
    const Mode* mode = nullptr;
    std::string id;
};

std::unique_ptr<http::Client> user_client(const Cluster& c) {
    http::ClientOptions o;
    o.base_url = c.url() + "/api/v1";
    o.api_key = c.user_key();
    o.request_timeout = 10s;
    o.retry.max_attempts = 1;
    return std::make_unique<http::Client>(o);
}

// The last line of a failure reason (ffmpeg's last word).
std::string last_line(const std::string& text) {
    std::string t = text;
    while (!t.empty() && t.back() == '\n') t.pop_back();
    auto nl = t.rfind('\n');
    return nl == std::string::npos ? t : t.substr(nl + 1);
}

// Waits for every run to end, then checks each: its mode and engine, its end state (`allowed`), its
// result and its resource free of the secret and the key. Returns the finished resources by id.
std::map<std::string, nlohmann::json> finish_and_check(
    Cluster& c, const World& w, const std::vector<JobRun>& runs,
    const std::function<std::set<std::string>(const JobRun&)>& allowed, std::chrono::milliseconds deadline) {
    std::map<std::string, std::string> engine_ids;
    for (const auto& m : k_modes) {
        engine_ids[m.name] = c.engine_id(m.engine);
        EXPECT_FALSE(engine_ids[m.name].empty()) << m.engine << " did not register";
    }
    std::map<std::string, nlohmann::json> done;
    const auto until = std::chrono::steady_clock::now() + deadline;
    for (const auto& r : runs) {
        nlohmann::json j;
        auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        bool ended = c.wait_job(r.id, is_final, std::max(left, std::chrono::milliseconds(1)), &j);
        EXPECT_TRUE(ended) << r.k->name << " (" << r.mode->name << " mode) did not end in time: " << j.dump();
        done[r.id] = j;
    }
    const auto results = c.dir() / "results";
    stdfs::create_directories(results);
    std::vector<std::string> report(runs.size());
    parallel(runs.size(), [&](size_t i) {
        const auto& r = runs[i];
        const auto& j = done.at(r.id);
        const std::string where = r.k->name + " (" + r.mode->name + " mode)";
        const std::string state = str(j, "state");
        EXPECT_TRUE(allowed(r).count(state)) << where << " ended " << state << ": " << j.dump();
        auto attempts =
            j.is_object() ? j.value("attempts", nlohmann::json::array()) : nlohmann::json::array();
        EXPECT_EQ(attempts.size(), 1u) << where << ": " << j.dump();
        if (!attempts.empty()) {
            EXPECT_EQ(str(attempts[0], "transfer_mode"), r.mode->name) << where << ": " << j.dump();
            EXPECT_EQ(str(attempts[0], "engine_id"), engine_ids.at(r.mode->name))
                << where << ": " << j.dump();
        }
        // Everything an attacker reads back: the job resource (failure reason, stderr tail) ...
        const std::string text = j.dump();
        EXPECT_FALSE(contains(text, w.secret.marker))
            << where << ": the job holds the secret's marker: " << text;
        EXPECT_FALSE(contains(text, c.engine_key())) << where << ": the job holds the engine key";
        // ... and the result.
        std::string found_text;
        if (state == "completed") {
            auto out = results / (r.k->name + "." + r.mode->name + ".out");
            EXPECT_TRUE(c.download_result(r.id, out)) << where;
            auto found = leaks(out, w.secret, c.engine_key());
            EXPECT_TRUE(found.empty()) << where << ": the result " << joined(found) << " (" << out << ")";
            found_text = found.empty() ? ", result clean" : ", result " + joined(found);
        }
        std::string reason = str(j, "failure_reason");
        report[i] = where + ": " + state + found_text +
                    (reason.empty() ? "" : " — " + printable(last_line(reason), 120));
    });
    if (verbose())
        for (const auto& line : report) std::cout << "  " << line << "\n";
    return done;
}

// The listener saw nothing, and the daemons are all still alive and serving.
void check_untouched_and_alive(Cluster& c, const Listener& listener,
                               const std::vector<std::pair<std::string, Daemon*>>& engines) {
    EXPECT_EQ(listener.count(), 0u) << "the listener was reached:\n" << listener.describe();
    for (const auto& h : listener.hits()) {
        EXPECT_FALSE(contains(h.bytes, c.engine_key()))
            << "the engine key reached the listener: " << printable(h.bytes);
        EXPECT_FALSE(contains(h.bytes, "Authorization"))
            << "a credential reached the listener: " << printable(h.bytes);
    }
    EXPECT_TRUE(alive(c.dispatch().pid())) << "the dispatch died:\n" << c.dispatch().log();
    auto client = user_client(c);
    auto health = client->get(c.url() + "/healthz");
    EXPECT_TRUE(health && health->status == 200) << "the dispatch does not answer /healthz";
    auto listed = c.engines();
    for (const auto& [name, daemon] : engines) {
        EXPECT_TRUE(alive(daemon->pid())) << name << " died:\n" << daemon->log();
        bool online = false;
        for (const auto& e : listed)
            if (str(e, "hostname") == name) online = !str(e, "state").empty() && str(e, "state") != "offline";
        EXPECT_TRUE(online) << name << " is not online: " << listed.dump();
    }
}

}  // namespace

// The manifest is well formed and lists every file of the corpus, the generated cases build, and no
// case holds the marker itself. (What each case is detected as is checked where the dispatch detects
// it: the refusals' details.format and the accepted jobs' recorded demuxer, below.)
TEST(HostileMedia, CorpusIsWellFormed) {
    test::TempDir dir;
    Listener listener;
    World w = make_world(dir.path(), listener);
    auto cases = load_cases();
    ASSERT_GE(cases.size(), 25u);

    std::set<std::string> listed;
    for (const auto& k : cases)
        if (!k.file.empty()) listed.insert(k.file);
    for (const auto& entry : stdfs::directory_iterator(test::data_path("hostile_media"))) {
        const auto name = entry.path().filename().string();
        if (name == "README.md" || name == "cases.json" || name == "make_binary_cases.sh") continue;
        EXPECT_TRUE(listed.count(name)) << name << " is in the corpus but in no case";
        EXPECT_LT(entry.file_size(), 16u << 10) << name << ": keep the corpus tiny";
    }
    const std::set<std::string> k_vars = {"{listener}", "{listener_host}", "{listener_port}", "{secret}"};
    for (const auto& k : cases) {
        auto path = materialize(k, w, dir / "cases");
        EXPECT_GT(stdfs::file_size(path), 0u) << k.name;
        if (k.file.empty()) continue;
        // Every {name} a file uses is one the test fills (ASS override tags {\...} are not variables).
        const std::string text = test::read_file(test::data_path("hostile_media/" + k.file));
        if (text.find('\0') != std::string::npos) continue;  // binary (made by make_binary_cases.sh)
        for (size_t at = text.find('{'); at != std::string::npos; at = text.find('{', at + 1)) {
            auto close = text.find('}', at);
            if (close == std::string::npos || text[at + 1] == '\\') continue;
            std::string var = text.substr(at, close - at + 1);
            if (var.size() < 40 && var.find_first_of(" \n\"") == std::string::npos) {
                EXPECT_TRUE(k_vars.count(var)) << k.name << ": unknown template variable " << var;
            }
        }
    }
}

// The armed cases are real attacks: with the format not pinned (and the protocols of a stream-mode
// engine plus file), this ffmpeg does reach the listener or transcode the secret. So when the
// cluster tests see nothing, it is because the product stopped them.
TEST(HostileMedia, ArmedCasesReachTheListenerOrTheSecretWhenTheFormatIsNotPinned) {
    Phases phase;
    test::TempDir dir;
    Listener listener;
    World w = make_world(dir.path(), listener);
    phase("secret and clip made");
    std::vector<Case> armed;
    for (auto& k : load_cases())
        if (!k.armed.is_null()) armed.push_back(std::move(k));
    EXPECT_GE(armed.size(), 10u);

    std::vector<std::string> err(armed.size()), found(armed.size());
    std::vector<bool> got_secret(armed.size(), false);
    parallel(armed.size(), [&](size_t i) {
        const auto& k = armed[i];
        auto path = materialize(k, w, dir / "cases");
        auto out = dir / "armed" / (k.name + ".mp4");
        stdfs::create_directories(out.parent_path());
        std::vector<std::string> argv = {"ffmpeg",
                                         "-nostdin",
                                         "-hide_banner",
                                         "-loglevel",
                                         "error",
                                         "-protocol_whitelist",
                                         k.armed.value("protocols", "file,http,tcp,crypto,data")};
        for (const auto& a : k.armed.value("input_args", nlohmann::json::array()))
            argv.push_back(a.get<std::string>());
        argv.insert(argv.end(), {"-i", path.string(), "-t", "1", "-map", "0:v:0?", "-map", "0:a:0?", "-c",
                                 "copy", "-y", out.string()});
        auto run = process::run(argv, {30s, 1 << 20});
        EXPECT_TRUE(run && !run->timed_out) << k.name;
        if (run) err[i] = run->err;
        std::error_code ec;
        if (stdfs::exists(out, ec)) {
            auto l = leaks(out, w.secret, "");
            got_secret[i] = !l.empty();
            found[i] = joined(l);
        }
    });
    phase("ran unpinned");
    for (size_t i = 0; i < armed.size(); ++i) {
        const auto& k = armed[i];
        if (k.armed.value("reaches", "") == "listener") {
            size_t hits = 0;
            for (const auto& h : listener.hits()) hits += contains(h.bytes, "/c/" + k.name + "/") ? 1 : 0;
            EXPECT_GT(hits, 0u) << k.name << ": unpinned ffmpeg did not reach the listener\n" << err[i];
            if (verbose()) std::cout << "  " << k.name << ": " << hits << " request(s) on the listener\n";
        } else {
            EXPECT_TRUE(got_secret[i]) << k.name << ": unpinned ffmpeg did not transcode the secret\n"
                                       << err[i];
            if (verbose()) std::cout << "  " << k.name << ": the output " << found[i] << "\n";
        }
    }
    if (verbose()) std::cout << listener.describe();
}

// Submitted as they are: the playlists and lists are refused with 415 naming their format (and leave
// no job), the rest run on a file-mode and a stream-mode engine (bubblewrap when it works: the
// production default) to the end the manifest says, and nothing leaks.
TEST(HostileMedia, EachFileIsRefusedAtSubmitOrRunsHarmlesslyOnAFileAndAStreamEngine) {
    Phases phase;
    Cluster c;
    ASSERT_FALSE(c.engine_key().empty());  // else "the key appears nowhere" would hold vacuously
    Listener listener;
    auto file_engine = c.start_engine(k_modes[0].engine, engine_options(k_modes[0], 2));
    auto stream_engine = c.start_engine(k_modes[1].engine, engine_options(k_modes[1], 2));
    World w = make_world(c.dir().path(), listener);
    phase("cluster up, secret and clip made");
    auto cases = load_cases();
    ASSERT_FALSE(cases.empty());

    // Accepted cases first (they take the engines' time), one job on each engine.
    std::vector<JobRun> runs;
    for (const auto& k : cases)
        if (k.accepted)
            for (const auto& m : k_modes) runs.push_back({&k, &m, ""});
    std::vector<std::string> answers(runs.size());
    parallel(runs.size(), [&](size_t i) {
        auto path = materialize(*runs[i].k, w, c.dir() / ("cases-" + runs[i].mode->name));
        runs[i].id = c.submit(path, job_for(*runs[i].mode), &answers[i]);
    });
    for (size_t i = 0; i < runs.size(); ++i)
        ASSERT_FALSE(runs[i].id.empty()) << runs[i].k->name << ": " << answers[i];
    phase("accepted cases submitted");

    std::vector<const Case*> refused;
    for (const auto& k : cases)
        if (!k.accepted) refused.push_back(&k);
    EXPECT_GE(refused.size(), 20u);
    std::vector<std::string> refusals(refused.size());
    std::vector<std::string> ids(refused.size());
    parallel(refused.size(), [&](size_t i) {
        auto path = materialize(*refused[i], w, c.dir() / "cases");
        ids[i] = c.submit(path, job_for(k_modes[0]), &refusals[i]);
    });
    phase("refused cases submitted");
    for (size_t i = 0; i < refused.size(); ++i) {
        const Case& k = *refused[i];
        const std::string& answer = refusals[i];
        EXPECT_TRUE(ids[i].empty()) << k.name << " was accepted as job " << ids[i];
        auto space = answer.find(' ');
        auto body =
            nlohmann::json::parse(space == std::string::npos ? "" : answer.substr(space + 1), nullptr, false);
        EXPECT_EQ(answer.substr(0, space), "415") << k.name << ": " << answer;
        auto error = body.is_object() && body.contains("error") ? body["error"] : nlohmann::json::object();
        EXPECT_EQ(str(error, "code"), "UNSUPPORTED_MEDIA_TYPE") << k.name << ": " << answer;
        auto details =
            error.is_object() && error.contains("details") ? error["details"] : nlohmann::json::object();
        std::optional<std::string> format;
        if (!str(details, "format").empty()) format = str(details, "format");
        EXPECT_EQ(format, k.refused_format) << k.name << ": " << answer;
        EXPECT_FALSE(contains(answer, w.secret.marker)) << k.name;
        EXPECT_FALSE(contains(answer, c.engine_key())) << k.name;
        if (verbose())
            std::cout << "  " << k.name << ": " << answer.substr(0, space)
                      << " format=" << format.value_or("(none)") << " — " << str(error, "message") << "\n";
    }

    // A refusal leaves no job behind: the only jobs are the accepted ones.
    auto client = user_client(c);
    auto list = client->get("/jobs?limit=200");
    ASSERT_TRUE(list && list->status == 200);
    auto listed = nlohmann::json::parse(list->body, nullptr, false);
    EXPECT_EQ(listed.is_object() ? listed.value("total", -1) : -1, static_cast<int>(runs.size()))
        << listed.dump();

    auto done = finish_and_check(
        c, w, runs, [](const JobRun& r) { return r.k->states; }, 45s);
    phase("jobs ended and checked");
    // What the dispatch detected and recorded for the accepted ones (the engines were pinned to it).
    for (const auto& r : runs) {
        const auto& j = done[r.id];
        auto probe = j.is_object() && j.contains("source") && j["source"].is_object()
                         ? j["source"].value("probe", nlohmann::json())
                         : nlohmann::json();
        EXPECT_EQ(str(probe, "demuxer"), r.k->detected.value_or("")) << r.k->name << ": " << j.dump();
    }
    check_untouched_and_alive(
        c, listener, {{k_modes[0].engine, file_engine.get()}, {k_modes[1].engine, stream_engine.get()}});
    if (verbose())
        for (Daemon* e : {file_engine.get(), stream_engine.get()}) {
            auto log = e->log();
            auto at = log.find("sandbox:");
            std::cout << "  "
                      << (at == std::string::npos ? "(no sandbox line)"
                                                  : log.substr(at, log.find('\n', at) - at))
                      << "\n";
        }
    if (HasFailure())
        std::cout << "engine-file log:\n"
                  << file_engine->log() << "\nengine-stream log:\n"
                  << stream_engine->log();
}

// Defence in depth: the dispatch's check bypassed. A real clip is accepted (probed as mov) while no
// engine runs, then its stored pool file is overwritten with a hostile file of the same size (padded
// with newlines, still detected as what it is). The engines, unsandboxed so that pinning alone is
// tested, run ffmpeg with -f mov -format_whitelist mov: it fails on the playlist's bytes, and the
// listener and the secret are never touched.
TEST(HostileMedia, EnginesReadASwappedSourceOnlyAsTheFormatTheDispatchRecorded) {
    Phases phase;
    Cluster c;
    ASSERT_FALSE(c.engine_key().empty());  // else "the key appears nowhere" would hold vacuously
    Listener listener;
    World w = make_world(c.dir().path(), listener);
    phase("cluster up, secret and clip made");
    const std::string clip = test::read_file(w.clip);
    auto cases = load_cases();

    std::vector<JobRun> runs;
    for (const auto& k : cases)
        if (k.bypass)
            for (const auto& m : k_modes) runs.push_back({&k, &m, ""});
    ASSERT_GE(runs.size(), 30u);
    std::vector<std::string> problems(runs.size());
    parallel(runs.size(), [&](size_t i) {
        auto& r = runs[i];
        std::string hostile = case_bytes(*r.k, w);
        if (hostile.size() > clip.size()) {
            problems[i] = "larger than the clip it replaces";
            return;
        }
        hostile += std::string(clip.size() - hostile.size(), '\n');
        if (r.mode == &k_modes[0]) {
            auto swapped = c.dir() / "swapped" / (r.k->name + ".part");
            stdfs::create_directories(swapped.parent_path());
            test::write_file(swapped, hostile);
            auto d = detect(swapped);
            if (d != r.k->detected) problems[i] = "padded, it is detected as " + d.value_or("nothing");
        }
        std::string answer;
        r.id = c.submit(w.clip, job_for(*r.mode), &answer);
        if (r.id.empty()) {
            problems[i] += " not accepted: " + answer;
            return;
        }
        auto j = c.job(r.id);
        if (str(j, "state") != "queued") problems[i] += " not queued: " + j.dump();
        if (!j.is_object() || !j.contains("source") ||
            str(j["source"].value("probe", nlohmann::json()), "demuxer") != "mov")
            problems[i] += " not recorded as mov: " + j.dump();
        auto pool_file = c.dir() / "data" / "pool" / "jobs" / r.id / "source";
        if (test::read_file(pool_file) != clip)
            problems[i] += " the pool file is not the clip: " + pool_file.string();
        test::write_file(pool_file, hostile);
        // The digest recorded at upload is rewritten too: this test is of the pinned demuxer, the line
        // of defence behind the engines' SHA-256 check (which alone would refuse a swapped file).
        test::SqlitePeer db(c.dir() / "data" / "dispatch.db");
        if (!db.exec("UPDATE jobs SET source_sha256 = '" + sha256_hex(hostile) + "' WHERE id = '" + r.id +
                     "'"))
            problems[i] += " the recorded digest could not be rewritten";
    });
    for (size_t i = 0; i < runs.size(); ++i)
        ASSERT_TRUE(problems[i].empty())
            << runs[i].k->name << " (" << runs[i].mode->name << "): " << problems[i];

    phase("clips submitted and swapped");
    auto file_engine = c.start_engine(k_modes[0].engine, engine_options(k_modes[0], 3, {"--sandbox", "off"}));
    auto stream_engine =
        c.start_engine(k_modes[1].engine, engine_options(k_modes[1], 3, {"--sandbox", "off"}));
    auto done = finish_and_check(
        c, w, runs,
        [](const JobRun&) {
            return std::set<std::string>{"failed", "completed"};
        },
        45s);
    phase("jobs ended and checked");
    for (const auto& r : runs) {
        const auto& j = done[r.id];
        if (str(j, "state") != "failed") continue;
        // It failed because ffmpeg read it (as mov) and gave up, not for a reason before ffmpeg ran
        // (a size or digest mismatch would make this test prove nothing; both match the swapped file).
        std::string reason = str(j, "failure_reason");
        EXPECT_NE(reason.find("ffmpeg exited with status"), std::string::npos)
            << r.k->name << " (" << r.mode->name << " mode): " << reason;
    }
    check_untouched_and_alive(
        c, listener, {{k_modes[0].engine, file_engine.get()}, {k_modes[1].engine, stream_engine.get()}});
    for (Daemon* e : {file_engine.get(), stream_engine.get()}) {
        const std::string log = e->log();
        EXPECT_EQ(log.find("runs under bubblewrap"), std::string::npos)
            << "the engine was to run unsandboxed:\n"
            << log;
        // Each command as the engine ran it: the recorded demuxer, nothing else.
        EXPECT_NE(log.find("-format_whitelist mov -f mov -i"), std::string::npos) << log;
    }
    if (HasFailure())
        std::cout << "engine-file log:\n"
                  << file_engine->log() << "\nengine-stream log:\n"
                  << stream_engine->log();
}
