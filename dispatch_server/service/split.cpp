#include "dispatch_server/service/split.hpp"

#include "common/fs.hpp"
#include "common/hash.hpp"
#include "common/media/ffmpeg_args.hpp"
#include "common/media/ffprobe.hpp"
#include "common/media/input_policy.hpp"
#include "common/media/progress.hpp"
#include "common/media/stream_plan.hpp"
#include "common/process.hpp"
#include "protocol/engines.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <fstream>

namespace distconv::dispatch {

namespace stdfs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::chrono::minutes k_media_timeout{60};

bool parse_rate(const std::string& text, int64_t& num, int64_t& den) {
    auto slash = text.find('/');
    if (slash == std::string::npos) return false;
    auto a = text.substr(0, slash), b = text.substr(slash + 1);
    auto r1 = std::from_chars(a.data(), a.data() + a.size(), num);
    auto r2 = std::from_chars(b.data(), b.data() + b.size(), den);
    return r1.ec == std::errc() && r2.ec == std::errc() && r1.ptr == a.data() + a.size() &&
           r2.ptr == b.data() + b.size();
}

double seconds_of(int64_t frames, int64_t num, int64_t den) {
    return num > 0 ? static_cast<double>(frames) * static_cast<double>(den) / static_cast<double>(num) : 0;
}

std::string task_kind(const JobRecord& t) {
    return t.task.is_object() ? t.task.value("kind", "") : "";
}

std::string describe(const JobRecord& t) {
    if (task_kind(t) == "audio") return "the audio task";
    return "segment " + std::to_string(t.task.is_object() ? t.task.value("index", 0) : 0);
}

}  // namespace

// --- ffmpeg ------------------------------------------------------------------------------------------

Result<VideoFacts> FfmpegSplitMedia::video_facts(const stdfs::path& file, const std::string& demuxer) {
    if (!media::demuxer_allowed(demuxer))
        return Error::invalid("format", "'" + demuxer + "' is not a demuxer distconv reads");
    auto run = process::run(
        {m_ffprobe, "-v", "error", "-protocol_whitelist", "file", "-format_whitelist", demuxer, "-f", demuxer,
         "-select_streams", "v:0", "-count_packets", "-show_entries",
         "stream=r_frame_rate,avg_frame_rate,time_base,nb_read_packets", "-of", "json", file.string()},
        {k_media_timeout, 1 << 20});
    if (!run) return run.error();
    if (run->exit_code != 0)
        return Error(ErrorCode::Internal, "ffprobe could not count the video of " + file.filename().string() +
                                              ": " + process::tail_lines(run->err, 3));
    auto j = json::parse(run->out, nullptr, false);
    if (j.is_discarded() || !j.contains("streams") || !j["streams"].is_array() || j["streams"].empty())
        return Error(ErrorCode::Internal, "ffprobe found no video stream in " + file.filename().string());
    const auto& s = j["streams"][0];
    VideoFacts f;
    const std::string packets = s.value("nb_read_packets", "");
    auto r = std::from_chars(packets.data(), packets.data() + packets.size(), f.packets);
    if (r.ec != std::errc()) return Error(ErrorCode::Internal, "ffprobe gave no packet count");
    parse_rate(s.value("r_frame_rate", ""), f.rate_num, f.rate_den);
    parse_rate(s.value("avg_frame_rate", ""), f.avg_rate_num, f.avg_rate_den);
    f.time_base = s.value("time_base", "");
    return f;
}

Result<std::vector<stdfs::path>> FfmpegSplitMedia::cut(const stdfs::path& source, const std::string& demuxer,
                                                       const stdfs::path& dir, double segment_seconds) {
    if (!media::demuxer_allowed(demuxer))
        return Error::invalid("format", "'" + demuxer + "' is not a demuxer distconv reads");
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.3f", segment_seconds);
    // The segment muxer starts a new file at the first keyframe at or after each multiple of
    // segment_time; stream copy keeps every packet, so every frame lands in exactly one segment.
    DISTCONV_TRY(run_ffmpeg({"-protocol_whitelist",
                             "file",
                             "-format_whitelist",
                             demuxer,
                             "-f",
                             demuxer,
                             "-i",
                             source.string(),
                             "-map",
                             "0:v:0",
                             "-c",
                             "copy",
                             "-map_metadata",
                             "-1",
                             "-map_chapters",
                             "-1",
                             "-f",
                             "segment",
                             "-segment_time",
                             seconds,
                             "-segment_format",
                             std::string(media::k_segment_muxer),
                             "-reset_timestamps",
                             "1",
                             (dir / "seg_%03d.nut").string()}));
    std::vector<stdfs::path> out;
    for (int i = 0;; ++i) {
        char name[32];
        std::snprintf(name, sizeof name, "seg_%03d.nut", i);
        if (!stdfs::exists(dir / name)) break;
        out.push_back(dir / name);
    }
    return out;
}

