#pragma once
// Split mode: one long video encoded by several engines at once (docs/protocol.md "Split mode").
//
// A job whose split option asks for it waits in the queue with split state "pending" (no engine may
// claim it). The coordinator then cuts the stored source's main video at its keyframes into NUT
// segments (stream copy: every frame in exactly one segment, counted), and stores one task per
// segment (video only) plus one audio task over the whole source (audio, subtitles, chapters and
// metadata as the stream plan says). Tasks are jobs with a parent: engines claim, lease, retry and
// report them like any job. When every task is completed the coordinator joins them on the
// dispatch server without re-encoding: the segments concatenated with durations from their frame
// counts (frame-exact for a constant frame rate), the audio task's streams muxed in, the container
// finished (fast start for MP4). Sources that cannot be cut safely fall back to one ordinary task,
// with the reason in the job's split details.
//
// Every step is driven from what the store says (tick()), so a restarted dispatch server picks up
// where it stopped: a half-done cut is cut again, a half-done join is joined again.

#include "common/error.hpp"
#include "common/media/options.hpp"
#include "common/media/stream_plan.hpp"
#include "common/time.hpp"
#include "dispatch_server/config.hpp"
#include "dispatch_server/pools/pools.hpp"
#include "dispatch_server/service/jobs.hpp"
#include "dispatch_server/service/notifier.hpp"
#include "dispatch_server/store/store.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace distconv::dispatch {

// Split states of a job (JobRecord::split_state).
inline constexpr const char* k_split_pending = "pending";  // queued, waiting to be cut
inline constexpr const char* k_split_split = "split";      // its tasks exist and run
inline constexpr const char* k_split_single = "single";    // fell back to one ordinary task
inline constexpr const char* k_split_joining = "joining";  // every task done; being joined
inline constexpr const char* k_split_joined = "joined";    // the joined output is stored
inline constexpr const char* k_split_ended = "ended";      // failed or canceled; its tasks stopped

// The first video stream of a file as ffprobe counts it.
struct VideoFacts {
    int64_t packets = 0;
    int64_t rate_num = 0, rate_den = 0;          // r_frame_rate
    int64_t avg_rate_num = 0, avg_rate_den = 0;  // avg_frame_rate
    std::string time_base;
};

// The media steps of split mode (ffmpeg and ffprobe in production; a fake in unit tests).
class SplitMedia {
  public:
    virtual ~SplitMedia() = default;
    // The first video stream of `file`, read as `demuxer`, its packets counted.
    virtual Result<VideoFacts> video_facts(const std::filesystem::path& file, const std::string& demuxer) = 0;
    // Cuts the first video stream of `source` at keyframes, about every `segment_seconds`, into
    // dir/seg_000.nut, seg_001.nut, ... by stream copy; the segment files in order.
    virtual Result<std::vector<std::filesystem::path>> cut(const std::filesystem::path& source,
                                                           const std::string& demuxer,
                                                           const std::filesystem::path& dir,
                                                           double segment_seconds) = 0;
    // Runs ffmpeg with `args` (without the program name); the error names its stderr's last lines.
    virtual Status run_ffmpeg(const std::vector<std::string>& args) = 0;
};

class FfmpegSplitMedia final : public SplitMedia {
  public:
    FfmpegSplitMedia(std::string ffmpeg, std::string ffprobe)
        : m_ffmpeg(std::move(ffmpeg)), m_ffprobe(std::move(ffprobe)) {}
    Result<VideoFacts> video_facts(const std::filesystem::path& file, const std::string& demuxer) override;
    Result<std::vector<std::filesystem::path>> cut(const std::filesystem::path& source,
                                                   const std::string& demuxer,
                                                   const std::filesystem::path& dir,
                                                   double segment_seconds) override;
    Status run_ffmpeg(const std::vector<std::string>& args) override;

  private:
    std::string m_ffmpeg, m_ffprobe;
};

// The split details a job starts with when it is queued: {mode, segment_seconds, state, reason},
// state "pending" when it is to be cut, "single" (with the reason) when split mode does not apply,
// null when the job does not ask for split mode at all (mode off, or auto on a short source).
nlohmann::json initial_split(const media::JobOptions& resolved, std::optional<double> duration_seconds,
                             double auto_seconds);

// Why a job cannot be split, from its options and plan alone (before anything is cut); nullopt when
// it can be tried.
std::optional<std::string> split_refusal(const media::JobOptions& resolved, const media::StreamPlan& plan);

// The concat demuxer's list: one file line and one duration line per segment (frames x the frame
// duration), paths quoted for it.
std::string concat_list(const std::vector<std::pair<std::filesystem::path, int64_t>>& segments,
                        int64_t rate_num, int64_t rate_den);

class SplitService {
  public:
    SplitService(Store& store, StoragePools& pools, const DispatchConfig& config, Prober& prober,
                 SplitMedia& media, const Clock& clock, ChangeNotifier& notifier);

    // One pass over the split jobs: cuts the pending ones, follows the split ones (progress, a failed
    // task, a cancel), joins the finished ones. Returns how many jobs it acted on.
    int tick();

  private:
    void cut(const JobRecord& job);
    void follow(const JobRecord& job);
    void join(const JobRecord& job, const std::vector<JobRecord>& tasks);
    // Back to one ordinary task: the tasks removed, the job queued again with the reason.
    void fall_back(const JobRecord& job, const std::string& reason);
    // Stops the tasks that have not ended (queued: canceled at once; running: the engine is told).
    // True when every task has ended.
    bool stop_tasks(const std::vector<JobRecord>& tasks);
    // Removes the job's split directory and marks its tasks' files deleted (their space freed).
    void clean_up(const JobRecord& job, const std::vector<JobRecord>& tasks);
    std::filesystem::path split_dir(const JobRecord& job) const;
    void set_split(const JobRecord& job, const nlohmann::json& split, const std::string& state);

    Store& m_store;
    StoragePools& m_pools;
    const DispatchConfig& m_config;
    Prober& m_prober;
    SplitMedia& m_media;
    const Clock& m_clock;
    ChangeNotifier& m_notifier;
};

}  // namespace distconv::dispatch
