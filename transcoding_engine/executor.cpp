#include "transcoding_engine/executor.hpp"

#include "common/hash.hpp"
#include "common/media/ffmpeg_args.hpp"
#include "common/media/ffprobe.hpp"
#include "common/media/progress.hpp"
#include "common/media/stream_plan.hpp"
#include "common/process.hpp"
#include "transcoding_engine/assignment_check.hpp"
#include "transcoding_engine/failure.hpp"
#include "transcoding_engine/sandbox.hpp"
#include "transcoding_engine/sandbox_port.hpp"
#include "transcoding_engine/source_relay.hpp"

#include <poll.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <thread>

namespace distconv::engine {

using protocol::Assignment;
using protocol::ErrorClass;
using protocol::ProgressPhase;

void ActiveAssignment::stop(StopReason reason, std::chrono::milliseconds grace) {
    int expected = static_cast<int>(StopReason::None);
    m_reason.compare_exchange_strong(expected, static_cast<int>(reason));
    std::lock_guard lock(m_mutex);
    m_grace = grace;
    if (m_process) m_process->terminate(grace);
}

void ActiveAssignment::attach(RunningProcess* process) {
    std::lock_guard lock(m_mutex);
    m_process = process;
    // A stop that came while nothing ran still applies to what starts now.
    if (m_process && stopping()) m_process->terminate(m_grace);
}

protocol::Assignment ActiveAssignment::current() const {
    protocol::Assignment a = m_assignment;
    std::lock_guard lock(m_mutex);
    if (!m_credential.empty()) a.credential = m_credential;
    return a;
}

void ActiveAssignment::renew_credential(const std::string& credential) {
    // It goes into an HTTP header: a plain token or nothing.
    if (credential.empty() || credential.size() > 512) return;
    for (unsigned char c : credential)
        if (c <= 0x20 || c >= 0x7f) return;
    std::lock_guard lock(m_mutex);
    m_credential = credential;
}

std::string_view to_string(AssignmentOutcome o) {
    switch (o) {
        case AssignmentOutcome::Completed:
            return "completed";
        case AssignmentOutcome::Failed:
            return "failed";
        case AssignmentOutcome::Canceled:
            return "canceled";
        case AssignmentOutcome::LeaseLost:
            return "lease_lost";
        case AssignmentOutcome::HandedBack:
            return "handed_back";
    }
    return "unknown";
}

namespace {

std::vector<std::string> with_progress(std::vector<std::string> args) {
    if (std::find(args.begin(), args.end(), "-progress") == args.end())
        args.insert(args.begin(), {"-progress", "pipe:1", "-nostats"});
    return args;
}

}  // namespace

std::vector<std::string> with_cpu_set(std::vector<std::string> argv, const std::string& cpu_set) {
    if (cpu_set.empty()) return argv;
    argv.insert(argv.begin(), {"taskset", "-c", cpu_set});
    return argv;
}

std::vector<std::string> build_file_argv(const Assignment& a, const std::string& ffmpeg,
                                         const std::string& input, const std::string& output) {
    std::vector<std::string> argv = {ffmpeg};
    auto args = with_progress(protocol::substitute_placeholders(a.ffmpeg_argv, input, output));
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

std::vector<std::string> build_stream_argv(const Assignment& a, const std::string& ffmpeg,
                                           const std::string& relay_url) {
    std::vector<std::string> argv = {ffmpeg};
    auto args = with_progress(protocol::substitute_placeholders(a.ffmpeg_argv, relay_url, "pipe:3"));
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

RunSpec Executor::run_spec(std::vector<std::string> argv, const std::filesystem::path& dir,
                           bool network) const {
    RunSpec spec;
    argv = with_cpu_set(std::move(argv), m_settings.cpu_set);
    if (!m_settings.bwrap.empty()) {
        SandboxSpec sandbox;
        sandbox.writable_dir = dir;
        sandbox.network = network;
        if (auto program = find_program(m_settings.ffmpeg)) sandbox.extra_programs.push_back(*program);
        if (auto program = find_program(m_settings.ffprobe)) sandbox.extra_programs.push_back(*program);
        if (!m_settings.self_exe.empty()) sandbox.extra_programs.push_back(m_settings.self_exe);
        argv = bwrap_argv(m_settings.bwrap, sandbox, argv);
    }
    spec.argv = std::move(argv);
    spec.inherit_env = false;
    spec.env = {{"SVT_LOG", "1"}};
    spec.env.insert(spec.env.end(), m_settings.ffmpeg_env.begin(), m_settings.ffmpeg_env.end());
    return spec;
}

// Per-attempt state: the throttled progress reporter.
struct Executor::Attempt {
    Attempt(Executor& e, ActiveAssignment& a) : ex(e), active(a) {}
    Executor& ex;
    ActiveAssignment& active;
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point last_report{};
    std::optional<ProgressPhase> last_phase;
    double last_out_time = 0;

    // Sends a report when the phase changed, at 100 %, or when the interval passed. A
    // continue:false or LEASE_LOST answer stops the assignment.
    void report(ProgressPhase phase, double percent, const media::ProgressUpdate* u = nullptr) {
        // The last position ffmpeg wrote, reported or not: the complete call sends it as the output's
        // duration, which the server checks.
        if (u && u->out_time_seconds > 0) last_out_time = u->out_time_seconds;
        auto now = std::chrono::steady_clock::now();
        bool due = !last_phase || *last_phase != phase || percent >= 100.0 ||
                   now - last_report >= ex.m_settings.progress_interval;
        if (!due || active.stopping()) return;
        last_report = now;
        last_phase = phase;
        protocol::ProgressReport r;
        r.fencing_token = active.assignment().fencing_token;
        r.phase = phase;
        r.percent = std::clamp(percent, 0.0, 100.0);
        if (u) {
            r.out_time_seconds = u->out_time_seconds;
            r.fps = u->fps;
            r.speed = u->speed;
            r.eta_seconds = u->eta_seconds;
        }
        auto reply = ex.m_api.progress(active.id(), r);
        if (reply && reply->credential) active.renew_credential(*reply->credential);
        if (!reply) {
            if (reply.error().code == ErrorCode::LeaseLost) {
                spdlog::warn("assignment {}: lease lost, stopping", active.id());
                active.stop(StopReason::LeaseLost, ex.m_settings.kill_grace);
            } else if (reply.error().code == ErrorCode::NotFound) {
                active.stop(StopReason::LeaseLost, ex.m_settings.kill_grace);
            } else {
                spdlog::warn("assignment {}: progress report failed: {}", active.id(),
                             reply.error().to_string());
            }
            return;
        }
        if (!reply->continue_) {
            spdlog::info("assignment {}: canceled by the server", active.id());
            active.stop(StopReason::Canceled, ex.m_settings.kill_grace);
        }
    }
};

AssignmentOutcome Executor::run(ActiveAssignment& active) {
    const Assignment& a = active.assignment();
    // Nothing of an assignment is acted on before it is checked: its ids name a directory that is
    // removed at the end, its argv is what runs.
    if (auto ok = check_assignment(a, m_settings.server); !ok) {
        spdlog::error("assignment '{}': {}", printable(a.assignment_id), ok.error().message);
        return report_failure(active, std::nullopt, "", ErrorClass::Transient, ok.error().message);
    }
    const auto dir = assignment_dir(a.assignment_id);
    AssignmentRecord rec{a.assignment_id, a.job_id, a.fencing_token, "received", dir.string(), 0};
    // Recorded before anything else happens, so a crash from here on is found at the next start.
    if (auto st = m_state.record_assignment(rec); !st) {
        spdlog::error("assignment {}: {}", a.assignment_id, st.error().to_string());
        return report_failure(active, std::nullopt, "", ErrorClass::Transient,
                              "engine state file: " + st.error().message);
    }
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    AssignmentOutcome outcome;
    if (ec) {
        outcome = report_failure(active, std::nullopt, "", ErrorClass::Transient,
                                 "cannot create " + dir.string() + ": " + ec.message());
    } else {
        Attempt at(*this, active);
        spdlog::info("assignment {} (job {}, token {}, {} mode): starting", a.assignment_id, a.job_id,
                     a.fencing_token, protocol::to_string(a.transfer_mode));
        outcome =
            a.transfer_mode == protocol::TransferMode::Stream ? run_stream(active, at) : run_file(active, at);
    }
    std::filesystem::remove_all(dir, ec);
    if (auto st = m_state.remove_assignment(a.assignment_id); !st)
        spdlog::warn("assignment {}: {}", a.assignment_id, st.error().to_string());
    spdlog::info("assignment {}: {}", a.assignment_id, to_string(outcome));
    return outcome;
}

AssignmentOutcome Executor::finish_stopped(ActiveAssignment& active) {
    switch (active.stop_reason()) {
        case StopReason::LeaseLost:
            return AssignmentOutcome::LeaseLost;
        case StopReason::Canceled:
            // Tells the server the engine has stopped, so a canceling job can become canceled.
            (void)report_failure(active, std::nullopt, "", ErrorClass::Transient, "canceled");
            return AssignmentOutcome::Canceled;
        case StopReason::Draining:
            (void)report_failure(active, std::nullopt, "", ErrorClass::Transient, "engine draining");
            return AssignmentOutcome::HandedBack;
        case StopReason::None:
            break;
    }
    return AssignmentOutcome::Failed;
}

AssignmentOutcome Executor::report_failure(ActiveAssignment& active, std::optional<int> exit_code,
                                           const std::string& stderr_tail, ErrorClass cls,
                                           const std::string& message) {
    (void)m_state.update_state(active.id(), "failing");
    protocol::FailRequest f;
    f.fencing_token = active.assignment().fencing_token;
    f.exit_code = exit_code;
    f.stderr_tail = stderr_tail.size() > protocol::k_max_stderr_tail_bytes
                        ? stderr_tail.substr(stderr_tail.size() - protocol::k_max_stderr_tail_bytes)
                        : stderr_tail;
    f.error_class = cls;
    f.message = message;
    auto r = m_api.fail(active.id(), f);
    if (!r) {
        if (r.error().code == ErrorCode::LeaseLost) return AssignmentOutcome::LeaseLost;
        spdlog::warn("assignment {}: reporting the failure: {}", active.id(), r.error().to_string());
    }
    spdlog::info("assignment {}: failed ({}): {}", active.id(), protocol::to_string(cls), message);
    return AssignmentOutcome::Failed;
}

namespace {

std::string source_size_mismatch(uint64_t got, uint64_t expected) {
    return "the source received is " + std::to_string(got) + " bytes, not the " + std::to_string(expected) +
           " bytes uploaded";
}

std::string source_sha256_mismatch(const std::string& expected, const std::string& got, uint64_t size) {
    return "the source received does not match its SHA-256: expected " + expected + ", got " + got + " (" +
           std::to_string(size) + " bytes)";
}

// How ffmpeg's exit reads as a failure message.
std::string exit_message(const RunResult& r) {
    if (r.exit_code) return "ffmpeg exited with status " + std::to_string(*r.exit_code);
    if (r.signal) return "ffmpeg was killed by signal " + std::to_string(*r.signal);
    return "ffmpeg ended abnormally";
}

}  // namespace

AssignmentOutcome Executor::report_ffmpeg_exit(ActiveAssignment& active, const RunResult& rr) {
    return report_failure(active, rr.exit_code, process::tail_lines(rr.stderr_tail, 40),
                          classify_failure(rr.exit_code, rr.stderr_tail), exit_message(rr));
}

AssignmentOutcome Executor::run_file(ActiveAssignment& active, Attempt& at) {
    const Assignment& a = active.assignment();
    const auto dir = assignment_dir(a.assignment_id);
    const auto input = dir / "source";
    const std::string ext = a.video_segment()            ? std::string(media::k_segment_muxer)
                            : a.output_container.empty() ? "out"
                                                         : a.output_container;
    const auto output = dir / ("output." + ext);

    // 1. Download with resume, then check size and SHA-256.
    (void)m_state.update_state(a.assignment_id, "downloading");
    at.report(ProgressPhase::Downloading, 0);
    auto dl = m_api.download_source(active.current(), input, [&](uint64_t done, uint64_t total) {
        if (active.stopping()) return false;
        uint64_t size = total ? total : static_cast<uint64_t>(std::max<std::int64_t>(a.source_size, 1));
        at.report(ProgressPhase::Downloading, 100.0 * static_cast<double>(done) / static_cast<double>(size));
        return !active.stopping();
    });
    if (active.stopping()) return finish_stopped(active);
    if (!dl) {
        if (dl.error().code == ErrorCode::LeaseLost) return AssignmentOutcome::LeaseLost;
        return report_failure(active, std::nullopt, "", ErrorClass::Transient,
                              "source download failed: " + dl.error().message);
    }
    // Bytes that do not match the upload's size and SHA-256 are never transcoded: the report says
    // source_corrupt, and the dispatch tells a copy corrupted on its disk (the job fails) from bytes
    // broken on the way (retried). The bad copy goes at once, so nothing can resume from it.
    std::error_code ec;
    auto size = std::filesystem::file_size(input, ec);
    if (ec)
        return report_failure(active, std::nullopt, "", ErrorClass::Transient,
                              "the downloaded source cannot be read: " + ec.message());
    std::optional<std::string> corrupt;
    if (a.source_size > 0 && size != static_cast<uint64_t>(a.source_size)) {
        corrupt = source_size_mismatch(size, static_cast<uint64_t>(a.source_size));
    } else if (a.source_sha256) {
        auto sha = sha256_file(input);
        if (!sha)
            return report_failure(active, std::nullopt, "", ErrorClass::Transient,
                                  "the downloaded source cannot be read: " + sha.error().message);
        if (*sha != *a.source_sha256) corrupt = source_sha256_mismatch(*a.source_sha256, *sha, size);
    }
    if (corrupt) {
        std::filesystem::remove(input, ec);
        std::filesystem::remove(input.string() + ".part", ec);
        return report_failure(active, std::nullopt, "", ErrorClass::SourceCorrupt, *corrupt);
    }

    // 2. Transcode.
    (void)m_state.update_state(a.assignment_id, "transcoding");
    RunSpec spec =
        run_spec(build_file_argv(a, m_settings.ffmpeg, input.string(), output.string()), dir, false);
    spdlog::info("assignment {}: {}", a.assignment_id, media::quote_command(spec.argv));
    auto started = m_runner.start(spec);
    if (!started)
        return report_failure(active, std::nullopt, "", ErrorClass::Transient,
                              "cannot start ffmpeg: " + started.error().message);
    auto& proc = *started;
    active.attach(proc.get());
    media::ProgressParser parser(media::expected_output_duration(a.duration_seconds, a.options));
    at.report(ProgressPhase::Transcoding, 0);
    RunResult rr = proc->wait([&](std::string_view chunk) {
        for (const auto& u : parser.feed(chunk))
            at.report(ProgressPhase::Transcoding, u.percent.value_or(0), &u);
    });
    active.detach();
    if (active.stopping()) return finish_stopped(active);
    if (rr.exit_code != 0) return report_ffmpeg_exit(active, rr);
    at.report(ProgressPhase::Transcoding, 100);
    if (active.stopping()) return finish_stopped(active);

    // 3. Verify: an encode that stopped early with exit code 0, or lost a stream, never counts.
    auto out_size = std::filesystem::file_size(output, ec);
    if (ec) return report_failure(active, 0, "", ErrorClass::Transient, "ffmpeg wrote no output file");
    (void)m_state.update_state(a.assignment_id, "verifying");
    auto verified = verify_file_output(active, output, dir);
    if (!verified) {
        if (active.stopping()) return finish_stopped(active);
        const bool mismatch = verified.error().code == ErrorCode::OutputMismatch;
        return report_failure(active, 0, "", mismatch ? ErrorClass::OutputMismatch : ErrorClass::Transient,
                              verified.error().message);
    }

    // 4. Upload with resume, then complete.
    (void)m_state.update_state(a.assignment_id, "uploading");
    auto up = m_api.upload_output_file(active.current(), output, [&](uint64_t done, uint64_t) {
        at.report(ProgressPhase::Uploading,
                  100.0 * static_cast<double>(done) / static_cast<double>(std::max<uint64_t>(out_size, 1)));
        return !active.stopping();
    });
    if (active.stopping()) return finish_stopped(active);
    if (!up) {
        if (up.error().code == ErrorCode::LeaseLost) return AssignmentOutcome::LeaseLost;
        return report_failure(active, std::nullopt, "", ErrorClass::Transient,
                              "output upload failed: " + up.error().message);
    }
    auto sha = sha256_file(output);
    if (!sha) return report_failure(active, std::nullopt, "", ErrorClass::Transient, sha.error().message);
    (void)m_state.update_state(a.assignment_id, "completing");
    protocol::CompleteRequest c;
    c.fencing_token = a.fencing_token;
    c.output_size = static_cast<std::int64_t>(out_size);
    c.output_sha256 = *sha;
    // The server checks it against the source's: the probed length of the file, else ffmpeg's.
    if (*verified)
        c.duration_seconds = **verified;
    else if (at.last_out_time > 0)
        c.duration_seconds = at.last_out_time;
    c.elapsed_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - at.started).count();
    auto done = m_api.complete(a.assignment_id, c);
    if (!done) {
        if (done.error().code == ErrorCode::LeaseLost) return AssignmentOutcome::LeaseLost;
        return report_failure(active, std::nullopt, "", ErrorClass::Transient,
                              "complete failed: " + done.error().message);
    }
    return AssignmentOutcome::Completed;
}

Result<std::optional<double>> Executor::verify_file_output(ActiveAssignment& active,
                                                           const std::filesystem::path& output,
                                                           const std::filesystem::path& dir) {
    const Assignment& a = active.assignment();
    auto plan = protocol::assignment_plan(a);
    if (!plan)
        return Error(ErrorCode::OutputMismatch, "no stream plan to verify against: " + plan.error().message);
    if (!plan->has_value()) return std::optional<double>();
    RunSpec spec = run_spec(
        media::ffprobe_argv(m_settings.ffprobe, output.string(), protocol::assignment_output_demuxer(a)), dir,
        false);
    auto started = m_runner.start(spec);
    if (!started) return Error(ErrorCode::Internal, "cannot start ffprobe: " + started.error().message);
    auto& proc = *started;
    active.attach(proc.get());
    std::string out;
    RunResult rr = proc->wait([&](std::string_view chunk) {
        if (out.size() < (8u << 20)) out.append(chunk);
    });
    active.detach();
    if (active.stopping()) return Error(ErrorCode::Unavailable, "stopped");
    if (rr.exit_code != 0)
        return Error(
            ErrorCode::OutputMismatch,
            "the output does not open: ffprobe " +
                (rr.exit_code ? "exited " + std::to_string(*rr.exit_code) : std::string("was killed")) +
                (rr.stderr_tail.empty() ? "" : ": " + rr.stderr_tail.substr(0, 300)));
    auto probed = media::parse_ffprobe_json(out);
    if (!probed)
        return Error(ErrorCode::OutputMismatch, "the output does not open: " + probed.error().message);
    DISTCONV_TRY(media::verify_output(**plan, media::expected_output_duration(a.duration_seconds, a.options),
                                      *probed));
    return probed->duration_seconds;
}

AssignmentOutcome Executor::run_stream(ActiveAssignment& active, Attempt& at) {
    const Assignment& a = active.assignment();
    (void)m_state.update_state(a.assignment_id, "transcoding");
    // ffmpeg reads the source from the engine's relay, which fetches it with the assignment's
    // credential: no secret, TLS or server address in ffmpeg's hands.
    SourceRelay relay(static_cast<uint64_t>(std::max<std::int64_t>(a.source_size, 0)),
                      [&](uint64_t offset, uint64_t length) {
                          return m_api.read_source_range(active.current(), offset, length);
                      });
    if (auto st = relay.start(); !st)
        return report_failure(active, std::nullopt, "", ErrorClass::Transient, st.error().message);
    // Sandboxed, ffmpeg gets a network of its own with one port, served by the engine and pumped to
    // the relay (sandbox_port.hpp): the relay's URL works unchanged inside.
    const bool own_port = !m_settings.bwrap.empty() && !m_settings.self_exe.empty();
    std::optional<SandboxPort> port;
    auto argv = build_stream_argv(a, m_settings.ffmpeg, relay.url());
    if (own_port) {
        port.emplace(relay.port());
        argv.insert(argv.begin(),
                    {m_settings.self_exe, "sandbox-listen", std::to_string(relay.port()), "--"});
    }
    RunSpec spec = run_spec(std::move(argv), assignment_dir(a.assignment_id), !own_port);
    spec.output_pipe = true;
    if (port) spec.pass_fd = port->child_fd();
    spdlog::info("assignment {}: {}", a.assignment_id, media::quote_command(spec.argv));
    auto started = m_runner.start(spec);
    if (!started)
        return report_failure(active, std::nullopt, "", ErrorClass::Transient,
                              "cannot start ffmpeg: " + started.error().message);
    auto& proc = *started;
    active.attach(proc.get());
    if (port) port->start();

    // The upload runs on its own thread, reading fd 3 as ffmpeg writes it.
    Sha256 hash;
    std::int64_t streamed = 0;
    Status upload_status;
    std::atomic<bool> upload_failed{false};
    const int fd = proc->output_fd();
    std::thread uploader([&] {
        upload_status = m_api.upload_output_stream(active.current(), [&](char* buf, size_t n) -> size_t {
            while (true) {
                if (active.stopping()) return http::k_read_abort;
                pollfd p{fd, POLLIN, 0};
                int r = poll(&p, 1, 200);
                if (r < 0 && errno == EINTR) continue;
                if (r == 0) continue;
                ssize_t got = read(fd, buf, n);
                if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
                if (got <= 0) return 0;  // ffmpeg closed its output: the body ends
                hash.update(buf, static_cast<size_t>(got));
                streamed += got;
                return static_cast<size_t>(got);
            }
        });
        if (!upload_status) {
            upload_failed = true;
            proc->terminate(m_settings.kill_grace);  // nobody reads fd 3 any more: ffmpeg would block
        }
    });
    media::ProgressParser parser(media::expected_output_duration(a.duration_seconds, a.options));
    at.report(ProgressPhase::Transcoding, 0);
    RunResult rr = proc->wait([&](std::string_view chunk) {
        for (const auto& u : parser.feed(chunk))
            at.report(ProgressPhase::Transcoding, u.percent.value_or(0), &u);
    });
    uploader.join();
    active.detach();
    if (port) port->stop();
    relay.stop();
    if (active.stopping()) return finish_stopped(active);
    // Also when ffmpeg exited 0: a cut connection can read as the end of the input to it.
    if (auto e = relay.error())
        return report_failure(active, std::nullopt, process::tail_lines(rr.stderr_tail, 40),
                              ErrorClass::Transient,
                              "reading the source from the server failed: " + e->message);
    if (upload_failed) {
        if (upload_status.error().code == ErrorCode::LeaseLost) return AssignmentOutcome::LeaseLost;
        return report_failure(active, std::nullopt, process::tail_lines(rr.stderr_tail, 40),
                              ErrorClass::Transient,
                              "output upload failed: " + upload_status.error().message);
    }
    // The bytes ffmpeg read are checked before the output is completed (the server drops an attempt's
    // output when it fails), and also when ffmpeg failed: a failure caused by a corrupted source
    // must read as that, not as the options' fault. The relay hashed what it fetched in order;
    // only the rest is fetched now.
    if (a.source_sha256) {
        auto digest = relay.finish_hash([&](uint64_t offset, uint64_t length) -> Result<std::string> {
            if (active.stopping()) return Error(ErrorCode::Unavailable, "the assignment was stopped");
            // A long rest keeps the lease and the credential fresh: progress answers renew both.
            if (std::chrono::steady_clock::now() - at.last_report >= std::chrono::seconds(10))
                at.report(ProgressPhase::Transcoding, 100);
            return m_api.read_source_range(active.current(), offset, length);
        });
        if (active.stopping()) return finish_stopped(active);
        const bool ffmpeg_failed = rr.exit_code != 0;
        if (!digest) {
            if (digest.error().code == ErrorCode::LeaseLost) return AssignmentOutcome::LeaseLost;
            if (!ffmpeg_failed)
                return report_failure(active, std::nullopt, "", ErrorClass::Transient,
                                      "verifying the source failed: " + digest.error().message);
        } else {
            const uint64_t expected_size = static_cast<uint64_t>(std::max<std::int64_t>(a.source_size, 0));
            std::optional<std::string> corrupt;
            if (digest->size != expected_size)
                corrupt = source_size_mismatch(digest->size, expected_size);
            else if (digest->sha256 != *a.source_sha256)
                corrupt = source_sha256_mismatch(*a.source_sha256, digest->sha256, digest->size);
            if (corrupt)
                return report_failure(active, ffmpeg_failed ? rr.exit_code : std::nullopt,
                                      ffmpeg_failed ? process::tail_lines(rr.stderr_tail, 40) : "",
                                      ErrorClass::SourceCorrupt, *corrupt);
            spdlog::info("assignment {}: source verified ({} bytes, {} of them fetched only for the check)",
                         a.assignment_id, digest->size, digest->fetched_to_finish);
        }
    }
    if (rr.exit_code != 0) return report_ffmpeg_exit(active, rr);
    at.report(ProgressPhase::Transcoding, 100);
    if (active.stopping()) return finish_stopped(active);
    (void)m_state.update_state(a.assignment_id, "completing");
    protocol::CompleteRequest c;
    c.fencing_token = a.fencing_token;
    c.output_size = streamed;
    c.output_sha256 = hash.hex_digest();
    if (at.last_out_time > 0) c.duration_seconds = at.last_out_time;
    c.elapsed_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - at.started).count();
    auto done = m_api.complete(a.assignment_id, c);
    if (!done) {
        if (done.error().code == ErrorCode::LeaseLost) return AssignmentOutcome::LeaseLost;
        return report_failure(active, std::nullopt, "", ErrorClass::Transient,
                              "complete failed: " + done.error().message);
    }
    return AssignmentOutcome::Completed;
}

}  // namespace distconv::engine
