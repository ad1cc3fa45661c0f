#include "submission_client/session.hpp"

#include "common/hash.hpp"

#include <csignal>
#include <cstdlib>
#include <thread>

namespace distconv::client {

namespace stdfs = std::filesystem;
using nlohmann::json;

namespace {

volatile std::sig_atomic_t g_interrupted = 0;

extern "C" void on_interrupt(int) {
    g_interrupted = 1;
}

}  // namespace

void install_interrupt_handler(bool also_sigterm) {
    std::signal(SIGINT, on_interrupt);
    if (also_sigterm) std::signal(SIGTERM, on_interrupt);
}

bool interrupted() {
    return g_interrupted != 0;
}

void clear_interrupted() {
    g_interrupted = 0;
}

// Sleeps up to `d`, waking early on Ctrl-C.
void nap(std::chrono::milliseconds d) {
    auto until = Clock::now() + d;
    while (!interrupted() && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

Result<protocol::JobStatus> fetch_status(Session& s, const std::string& id) {
    auto r = s.api().status(id);
    if (!r) return r.error();
    return protocol::parse_job_status(*r);
}

// Downloads a completed job's result to `out` (resuming out.part) and checks its SHA-256.
Result<Downloaded> download_result(Session& s, const std::string& job_id, const stdfs::path& out,
                                   const std::string& label) {
    auto job_json = s.api().job(job_id);
    if (!job_json) return job_json.error();
    auto job = protocol::parse_job_resource(*job_json);
    if (!job) return job.error();
    if (job->state != protocol::JobState::Completed)
        return Error(ErrorCode::JobNotReady, "job " + job_id + " is " +
                                                 std::string(protocol::to_string(job->state)) +
                                                 "; there is no result to download");
    http::DownloadOptions opts;
    if (job->output.sha256) opts.headers.emplace_back("If-Range", "\"" + *job->output.sha256 + "\"");
    StatusLine line(s.bars());
    auto started = Clock::now();
    uint64_t base = 0;
    bool first = true;
    // Rate over what moved in this run, not the bytes already on disk.
    opts.progress = [&](uint64_t done, uint64_t total) {
        if (first) {
            base = done;
            first = false;
        }
        if (interrupted()) return false;
        double elapsed = seconds_since(started);
        uint64_t moved = done - std::min(done, base);
        // --limit-download: holding the receive callback back holds the socket back (TCP does the rest).
        if (const auto limit = s.g().limit_download; limit > 0) {
            const double ahead = static_cast<double>(moved) / static_cast<double>(limit) - elapsed;
            if (ahead > 0) nap(std::chrono::milliseconds(static_cast<int64_t>(std::min(ahead, 1.0) * 1000)));
        }
        std::string text = "download " + label + "  " +
                           format_transfer_line(moved, total > base ? total - base : 0, elapsed);
        if (base > 0) text += "  (resumed at " + format_bytes(base) + ")";
        line.update(text);
        return true;
    };
    std::error_code ec;
    if (!out.parent_path().empty()) stdfs::create_directories(out.parent_path(), ec);
    auto r = s.api().download_result(job_id, out, opts);
    line.finish();
    if (!r) return r.error();
    const std::string& sha = r->sha256;  // hashed while it was written: no second read
    std::string expected = job->output.sha256.value_or("");
    if (auto etag = r->headers.get("ETag")) {
        std::string e = *etag;
        if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
        if (is_sha256_hex(e)) expected = e;
    }
    if (!expected.empty() && expected != sha) {
        stdfs::remove(out, ec);
        return Error(ErrorCode::Internal, "the downloaded file's SHA-256 (" + sha +
                                              ") does not match the server's (" + expected + "); removed " +
                                              out.string());
    }
    return Downloaded{r->size, r->resumed_from, sha};
}

Result<protocol::JobResource> upload_one(Session& s, const Planned& p, const TranscodeFlags& flags,
                                         const std::string& idempotency_key, uint64_t* resumed_from) {
    auto job = build_job_json(flags, p.container, p.output.filename().string());
    if (!job) return job.error();
    std::error_code ec;
    const uint64_t size = stdfs::file_size(p.input, ec);
    if (ec) return Error::invalid("file", "cannot read " + p.input.string() + ": " + ec.message());
    const std::string label = p.input.filename().string();
    StatusLine line(s.bars());
    if (p.sha256.empty()) line.update("hashing " + label);
    auto sha = p.sha256.empty() ? sha256_file(p.input) : Result<std::string>(p.sha256);
    if (!sha) return sha.error();
    (*job)["source"] = json{{"size", size}, {"sha256", *sha}, {"filename", label}};

    auto body = s.api().submit(*job, idempotency_key);
    if (!body) return body.error();
    auto resource = protocol::parse_job_resource(*body);
    if (!resource) return resource.error();

    auto started = Clock::now();
    // Waiting while the server holds every byte: a PUT of an earlier run (killed, interrupted) is being
    // checked and probed. Past this, nothing is finishing it (a server restarted in that window), so
    // the upload starts over.
    const auto k_finishing_wait = std::chrono::seconds(120);
    bool all_held = false;
    Clock::time_point all_held_since{};
    for (int attempt = 0, failures = 0; resource->state == protocol::JobState::AwaitingUpload; ++attempt) {
        if (interrupted()) return Error(ErrorCode::Unavailable, "interrupted");
        if (attempt > 0) {
            // The job may have left awaiting_upload meanwhile (another request of ours finished it).
            auto now = s.api().job(resource->job_id);
            if (!now) return now.error();
            auto fresh = protocol::parse_job_resource(*now);
            if (!fresh) return fresh.error();
            *resource = *fresh;
            if (resource->state != protocol::JobState::AwaitingUpload) break;
        }
        auto at = s.api().source_offset(resource->job_id);
        if (!at) return at.error();
        uint64_t offset = *at > size ? 0 : *at;
        if (size > 0 && offset == size) {
            if (!all_held) all_held_since = Clock::now();
            all_held = true;
            if (Clock::now() - all_held_since < k_finishing_wait) {
                nap(std::chrono::milliseconds(250));
                continue;
            }
            offset = 0;
        } else {
            all_held = false;
        }
        if (resumed_from && attempt == 0) *resumed_from = offset;
        auto put = s.api().put_source(resource->job_id, p.input, offset, size, [&](uint64_t done, uint64_t) {
            if (interrupted()) return false;
            std::string text =
                "upload " + label + "  " + format_transfer_line(offset + done, size, seconds_since(started));
            if (offset > 0) text += "  (resumed at " + format_bytes(offset) + ")";
            line.update(text);
            return true;
        });
        if (put) break;
        // A dropped connection or a busy server: continue from what it holds. Anything else is final.
        const Error& e = put.error();
        const bool again = e.code == ErrorCode::Unavailable || e.code == ErrorCode::Conflict;
        if (!again || ++failures > 5 || interrupted()) return e;
        nap(std::chrono::milliseconds(500 * failures));
    }
    line.update("upload " + label + "  " + format_transfer_line(size, size, seconds_since(started)), true);
    line.finish();
    auto now = s.api().job(resource->job_id);
    if (!now) return now.error();
    return protocol::parse_job_resource(*now);
}

}  // namespace distconv::client