Status FfmpegSplitMedia::run_ffmpeg(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {m_ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto run = process::run(argv, {k_media_timeout, 1 << 20});
    if (!run) return run.error();
    if (run->timed_out)
        return Error(ErrorCode::Internal,
                     "ffmpeg ran past " + std::to_string(k_media_timeout.count()) + " minutes");
    if (run->exit_code != 0)
        return Error(ErrorCode::Internal, "ffmpeg exited " + std::to_string(run->exit_code) + ": " +
                                              process::tail_lines(run->err, 3));
    return {};
}

// --- decisions ---------------------------------------------------------------------------------------

json initial_split(const media::JobOptions& resolved, std::optional<double> duration_seconds,
                   double auto_seconds) {
    const std::string mode = resolved.split.mode.value_or("auto");
    if (mode == "off") return nullptr;
    const double seg = resolved.split.segment_seconds.value_or(media::k_default_segment_seconds);
    if (mode == "auto" && (!duration_seconds || *duration_seconds <= auto_seconds)) return nullptr;
    json j{{"mode", mode}, {"segment_seconds", seg}, {"state", k_split_pending}, {"reason", ""}};
    if (!duration_seconds) {
        j["state"] = k_split_single;
        j["reason"] = "the source's duration is not known";
    } else if (*duration_seconds < 2 * seg) {
        j["state"] = k_split_single;
        j["reason"] =
            "the source is shorter than two segments of " + std::to_string(static_cast<int>(seg)) + " s";
    }
    return j;
}

std::optional<std::string> split_refusal(const media::JobOptions& o, const media::StreamPlan& plan) {
    const std::string vcodec = o.video.codec.value_or("libx264");
    if (vcodec == "copy" || vcodec == "none")
        return "video.codec " + vcodec + ": there is no video encode to share out";
    if (!plan.main_video()) return std::string("the output has no video");
    int videos = 0;
    for (int i : plan.output_order)
        if (plan.streams[static_cast<size_t>(i)].type == "video") ++videos;
    if (videos > 1)
        return "the output keeps " + std::to_string(videos) + " video streams; split mode joins one";
    if (!o.trim.empty()) return std::string("trim: split mode encodes whole sources");
    if (o.video.fps)
        return std::string(
            "video.fps changes the frame rate, so the segments' frames would not be the source's");
    if (media::is_audio_only_container(o.container.value_or("mp4")))
        return std::string("the container holds audio only");
    return std::nullopt;
}

std::string concat_list(const std::vector<std::pair<stdfs::path, int64_t>>& segments, int64_t rate_num,
                        int64_t rate_den) {
    std::string out = "ffconcat version 1.0\n";
    for (const auto& [path, frames] : segments) {
        std::string quoted;
        for (char c : path.string()) {
            if (c == '\'')
                quoted += "'\\''";
            else
                quoted += c;
        }
        char duration[64];
        std::snprintf(duration, sizeof duration, "%.9f", seconds_of(frames, rate_num, rate_den));
        out += "file '" + quoted + "'\nduration " + duration + "\n";
    }
    return out;
}

// --- the coordinator ---------------------------------------------------------------------------------

SplitService::SplitService(Store& store, StoragePools& pools, const DispatchConfig& config, Prober& prober,
                           SplitMedia& media, const Clock& clock, ChangeNotifier& notifier)
    : m_store(store),
      m_pools(pools),
      m_config(config),
      m_prober(prober),
      m_media(media),
      m_clock(clock),
      m_notifier(notifier) {}

stdfs::path SplitService::split_dir(const JobRecord& job) const {
    return m_pools.resolve(job.source_pool, "jobs/" + job.id + "/split");
}

void SplitService::set_split(const JobRecord& job, const json& split, const std::string& state) {
    JobUpdate u;
    u.split = split;
    u.split_state = state;
    (void)m_store.update_job(job.id, u);
}

int SplitService::tick() {
    int acted = 0;
    auto jobs = m_store.jobs_in_split_state({k_split_pending, k_split_split, k_split_joining});
    if (!jobs) {
        spdlog::warn("split: cannot list split jobs: {}", jobs.error().message);
        return 0;
    }
    for (const auto& job : *jobs) {
        if (job.split_state == k_split_pending) {
            if (job.state != JobState::Queued) {
                // Canceled (or expired) before it was cut.
                json split = job.split.is_object() ? job.split : json::object();
                split["state"] = k_split_ended;
                set_split(job, split, k_split_ended);
            } else {
                cut(job);
            }
            ++acted;
        } else {
            follow(job);
            ++acted;
        }
    }
    return acted;
}

void SplitService::cut(const JobRecord& job) {
    const auto started = std::chrono::steady_clock::now();
    json split = job.split.is_object() ? job.split : json::object();
    auto single = [&](const std::string& reason) {
        spdlog::info("job {}: not split: {}", job.id, reason);
        std::error_code ec;
        stdfs::remove_all(split_dir(job), ec);
        split["state"] = k_split_single;
        split["reason"] = reason;
        set_split(job, split, k_split_single);
        m_notifier.notify();  // claimable now
    };
    auto options = media::parse_job_options(job.resolved);
    if (!options) return single("the job's options do not parse: " + options.error().message);
    if (!job.source_probe.is_object()) return single("the source was not probed");
    const auto probe = media::probe_from_json(job.source_probe);
    auto plan = media::plan_streams(*options, probe);
    if (!plan) return single("no stream plan: " + plan.error().message);
    if (auto refusal = split_refusal(*options, *plan)) return single(*refusal);
    const double segment_seconds = split.value("segment_seconds", media::k_default_segment_seconds);

    if (split.value("mode", "auto") == "auto") {
        auto engines = m_store.list_engines();
        if (!engines) return;  // the database is unavailable: try again next time
        const std::string encoder = options->video.codec.value_or("libx264");
        int able = 0;
        for (const auto& e : *engines) {
            if (e.state == EngineState::Offline || e.drain) continue;
            const auto& enc =
                e.capabilities.is_object() ? e.capabilities.value("encoders", json::array()) : json::array();
            if (std::find(enc.begin(), enc.end(), encoder) != enc.end()) ++able;
        }
        if (able < 2)
            return single("auto: " + std::to_string(able) + " online engine" + (able == 1 ? "" : "s") +
                          " can run it; split mode needs two or more");
    }

    const auto source = m_pools.resolve(job.source_pool, job.source_path);
    const std::string demuxer = probe.demuxer;
    const uint64_t source_size = job.source_size.value_or(job.source_received);
    for (const auto& c : m_pools.candidates())
        if (c.name == job.source_pool && c.disk_free_bytes < source_size)
            return single("the pool " + c.name + " has no room for the cut segments (" +
                          std::to_string(source_size) + " bytes)");

    auto facts = m_media.video_facts(source, demuxer);
    if (!facts) return single("the source's video cannot be counted: " + facts.error().message);
    if (facts->rate_num <= 0 || facts->rate_den <= 0 || facts->packets <= 0)
        return single("the source's video has no frame rate or frames ffprobe can count");
    const double rate = static_cast<double>(facts->rate_num) / static_cast<double>(facts->rate_den);
    const double avg = facts->avg_rate_den > 0 ? static_cast<double>(facts->avg_rate_num) /
                                                     static_cast<double>(facts->avg_rate_den)
                                               : 0;
    if (rate < 1 || rate > 240 || facts->rate_den > 1001000)
        return single("unusual frame rate " + std::to_string(facts->rate_num) + "/" +
                      std::to_string(facts->rate_den) + " (timebase " + facts->time_base + ")");
    if (avg <= 0 || std::abs(avg - rate) > rate * 0.001)
        return single("variable frame rate (r_frame_rate " + std::to_string(facts->rate_num) + "/" +
                      std::to_string(facts->rate_den) + ", average " + std::to_string(facts->avg_rate_num) +
                      "/" + std::to_string(facts->avg_rate_den) + "): the join keeps a constant rate only");

    const auto dir = split_dir(job);
    std::error_code ec;
    stdfs::remove_all(dir, ec);  // what a cut that was interrupted left
    stdfs::create_directories(dir, ec);
    if (ec) return single("cannot create " + dir.string() + ": " + ec.message());
    auto files = m_media.cut(source, demuxer, dir, segment_seconds);
    if (!files) return single("cutting at keyframes failed: " + files.error().message);
    if (files->size() < 2)
        return single("the source has no keyframe to cut at after its first (no regular keyframes within " +
                      std::to_string(static_cast<int>(segment_seconds)) + " s)");

    // Every frame in exactly one segment: the segments' packets add up to the source's.
    std::vector<int64_t> frames;
    int64_t total = 0;
    for (const auto& f : *files) {
        auto ff = m_media.video_facts(f, std::string(media::k_segment_muxer));
        if (!ff) return single("a cut segment cannot be counted: " + ff.error().message);
        if (ff->packets <= 0) return single("a cut segment holds no frames");
        frames.push_back(ff->packets);
        total += ff->packets;
    }
    if (total != facts->packets)
        return single("cutting at keyframes kept " + std::to_string(total) + " of the source's " +
                      std::to_string(facts->packets) + " frames");

    // The tasks. A segment's probe is the source's main video alone (its colour and HDR facts kept),
    // as stream 0 of a NUT file of the segment's length.
    const auto* main = plan->main_video();
    media::StreamInfo video_stream;
    for (const auto& s : probe.streams)
        if (s.index == main->index) video_stream = s;
    video_stream.index = 0;

    media::JobOptions video_options = *options;
    video_options.audio = media::AudioOptions{};
    video_options.audio.codec = "none";
    video_options.subtitles = media::SubtitleOptions{};
    video_options.subtitles.mode = "drop";
    video_options.split = media::SplitOptions{};
    media::JobOptions audio_options = *options;
    audio_options.video = media::VideoOptions{};
    audio_options.video.codec = "none";
    audio_options.split = media::SplitOptions{};

    const int64_t now = m_clock.now_ms();
    auto base_task = [&](const json& resolved, const json& task) {
        JobRecord t;
        t.owner_key_id = job.owner_key_id;
        t.state = JobState::Queued;
        t.priority = job.priority;
        t.options = json::object();
        t.resolved = resolved;
        t.requirements = job.requirements;
        t.max_attempts = job.max_attempts;
        t.source_filename = job.source_filename;
        t.source_pool = job.source_pool;
        t.queued_at = now;
        t.message = "queued";
        t.task = task;
        return t;
    };
    std::vector<JobRecord> tasks;
    json segments = json::array();
    double start = 0;
    for (size_t i = 0; i < files->size(); ++i) {
        const double duration = seconds_of(frames[i], facts->rate_num, facts->rate_den);
        json task{{"kind", "video"},
                  {"index", static_cast<int>(i)},
                  {"frames", frames[i]},
                  {"start_seconds", start},
                  {"duration_seconds", duration}};
        JobRecord t = base_task(media::to_json(video_options), task);
        const uint64_t size = stdfs::file_size((*files)[i], ec);
        t.source_size = size;
        t.source_received = size;
        t.source_reserved = size;
        t.source_path = "jobs/" + job.id + "/split/" + (*files)[i].filename().string();
        media::ProbeInfo sp;
        sp.format_name = std::string(media::k_segment_muxer);
        sp.demuxer = std::string(media::k_segment_muxer);
        sp.duration_seconds = duration;
        sp.size = static_cast<int64_t>(size);
        media::StreamInfo vs = video_stream;
        vs.duration_seconds = duration;
        sp.streams = {vs};
        t.source_probe = media::to_json(sp);
        t.duration_seconds = duration;
        char name[64];
        std::snprintf(name, sizeof name, "segment-%03zu.nut", i);
        t.output_filename = name;
        auto seg_plan = media::plan_streams(video_options, sp);
        if (!seg_plan) return single("a segment has no stream plan: " + seg_plan.error().message);
        auto argv = protocol::assignment_argv(video_options, protocol::TransferMode::File, sp.demuxer,
                                              &*seg_plan, true);
        if (!argv) return single("a segment cannot be encoded: " + argv.error().message);
        argv->insert(argv->begin(), "ffmpeg");
        t.ffmpeg_command = media::quote_command(*argv);
        tasks.push_back(std::move(t));
        start += duration;
    }
    // The audio task: everything the plan keeps but the main video, and the chapters and metadata.
    bool others = plan->chapters;
    for (int i : plan->output_order)
        if (&plan->streams[static_cast<size_t>(i)] != main) others = true;
    if (others) {
        auto audio_plan = media::plan_streams(audio_options, probe);
        if (!audio_plan) return single("the audio task has no stream plan: " + audio_plan.error().message);
        auto argv = protocol::assignment_argv(audio_options, protocol::TransferMode::File, demuxer,
                                              &*audio_plan, false);
        if (!argv) return single("the audio task cannot run: " + argv.error().message);
        argv->insert(argv->begin(), "ffmpeg");
        json task{{"kind", "audio"},
                  {"index", 0},
                  {"frames", 0},
                  {"start_seconds", 0.0},
                  {"duration_seconds", job.duration_seconds.value_or(start)}};
        JobRecord t = base_task(media::to_json(audio_options), task);
        t.source_size = job.source_size;
        t.source_sha256 = job.source_sha256;
        t.source_received = job.source_received;
        t.source_reserved = 0;  // the job's own source, reserved by the job
        t.source_path = job.source_path;
        t.source_probe = job.source_probe;
        t.duration_seconds = job.duration_seconds;
        t.output_filename = "audio." + media::container_extension(options->container.value_or("mp4"));
        t.ffmpeg_command = media::quote_command(*argv);
        tasks.push_back(std::move(t));
    }

    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    split["state"] = k_split_split;
    split["reason"] = "";
    split["frames"] = facts->packets;
    split["frame_rate"] = std::to_string(facts->rate_num) + "/" + std::to_string(facts->rate_den);
    split["split_seconds"] = std::round(took * 1000) / 1000;
    JobUpdate u;
    u.split = split;
    u.split_state = k_split_split;
    u.started_at = now;
    u.progress_percent = 0.0;
    u.message = "running: " + std::to_string(files->size()) + " segments" + (others ? " and the audio" : "");
    const std::string message = "split into " + std::to_string(files->size()) + " segments at keyframes (" +
                                std::to_string(facts->packets) + " frames)";
    auto started_split = m_store.start_split(job.id, tasks, u, message);
    if (!started_split) {
        stdfs::remove_all(dir, ec);
        if (started_split.error().code != ErrorCode::Conflict)
            spdlog::warn("job {}: split not stored: {}", job.id, started_split.error().message);
        return;
    }
    spdlog::info("job {}: {} in {:.2f} s", job.id, message, took);
    m_notifier.notify();
}

bool SplitService::stop_tasks(const std::vector<JobRecord>& tasks) {
    bool all_ended = true;
    for (const auto& t : tasks) {
        if (is_terminal(t.state)) continue;
        all_ended = false;
        JobUpdate u;
        u.message = "canceled with its job";
        if (t.state == JobState::Queued || t.state == JobState::AwaitingUpload) {
            u.finished_at = m_clock.now_ms();
            u.failure_code = "canceled";
            (void)m_store.transition(t.id, {JobState::Queued, JobState::AwaitingUpload}, JobState::Canceled,
                                     u, "canceled with its job");
        } else if (t.state == JobState::Assigned || t.state == JobState::Running) {
            (void)m_store.transition(t.id, {JobState::Assigned, JobState::Running}, JobState::Canceling, u,
                                     "canceled with its job");
        }
    }
    if (!all_ended) m_notifier.notify_watchers();
    return all_ended;
}

void SplitService::clean_up(const JobRecord& job, const std::vector<JobRecord>& tasks) {
    std::error_code ec;
    stdfs::remove_all(split_dir(job), ec);
    for (const auto& t : tasks) {
        if (!t.output_path.empty() && !t.output_deleted)
            stdfs::remove(m_pools.resolve(t.output_pool, t.output_path), ec);
        if (!t.output_pool.empty()) {
            stdfs::remove(m_pools.resolve(t.output_pool, StoragePools::part_of(t.output_path)), ec);
            stdfs::remove_all(m_pools.resolve(t.output_pool, "jobs/" + t.id), ec);
        }
        JobUpdate u;
        u.source_deleted = true;
        u.source_reserved = 0;
        u.output_deleted = true;
        u.output_reserved = 0;
        (void)m_store.update_job(t.id, u);
    }
}

void SplitService::follow(const JobRecord& job) {
    auto tasks = m_store.tasks_of(job.id);
    if (!tasks) return;
    json split = job.split.is_object() ? job.split : json::object();

    if (job.split_state == k_split_joining) {
        if (job.state == JobState::Running) return join(job, *tasks);
    }
    if (is_terminal(job.state) || job.state == JobState::Canceling) {
        if (!stop_tasks(*tasks)) return;
        if (job.state == JobState::Canceling) {
            JobUpdate u;
            u.finished_at = m_clock.now_ms();
            u.failure_code = "canceled";
            u.message = "canceled";
            (void)m_store.transition(job.id, {JobState::Canceling}, JobState::Canceled, u,
                                     "canceled: every task stopped");
        }
        clean_up(job, *tasks);
        split["state"] = k_split_ended;
        set_split(job, split, k_split_ended);
        m_notifier.notify_watchers();
        return;
    }
    if (job.state != JobState::Running) return;

    // A task that failed for good fails the job (the next pass stops the others).
    for (const auto& t : *tasks) {
        if (t.state != JobState::Failed && t.state != JobState::Canceled) continue;
        JobUpdate u;
        u.finished_at = m_clock.now_ms();
        u.failure_code = t.failure_code.empty() ? "TRANSCODE_FAILED" : t.failure_code;
        u.failure_reason = describe(t) + " (task " + t.id + ") " +
                           (t.state == JobState::Canceled ? "was canceled" : "failed") +
                           (t.failure_reason.empty() ? "" : ": " + t.failure_reason);
        u.message = "failed";
        (void)m_store.transition(job.id, {JobState::Running}, JobState::Failed, u, *u.failure_reason);
        m_notifier.notify_watchers();
        return;
    }

    // Progress: the segments' percentages weighted by their durations.
    double total = 0, done = 0, fps = 0, speed = 0;
    int completed = 0, videos = 0, running = 0;
    bool all_completed = true;
    for (const auto& t : *tasks) {
        if (t.state != JobState::Completed) all_completed = false;
        if (t.state == JobState::Completed) ++completed;
        if (t.state == JobState::Running) {
            ++running;
            if (t.progress.is_object()) {
                fps += t.progress.value("fps", 0.0);
                speed += t.progress.value("speed", 0.0);
            }
        }
        if (task_kind(t) != "video") continue;
        ++videos;
        const double d = t.task.value("duration_seconds", 0.0);
        total += d;
        // A task's percent is its current phase's: only the encode counts (an upload is past it).
        const std::string phase = t.progress.is_object() ? t.progress.value("phase", "") : "";
        const double p = t.state == JobState::Completed ? 100.0
                         : phase == "transcoding"       ? std::clamp(t.progress_percent, 0.0, 100.0)
                         : phase == "uploading"         ? 100.0
                                                        : 0.0;
        done += d * p;
    }
    if (all_completed) return join(job, *tasks);
    const double percent = total > 0 ? std::min(99.0, done / total) : 0;
    const std::string message = "running: " + std::to_string(completed) + " of " +
                                std::to_string(tasks->size()) + " tasks done, " + std::to_string(running) +
                                " running";
    if (std::abs(percent - job.progress_percent) >= 0.1 || message != job.message) {
        JobUpdate u;
        u.progress_percent = percent;
        json progress{{"percent", percent}};
        if (fps > 0) progress["fps"] = fps;
        if (speed > 0) {
            progress["speed"] = speed;
            const double left = job.duration_seconds.value_or(total) * (100.0 - percent) / 100.0;
            progress["eta_seconds"] = left / speed;
        }
        u.progress = progress;
        u.message = message;
        (void)m_store.update_job(job.id, u, progress);
        m_notifier.notify_watchers();
    }
}

void SplitService::fall_back(const JobRecord& job, const std::string& reason) {
    spdlog::warn("job {}: split mode falls back to one task: {}", job.id, reason);
    auto tasks = m_store.tasks_of(job.id);
    if (!tasks) return;
    if (!stop_tasks(*tasks)) return;  // the next pass comes back
    clean_up(job, *tasks);
    if (auto st = m_store.delete_tasks(job.id); !st) return;
    json split = job.split.is_object() ? job.split : json::object();
    split["state"] = k_split_single;
    split["reason"] = reason;
    split.erase("segments");
    JobUpdate u;
    u.split = split;
    u.split_state = k_split_single;
    u.progress_percent = 0.0;
    u.progress = json();
    u.attempt_count = 0;
    u.output_reserved = 0;
    u.message = "queued: split mode fell back to one task";
    (void)m_store.transition(job.id, {JobState::Running}, JobState::Queued, u,
                             "split mode fell back to one task: " + reason);
    m_notifier.notify();
}

void SplitService::join(const JobRecord& job, const std::vector<JobRecord>& tasks) {
    const auto started = std::chrono::steady_clock::now();
    json split = job.split.is_object() ? job.split : json::object();
    if (job.split_state != k_split_joining) {
        split["state"] = k_split_joining;
        JobUpdate u;
        u.split = split;
        u.split_state = k_split_joining;
        u.message = "joining the segments";
        (void)m_store.update_job(job.id, u);
        m_notifier.notify_watchers();
    }
    auto options = media::parse_job_options(job.resolved);
    if (!options) return fall_back(job, "the job's options do not parse");
    const auto probe = media::probe_from_json(job.source_probe);
    auto plan = media::plan_streams(*options, probe);
    if (!plan) return fall_back(job, "no stream plan: " + plan.error().message);
    int64_t num = 0, den = 0;
    if (!parse_rate(split.value("frame_rate", ""), num, den) || num <= 0 || den <= 0)
        return fall_back(job, "the split job has no frame rate");

    // Each encoded segment must hold exactly its source segment's frames: a segment that decoded
    // fewer (an open GOP's leading frames need the segment before) would make the join drop them.
    std::vector<std::pair<stdfs::path, int64_t>> segments;
    const JobRecord* audio = nullptr;
    uint64_t bytes = 0;
    for (const auto& t : tasks) {
        const auto path = m_pools.resolve(t.output_pool, t.output_path);
        std::error_code ec;
        const uint64_t size = stdfs::file_size(path, ec);
        if (ec || t.output_path.empty() || t.output_deleted)
            return fall_back(job, describe(t) + "'s output is missing");
        bytes += size;
        if (task_kind(t) == "audio") {
            audio = &t;
            continue;
        }
        const int64_t frames = t.task.value("frames", int64_t{0});
        auto facts = m_media.video_facts(path, std::string(media::k_segment_muxer));
        if (!facts)
            return fall_back(job, describe(t) + "'s output cannot be counted: " + facts.error().message);
        if (facts->packets != frames)
            return fall_back(job, describe(t) + " came back with " + std::to_string(facts->packets) + " of " +
                                      std::to_string(frames) +
                                      " frames (an open GOP source: its leading frames need the segment "
                                      "before)");
        segments.emplace_back(path, frames);
    }

    auto pool = m_store.reserve_space(job.id, FileKind::Output, bytes + (1u << 20), m_pools.candidates());
    if (!pool) {
        spdlog::warn("job {}: no room to join: {}", job.id, pool.error().message);
        return;  // tried again on the next pass
    }
    const std::string rel = StoragePools::job_file(job.id, FileKind::Output);
    const auto final_path = m_pools.resolve(*pool, rel);
    const auto part = m_pools.resolve(*pool, StoragePools::part_of(rel));
    std::error_code ec;
    stdfs::create_directories(final_path.parent_path(), ec);
    const auto list_path = final_path.parent_path() / "split-concat.txt";
    if (auto st = fs::atomic_write(list_path, concat_list(segments, num, den)); !st)
        return fall_back(job, "cannot write the concat list: " + st.error().message);

    const std::string container = options->container.value_or("mp4");
    std::vector<std::string> args = {"-protocol_whitelist",
                                     "file",
                                     "-format_whitelist",
                                     "concat," + std::string(media::k_segment_muxer),
                                     "-f",
                                     "concat",
                                     "-safe",
                                     "0",
                                     "-i",
                                     list_path.string()};
    if (audio) {
        const std::string demuxer = media::output_demuxer(container);
        args.insert(args.end(), {"-protocol_whitelist", "file", "-format_whitelist", demuxer, "-f", demuxer,
                                 "-i", m_pools.resolve(audio->output_pool, audio->output_path).string()});
    }
    // The streams in the plan's order: the main video from the segments, the rest from the audio task.
    const auto* main = plan->main_video();
    int other = 0;
    for (int i : plan->output_order) {
        if (&plan->streams[static_cast<size_t>(i)] == main)
            args.insert(args.end(), {"-map", "0:v:0"});
        else
            args.insert(args.end(), {"-map", "1:" + std::to_string(other++)});
    }
    args.insert(args.end(), {"-c", "copy"});
    if (audio)
        args.insert(args.end(), {"-map_metadata", "1", "-map_chapters", plan->chapters ? "1" : "-1"});
    else
        args.insert(args.end(), {"-map_metadata", "-1", "-map_chapters", "-1"});
    if (!main->language.empty()) args.insert(args.end(), {"-metadata:s:v:0", "language=" + main->language});
    if (!main->title.empty()) args.insert(args.end(), {"-metadata:s:v:0", "title=" + main->title});
    const bool mp4_family = container == "mp4" || container == "mov";
    if (options->video.codec.value_or("") == "libx265" && mp4_family)
        args.insert(args.end(), {"-tag:v:0", "hvc1"});
    if (mp4_family) args.insert(args.end(), {"-movflags", "+faststart"});
    args.insert(args.end(), {"-f", media::container_muxer(container), part.string()});
    auto ran = m_media.run_ffmpeg(args);
    stdfs::remove(list_path, ec);
    if (!ran) {
        stdfs::remove(part, ec);
        return fall_back(job, "the join failed: " + ran.error().message);
    }
    // The joined file against the job's plan, as any output is checked.
    auto probed = m_prober.probe(part);
    if (!probed) {
        stdfs::remove(part, ec);
        return fall_back(job, "the joined output does not open: " + probed.error().message);
    }
    if (auto st = media::verify_output(*plan, media::expected_output_duration(job.duration_seconds, *options),
                                       *probed);
        !st) {
        stdfs::remove(part, ec);
        return fall_back(job, "the joined output does not match its plan: " + st.error().message);
    }
    if (auto st = fs::fsync_path(part); !st) return;
    if (auto st = fs::durable_rename(part, final_path); !st) return;
    auto sha = sha256_file(final_path);
    if (!sha) return;
    const uint64_t size = stdfs::file_size(final_path, ec);

    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    split["state"] = k_split_joined;
    split["join_seconds"] = std::round(took * 1000) / 1000;
    const int64_t now = m_clock.now_ms();
    JobUpdate u;
    u.split = split;
    u.split_state = k_split_joined;
    u.output_pool = *pool;
    u.output_path = rel;
    u.output_size = size;
    u.output_reserved = size;
    u.output_sha256 = *sha;
    u.output_expires_at = now + m_config.output_retention_ms;
    u.progress_percent = 100.0;
    u.progress = json();
    u.finished_at = now;
    u.message = "completed";
    auto done = m_store.transition(
        job.id, {JobState::Running}, JobState::Completed, u,
        "completed: " + std::to_string(segments.size()) + " segments joined without re-encoding");
    if (!done) {
        stdfs::remove(final_path, ec);
        return;
    }
    spdlog::info("job {}: {} segments joined in {:.2f} s ({} bytes)", job.id, segments.size(), took, size);
    clean_up(job, tasks);
    m_notifier.notify_watchers();
}

}  // namespace distconv::dispatch
