#pragma once
// The pure parts of the distconv CLI, kept apart from terminals and sockets so they are unit tested:
// exit codes, the flags -> `job` JSON mapping, output-name derivation, multipart framing around a
// streamed file, the Server-Sent Events line parser, and the progress/ETA/table formatting.

#include "common/error.hpp"
#include "common/http/client.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace distconv::client {

// The exit codes scripts rely on (DESIGN.md, issue 5).
inline constexpr int k_exit_ok = 0;
inline constexpr int k_exit_job_failed = 1;   // a job failed or was canceled; other server refusals
inline constexpr int k_exit_usage = 2;        // bad flag or value, an output that already exists
inline constexpr int k_exit_unreachable = 3;  // server unreachable, or the key was refused
inline constexpr int k_exit_interrupted = 130;

// The exit code for an Error coming back from the server or the transport.
int exit_code_for(const Error& error);
// "distconv: CODE: message" (the server's envelope, not HTTP noise).
std::string error_line(const Error& error);

// --- submit: flags -> job ------------------------------------------------------------------------

struct TranscodeFlags {
    std::optional<std::string> preset;
    std::optional<std::string> video_codec;
    std::optional<int> crf;
    std::optional<std::string> bitrate;
    std::optional<std::string> scale;
    std::optional<std::string> fps;
    std::optional<std::string> audio_codec;
    std::optional<std::string> audio_bitrate;
    std::optional<std::string> container;
    std::optional<int> priority;
    std::optional<std::string> split;       // auto, on, off (split mode)
    std::optional<double> segment_seconds;  // split mode's segment length
};

// The container the job will produce: --container, else the extension of an explicit output name
// when it is a supported container, else what the preset (or the default preset) uses. Invalid
// option values are INVALID_ARGUMENT naming the flag's field ("video.crf"), checked before any upload.
Result<std::string> resolve_container(const TranscodeFlags& flags,
                                      const std::optional<std::filesystem::path>& explicit_output);

// The `job` part: the options that were given, output_filename and priority (when given).
Result<nlohmann::json> build_job_json(const TranscodeFlags& flags, const std::string& container,
                                      const std::string& output_filename);

// Where the result of `input` goes: `output` when given; else <dir>/<stem>.<ext> with dir the
// output dir or the input's directory, or <stem>.transcoded.<ext> when that would be the input itself.
std::filesystem::path derive_output_path(const std::filesystem::path& input, const std::string& container,
                                         const std::optional<std::filesystem::path>& output_dir);

// --- multipart framing ---------------------------------------------------------------------------

// multipart/form-data with a `job` JSON part then a `file` part whose bytes are streamed between
// `head` and `tail`, so the body length is known (the server requires Content-Length) without
// loading the file.
struct MultipartFraming {
    std::string boundary;
    std::string head;  // the job part and the file part's headers
    std::string tail;  // CRLF + closing boundary
    std::string content_type() const { return "multipart/form-data; boundary=" + boundary; }
    uint64_t content_length(uint64_t file_size) const { return head.size() + file_size + tail.size(); }
};
MultipartFraming make_multipart_framing(const std::string& job_json, const std::string& filename,
                                        const std::string& boundary);
// A boundary that cannot collide with file bytes in practice (random, 40+ characters).
std::string random_boundary();

// Produces head, then the file's bytes, then tail; a BodyReader for http::Client::upload_callback.
class MultipartBody {
  public:
    MultipartBody(MultipartFraming framing, std::FILE* file) : m_framing(std::move(framing)), m_file(file) {}
    // Fills up to `size` bytes; 0 at the end; http::k_read_abort on a read error.
    size_t read(char* buf, size_t size);

  private:
    MultipartFraming m_framing;
    std::FILE* m_file;
    enum class Phase { Head, File, Tail, Done } m_phase = Phase::Head;
    size_t m_pos = 0;
};

// --- Server-Sent Events --------------------------------------------------------------------------

struct SseEvent {
    std::string event = "message";
    std::string data;  // data lines joined with '\n'
    std::string id;
};

// Feed bytes as they arrive (any chunking, CRLF or LF); complete events come out. Comments are ignored.
class SseParser {
  public:
    std::vector<SseEvent> feed(std::string_view bytes);

  private:
    void line(std::string_view l, std::vector<SseEvent>& out);
    std::string m_buffer;
    SseEvent m_current;
    bool m_has_data = false;
    bool m_skip_lf = false;
};

// --- formatting ----------------------------------------------------------------------------------

std::string format_bytes(uint64_t bytes);            // "812 B", "1.5 KiB", "3.2 MiB", "1.1 GiB"
std::string format_rate(double bytes_per_second);    // "3.2 MiB/s"
std::string format_duration(double seconds);         // "0:07", "12:03", "1:02:03"; "--:--" if unknown
std::string render_bar(double fraction, int width);  // "[#####.....]"

// "[####......]  40%  1.2 MiB / 3.0 MiB  2.1 MiB/s  ETA 0:01"
std::string format_transfer_line(uint64_t done, uint64_t total, double elapsed_seconds, int bar_width = 24);

// What one followed job looks like right now.
struct JobView {
    std::string job_id;
    std::string label;  // the input file name, or the id
    std::string state;
    int percent = 0;
    std::optional<double> fps;
    std::optional<double> speed;
    std::optional<double> eta_seconds;
    std::optional<int> queue_position;
    std::string message;
};
// "clip.mov  [######....]  60% running  fps 48.0  speed 2.0x  ETA 0:04"
std::string format_job_line(const JobView& view, bool with_bar, int bar_width = 20);

// The job's stream plan (GET /jobs/{id} "streams"), one line per source stream:
// "#2 audio ac3 fre \"Français 5.1\" [default] -> encode (audio, 5.1 kept)". Not an array: no lines.
std::vector<std::string> format_stream_plan(const nlohmann::json& streams);

// A plain-text table: columns padded to their widest cell, two spaces apart.
std::string render_table(const std::vector<std::string>& headers,
                         const std::vector<std::vector<std::string>>& rows);

// --- server URL and key ---------------------------------------------------------------------------

// "http://h:8080" -> "http://h:8080/api/v1" (an existing /api/v1 suffix is kept).
std::string api_base_url(const std::string& server);
bool is_loopback_host(std::string_view host);
// Refuses to send a key in clear text to another host: INVALID_ARGUMENT unless the URL is https,
// the host is loopback, there is no key, or allow_insecure.
Status check_key_transport(const std::string& server, bool has_key, bool allow_insecure);

}  // namespace distconv::client
