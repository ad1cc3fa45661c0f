// Split mode end to end (issue 19): one source cut at keyframes into video segments that several
// real engines encode, the audio encoded once, the pieces joined on the dispatch server without
// re-encoding. Real distconv-dispatch, real distconv-engine, real ffmpeg on small lavfi clips.
//
// Exactness: frame count, duration, the constant-rate timeline, audio/video alignment, DTS order and
// clean decoding of the joined output, for H.264, H.265 and VP9 targets (and first, that these
// checks catch joins made wrong on purpose). Seams: PSNR of the split encode against the unsplit one,
// and no seam frame much worse than its neighbours. Faults: an engine SIGKILLed mid-segment and the
// dispatch server restarted mid-job. Fallbacks: sources that cannot be cut safely run as one task.

#include "tests/integration/split/split_support.hpp"

#include "tests/integration/engine_e2e/e2e_support.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <map>
#include <set>

#include <signal.h>

using namespace distconv;
using namespace distconv::e2e;
using namespace distconv::split_test;
using namespace std::chrono_literals;

namespace {

// Generous for a loaded CI machine: the slowest case (VP9) finishes in well under half of it.
constexpr auto k_job_timeout = 150s;

bool is_final(const nlohmann::json& j) {
    auto s = j.value("state", "");
    return s == "completed" || s == "failed" || s == "canceled";
}

nlohmann::json split_on(nlohmann::json job, int segment_seconds = 10) {
    job["split"] = {{"mode", "on"}, {"segment_seconds", segment_seconds}};
    return job;
}

// One dispatch server and two engines with one slot each, both registered before a job goes in.
struct Farm {
    explicit Farm(DispatchTimings t = {}) : c(std::move(t)) {
        a = c.start_engine("engineA");
        b = c.start_engine("engineB");
        a_id = c.engine_id("engineA");
        b_id = c.engine_id("engineB");
        EXPECT_FALSE(a_id.empty()) << a->log();
        EXPECT_FALSE(b_id.empty()) << b->log();
    }
    Cluster c;
    std::unique_ptr<Daemon> a;
    std::unique_ptr<Daemon> b;
    std::string a_id;
    std::string b_id;
};

// A crash of the machine an engine runs on: the engine and its ffmpeg (in a process group of its
// own) die at once.
void crash(std::unique_ptr<Daemon>& engine) {
    auto children = children_of(engine->pid());
    engine->signal_and_wait(SIGKILL);
    engine.reset();
    for (pid_t child : children) kill(child, SIGKILL);
}

std::string brief(const nlohmann::json& job) {
    // The split object and the parent's state, for failure messages (the whole resource is long).
    if (!job.is_object()) return "(no job resource: " + job.dump() + ")";
    nlohmann::json b = {{"state", job.value("state", "")},
                        {"failure_code", job.value("failure_code", nlohmann::json())},
                        {"failure_reason", job.value("failure_reason", nlohmann::json())},
                        {"split", split_of(job)}};
    return b.dump();
}

// What the job resource must say about a finished split job: joined, >= min_video video segments
// and one audio task, all completed exactly once (one completed attempt each) with their attempts
// listed, segment frames adding up to the source's, segment starts on the source's keyframes.
// Returns the engines that delivered a task.
std::set<std::string> expect_joined(const nlohmann::json& j, long source_frames, size_t min_video, int fps,
                                    int gop) {
    std::set<std::string> engines;
    const auto& s = split_of(j);
    EXPECT_TRUE(s.is_object()) << "the job resource has no split object: " << j.dump();
    if (!s.is_object()) return engines;
    EXPECT_EQ(s.value("state", ""), "joined") << brief(j);
    EXPECT_EQ(s.value("mode", ""), "on") << brief(j);
    EXPECT_EQ(s.value("frames", -1L), source_frames) << brief(j);
    const auto video = segments_of_kind(j, "video");
    const auto audio = segments_of_kind(j, "audio");
    EXPECT_GE(video.size(), min_video) << brief(j);
    EXPECT_EQ(audio.size(), 1u) << brief(j);
    long frames = 0;
    double expected_start = 0;
    for (size_t i = 0; i < video.size(); ++i) {
        const auto& seg = video[i];
        frames += seg.value("frames", 0L);
        EXPECT_EQ(seg.value("index", -1), static_cast<int>(i)) << seg.dump();
        const double start = seg.value("start_seconds", -1.0);
        EXPECT_NEAR(start, expected_start, 0.5 / fps) << "segments must follow each other: " << seg.dump();
        expected_start = start + seg.value("duration_seconds", 0.0);
        // Cut points are keyframes of the source: its GOPs are exactly `gop` frames long.
        if (gop > 0) {
            const long first_frame = std::lround(start * fps);
            EXPECT_EQ(first_frame % gop, 0)
                << "segment " << i << " does not start on a keyframe: " << seg.dump();
        }
        EXPECT_NEAR(seg.value("duration_seconds", 0.0), seg.value("frames", 0L) / static_cast<double>(fps),
                    0.5 / fps)
            << seg.dump();
    }
    EXPECT_EQ(frames, source_frames) << "every source frame belongs to exactly one segment: " << brief(j);
    for (const auto* list : {&video, &audio}) {
        for (const auto& seg : *list) {
            EXPECT_EQ(seg.value("state", ""), "completed") << seg.dump();
            const auto attempts = seg.value("attempts", nlohmann::json::array());
            EXPECT_GE(attempts.size(), 1u) << seg.dump();
            int completed = 0;
            for (const auto& a : attempts) {
                if (!attempt_completed(a)) continue;
                ++completed;
                engines.insert(a.value("engine_id", ""));
            }
            EXPECT_EQ(completed, 1) << "a task is delivered exactly once: " << seg.dump();
            if (seg.contains("engine_id") && seg["engine_id"].is_string())
                engines.insert(seg["engine_id"].get<std::string>());
        }
    }
    engines.erase("");
    return engines;
}

struct Measured {
    std::optional<long> frames;
    std::optional<double> video_duration;
    std::optional<StreamSpan> video;
    std::optional<StreamSpan> audio;
};

Measured measure(const std::filesystem::path& file) {
    Measured m;
    m.frames = decoded_video_frames(file);
    m.video_duration = e2e::video_duration(file);
    m.video = stream_span(file, "v:0");
    m.audio = stream_span(file, "a:0");
    return m;
}

std::string describe(const std::string& name, const Measured& m) {
    std::ostringstream s;
    s << name << ": frames=" << (m.frames ? std::to_string(*m.frames) : "?")
      << " video_duration=" << (m.video_duration ? std::to_string(*m.video_duration) : "?");
    if (m.video) s << " video=[" << m.video->start << ", " << m.video->end << "]";
    if (m.audio)
        s << " audio=[" << m.audio->start << ", " << m.audio->end << "] audio_frame=" << m.audio->frame;
    return s.str();
}

// The largest distance of a presentation time from the constant-rate timeline pts[0] + i / fps.
double max_pts_offset(const std::vector<double>& pts, int fps, size_t* at = nullptr) {
    double worst = 0;
    for (size_t i = 0; i < pts.size(); ++i) {
        const double off = std::abs(pts[i] - (pts[0] + static_cast<double>(i) / fps));
        if (off > worst) {
            worst = off;
            if (at) *at = i;
        }
    }
    return worst;
}

// The exactness checks of the joined output against the source.
void expect_exact(const std::filesystem::path& source, const std::filesystem::path& out, int fps) {
    const Measured src = measure(source);
    const Measured got = measure(out);
    std::cout << "[ measure ] " << describe("source", src) << "\n[ measure ] " << describe("output", got)
              << std::endl;
    ASSERT_TRUE(src.frames && src.video_duration && src.video && src.audio) << describe("source", src);
    ASSERT_TRUE(got.frames) << "ffprobe -count_frames cannot read " << out;
    EXPECT_EQ(*got.frames, *src.frames) << "decoded video frames";
    ASSERT_TRUE(got.video_duration);
    EXPECT_NEAR(*got.video_duration, *src.video_duration, 1.0 / fps) << "video duration within one frame";
    ASSERT_TRUE(got.video && got.audio) << describe("output", got);
    // Audio and video start together and end within one audio frame of each other. The source itself
    // passes this strictly (its sine lasts exactly as long as its video; AAC pads the last frame by
    // less than one frame), so the output is held to the same strict bound.
    const double audio_frame = got.audio->frame > 0 ? got.audio->frame : 1024.0 / 48000;
    const double eps = 1e-3;  // container timestamp rounding (Matroska/WebM: 1 ms)
    EXPECT_LE(std::abs(src.audio->start - src.video->start), audio_frame + eps) << describe("source", src);
    EXPECT_LE(std::abs(src.audio->end - src.video->end), audio_frame + eps) << describe("source", src);
    EXPECT_LE(std::abs(got.audio->start - got.video->start), audio_frame + eps)
        << "audio and video start together: " << describe("output", got);
    EXPECT_LE(std::abs(got.audio->end - got.video->end), audio_frame + eps)
        << "audio and video end within one audio frame: " << describe("output", got);
    EXPECT_EQ(dts_problem(out), "") << "DTS strictly increasing across the whole video stream";
    // No drift, gap or overlap at a seam: frame i is shown at start + i / fps (within half a frame;
    // the containers round to their timebase).
    const auto pts = video_pts(out);
    ASSERT_FALSE(pts.empty());
    size_t worst_at = 0;
    const double worst = max_pts_offset(pts, fps, &worst_at);
    std::cout << "[ measure ] largest pts offset from start + i/fps: " << worst << " s at frame " << worst_at
              << std::endl;
    EXPECT_LE(worst, 0.5 / fps) << "frame " << worst_at << " is off the constant-rate timeline";
    int rc = 0;
    EXPECT_EQ(decode_errors(out, &rc), "") << "ffmpeg -v error -i out -f null - prints nothing";
    EXPECT_EQ(rc, 0);
}

nlohmann::json list_jobs(const Cluster& c) {
    http::ClientOptions o;
    o.base_url = c.url() + "/api/v1";
    o.api_key = c.user_key();
    o.request_timeout = 10s;
    o.retry.max_attempts = 1;
    http::Client client(o);
    auto r = client.get("/jobs");
    if (!r || !r->success()) return nullptr;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_object() && j.contains("items")) return j["items"];
    return nullptr;
}

// Submits `job` for `source`, waits for the end and returns the final resource (asserting completed).
void run_to_completion(Cluster& c, const std::filesystem::path& source, const nlohmann::json& job,
                       std::string* id, nlohmann::json* final_job) {
    std::string answer;
    *id = c.submit(source, job, &answer);
    ASSERT_FALSE(id->empty()) << "submit refused: " << answer;
    ASSERT_TRUE(c.wait_job(*id, is_final, k_job_timeout, final_job)) << brief(*final_job);
    ASSERT_EQ(final_job->value("state", ""), "completed") << brief(*final_job);
}

// ---------------------------------------------------------------------------------------------------
// 0. The checks themselves: joins made wrong on purpose with ffmpeg (no daemons) are caught.

TEST(SplitChecks, CatchAJoinThatDropsASegmentOrLeavesAGapAtASeam) {
    test::TempDir dir;
    const SourceSpec spec{.seconds = 12, .width = 256, .height = 144, .fps = 24, .gop = 48};
    const auto source = dir / "source.mp4";
    std::string log;
    ASSERT_TRUE(make_source(source, spec, &log)) << log;
    ASSERT_EQ(run_capture_all({"ffmpeg", "-nostdin", "-v", "error", "-i", source.string(), "-map", "0:v",
                               "-c", "copy", "-f", "segment", "-segment_time", "4", "-reset_timestamps", "1",
                               (dir / "seg_%d.mp4").string()},
                              &log),
              0)
        << log;
    auto join = [&](const std::string& list, const std::string& name) {
        test::write_file(dir / (name + ".txt"), list);
        std::string out;
        EXPECT_EQ(run_capture_all({"ffmpeg", "-nostdin", "-v", "error", "-f", "concat", "-safe", "0", "-i",
                                   (dir / (name + ".txt")).string(), "-i", source.string(), "-map", "0:v",
                                   "-map", "1:a", "-c", "copy", (dir / (name + ".mp4")).string()},
                                  &out),
                  0)
            << out;
        return dir / (name + ".mp4");
    };
    auto seg = [&](int i) {
        return "file '" + (dir / ("seg_" + std::to_string(i) + ".mp4")).string() + "'\n";
    };

    const auto good = join(seg(0) + seg(1) + seg(2), "good");
    const auto dropped = join(seg(0) + seg(2), "dropped");
    // seg_0 declared a second longer than it is: seg_1 starts a second late, every frame still there.
    const auto gap = join(seg(0) + "duration 5\n" + seg(1) + seg(2), "gap");

    const auto source_frames = decoded_video_frames(source);
    ASSERT_TRUE(source_frames);
    EXPECT_EQ(decoded_video_frames(good), source_frames);
    EXPECT_LE(max_pts_offset(video_pts(good), spec.fps), 0.5 / spec.fps);
    EXPECT_EQ(dts_problem(good), "");

    EXPECT_NE(decoded_video_frames(dropped), source_frames);

    EXPECT_EQ(decoded_video_frames(gap), source_frames);
    EXPECT_GT(max_pts_offset(video_pts(gap), spec.fps), 0.5);
    const auto v = stream_span(gap, "v:0");
    const auto a = stream_span(gap, "a:0");
    ASSERT_TRUE(v && a);
    EXPECT_GT(std::abs(v->end - a->end), a->frame)
        << "video [" << v->start << ", " << v->end << "] audio [" << a->start << ", " << a->end << "]";
}

// ---------------------------------------------------------------------------------------------------
// 1. Exactness

struct ExactCase {
    std::string name;
    SourceSpec source;
    nlohmann::json job;
    std::string output;
    std::string video_codec;
    std::string audio_codec;
};

void PrintTo(const ExactCase& c, std::ostream* os) {
    *os << c.name;
}

class SplitExact : public ::testing::TestWithParam<ExactCase> {};

TEST_P(SplitExact, JoinedOutputIsFrameExactAlignedAndDecodesCleanly) {
    const auto& pc = GetParam();
    Farm f;
    ASSERT_FALSE(f.a_id.empty() || f.b_id.empty());
    const auto source = f.c.dir() / "source.mp4";
    std::string log;
    ASSERT_TRUE(make_source(source, pc.source, &log)) << log;
    const auto source_frames = decoded_video_frames(source);
    ASSERT_TRUE(source_frames);
    ASSERT_EQ(*source_frames, std::lround(pc.source.seconds * pc.source.fps));

    nlohmann::json job = split_on(pc.job);
    job["output_filename"] = pc.output;
    std::string id;
    nlohmann::json j;
    ASSERT_NO_FATAL_FAILURE(run_to_completion(f.c, source, job, &id, &j));
    std::cout << "[ split   ] " << pc.name << ": " << split_of(j).dump() << std::endl;

    const auto engines = expect_joined(j, *source_frames, 4, pc.source.fps, pc.source.gop);
    EXPECT_TRUE(engines.count(f.a_id) && engines.count(f.b_id))
        << "both engines ran at least one task; tasks ran on " << nlohmann::json(engines).dump() << " (A "
        << f.a_id << ", B " << f.b_id << ")";

    // The tasks are jobs of their own but never listed: GET /jobs shows the one parent.
    const auto listed = list_jobs(f.c);
    ASSERT_TRUE(listed.is_array());
    EXPECT_EQ(listed.size(), 1u) << listed.dump();
    // A task is readable by its owner as a job.
    const auto video = segments_of_kind(j, "video");
    if (!video.empty()) {
        const auto task = f.c.job(video[0].value("task_id", ""));
        EXPECT_TRUE(task.is_object() && task.value("state", "") == "completed") << task.dump();
    }

    const auto out = f.c.dir() / ("out-" + pc.output);
    ASSERT_TRUE(f.c.download_result(id, out));
    auto probe = probe_all(out);
    ASSERT_TRUE(probe.is_object()) << "ffprobe cannot read " << out;
    std::vector<nlohmann::json> v, a, s;
    for (const auto& st : probe.value("streams", nlohmann::json::array())) {
        const auto type = st.value("codec_type", "");
        if (type == "video") v.push_back(st);
        if (type == "audio") a.push_back(st);
        if (type == "subtitle") s.push_back(st);
    }
    ASSERT_EQ(v.size(), 1u) << probe.dump();
    EXPECT_EQ(v[0].value("codec_name", ""), pc.video_codec);
    ASSERT_GE(a.size(), 1u) << probe.dump();
    EXPECT_EQ(a[0].value("codec_name", ""), pc.audio_codec);
    EXPECT_EQ(a[0].value("sample_rate", ""), "48000");
    EXPECT_EQ(a[0].value("channels", 0), 2);
    if (pc.source.extras) {
        // Both audio languages (each its own track, in order), the subtitle and the chapters came
        // through the join as the stream plan says.
        ASSERT_EQ(a.size(), 2u) << probe.dump();
        EXPECT_EQ(a[0].value("tags", nlohmann::json::object()).value("language", ""), "eng");
        EXPECT_EQ(a[1].value("tags", nlohmann::json::object()).value("language", ""), "fre");
        ASSERT_EQ(s.size(), 1u) << probe.dump();
        EXPECT_EQ(s[0].value("codec_name", ""), "mov_text");
        const auto chapters = probe.value("chapters", nlohmann::json::array());
        ASSERT_EQ(chapters.size(), 2u) << probe.dump();
        EXPECT_NEAR(std::stod(chapters[1].value("start_time", "0")), 15.0, 0.05) << chapters.dump();
        EXPECT_EQ(probe["format"].value("tags", nlohmann::json::object()).value("title", ""),
                  "distconv split test");
        // The second audio track lasts as long as the video too.
        const auto second = stream_span(out, "a:1");
        const auto video_span = stream_span(out, "v:0");
        ASSERT_TRUE(second && video_span);
        EXPECT_LE(std::abs(second->end - video_span->end), second->frame + 1e-3);
    }
    if (pc.output.ends_with(".mp4")) {
        EXPECT_TRUE(moov_before_mdat(out)) << "fast start";
    }

    ASSERT_NO_FATAL_FAILURE(expect_exact(source, out, pc.source.fps));
}

INSTANTIATE_TEST_SUITE_P(
    Targets, SplitExact,
    ::testing::Values(
        // H.264 in MP4 from a source with two audio languages, a subtitle and chapters.
        ExactCase{"H264",
                  {.seconds = 44, .width = 320, .height = 240, .fps = 24, .gop = 48, .extras = true},
                  {{"preset", "h264-web"}, {"video", {{"preset", "ultrafast"}}}},
                  "out.mp4",
                  "h264",
                  "aac"},
        // H.265 in MP4 (Matroska keeps no DTS for B-frame streams, so the DTS check needs MP4).
        ExactCase{"H265",
                  {.seconds = 44, .width = 256, .height = 144, .fps = 24, .gop = 48},
                  {{"preset", "h265-web"}, {"video", {{"preset", "ultrafast"}}}},
                  "out.mp4",
                  "hevc",
                  "aac"},
        // VP9 in WebM at 25 fps (keyframes every 50 frames): ends come from the packets (no stream
        // durations in WebM).
        ExactCase{"VP9",
                  {.seconds = 40, .width = 256, .height = 144, .fps = 25, .gop = 50},
                  {{"preset", "vp9-web"}, {"video", {{"preset", "8"}}}},
                  "out.webm",
                  "vp9",
                  "opus"}),
    [](const ::testing::TestParamInfo<ExactCase>& p) { return p.param.name; });

// ---------------------------------------------------------------------------------------------------
// 2. Seam quality

TEST(SplitSeams, SplitH264IsAsGoodAsUnsplitAndNoSeamFrameDips) {
    Farm f;
    ASSERT_FALSE(f.a_id.empty() || f.b_id.empty());
    const SourceSpec spec{.seconds = 44, .width = 320, .height = 240, .fps = 24, .gop = 48};
    const auto source = f.c.dir() / "source.mp4";
    std::string log;
    ASSERT_TRUE(make_source(source, spec, &log)) << log;
    const nlohmann::json options = {{"preset", "h264-web"}, {"video", {{"preset", "ultrafast"}}}};

    // Both at once: the unsplit job takes one engine while the split job's tasks queue behind it.
    auto split_job = split_on(options);
    split_job["output_filename"] = "split.mp4";
    auto whole_job = options;
    whole_job["output_filename"] = "whole.mp4";
    whole_job["split"] = {{"mode", "off"}};
    std::string answer;
    const auto split_id = f.c.submit(source, split_job, &answer);
    ASSERT_FALSE(split_id.empty()) << answer;
    const auto whole_id = f.c.submit(source, whole_job, &answer);
    ASSERT_FALSE(whole_id.empty()) << answer;
    nlohmann::json js, jw;
    ASSERT_TRUE(f.c.wait_job(split_id, is_final, k_job_timeout, &js)) << brief(js);
    ASSERT_TRUE(f.c.wait_job(whole_id, is_final, k_job_timeout, &jw)) << brief(jw);
    ASSERT_EQ(js.value("state", ""), "completed") << brief(js);
    ASSERT_EQ(jw.value("state", ""), "completed") << brief(jw);
    EXPECT_TRUE(split_of(jw).is_null()) << "mode off never tries: " << brief(jw);
    const auto source_frames = decoded_video_frames(source);
    ASSERT_TRUE(source_frames);
    expect_joined(js, *source_frames, 4, spec.fps, spec.gop);

    const auto split_out = f.c.dir() / "out-split.mp4";
    const auto whole_out = f.c.dir() / "out-whole.mp4";
    ASSERT_TRUE(f.c.download_result(split_id, split_out));
    ASSERT_TRUE(f.c.download_result(whole_id, whole_out));
    auto ps = psnr(split_out, source, f.c.dir() / "psnr-split.log", &log);
    ASSERT_TRUE(ps) << log;
    auto pw = psnr(whole_out, source, f.c.dir() / "psnr-whole.log", &log);
    ASSERT_TRUE(pw) << log;
    std::cout << "[ measure ] PSNR split " << ps->average << " dB over " << ps->per_frame.size()
              << " frames; unsplit " << pw->average << " dB over " << pw->per_frame.size() << " frames"
              << std::endl;
    EXPECT_EQ(ps->per_frame.size(), static_cast<size_t>(*source_frames));
    EXPECT_EQ(pw->per_frame.size(), static_cast<size_t>(*source_frames));
    EXPECT_LE(std::abs(ps->average - pw->average), 0.5)
        << "split " << ps->average << " dB, unsplit " << pw->average << " dB";

    // The seams: the first frame of each segment (and the last frame before it) against the mean of
    // the 4 frames on either side of the pair.
    const auto video = segments_of_kind(js, "video");
    long first = 0;
    const auto n = static_cast<long>(ps->per_frame.size());
    for (size_t i = 0; i < video.size(); ++i) {
        const long seam = first;
        first += video[i].value("frames", 0L);
        double sum = 0;
        int count = 0;
        for (long k = seam - 5; k <= seam + 4; ++k) {
            if (k < 0 || k >= n || k == seam || k == seam - 1) continue;
            sum += ps->per_frame[static_cast<size_t>(k)];
            ++count;
        }
        if (count == 0 || seam >= n) continue;
        const double mean = sum / count;
        const double at = ps->per_frame[static_cast<size_t>(seam)];
        std::cout << "[ measure ] seam " << i << " at frame " << seam << ": " << at << " dB";
        if (seam > 0)
            std::cout << " (the frame before: " << ps->per_frame[static_cast<size_t>(seam - 1)] << " dB)";
        std::cout << ", neighbours " << mean << " dB; unsplit there "
                  << pw->per_frame[static_cast<size_t>(seam)] << " dB" << std::endl;
        EXPECT_GE(at, mean - 3.0) << "seam " << i << " at frame " << seam;
        if (seam > 0) {
            EXPECT_GE(ps->per_frame[static_cast<size_t>(seam - 1)], mean - 3.0)
                << "the last frame before seam " << i << " (frame " << seam - 1 << ")";
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// 3. Faults

// Segments slow enough to catch one running, also on a loaded machine: x264 "slower" on 640x360
// takes 2-5 s per 10 s segment here.
nlohmann::json slow_split_job() {
    return split_on(
        {{"preset", "h264-web"}, {"video", {{"preset", "slower"}}}, {"output_filename", "out.mp4"}});
}
const SourceSpec k_fault_source{.seconds = 44, .width = 640, .height = 360, .fps = 24, .gop = 48};

TEST(SplitFaults, EngineKilledMidSegmentCostsOneRetryAndTheJobCompletesFrameExact) {
    DispatchTimings t;
    t.lease_timeout = "2s";
    t.engine_offline_after = "3s";
    Farm f(t);
    ASSERT_FALSE(f.a_id.empty() || f.b_id.empty());
    const auto source = f.c.dir() / "source.mp4";
    std::string log;
    ASSERT_TRUE(make_source(source, k_fault_source, &log)) << log;
    const auto source_frames = decoded_video_frames(source);
    ASSERT_TRUE(source_frames);

    std::string answer;
    const auto id = f.c.submit(source, slow_split_job(), &answer);
    ASSERT_FALSE(id.empty()) << answer;

    // A video task the job resource shows on engine A while A's ffmpeg is alive.
    const std::string a_dir = f.c.work_dir("engineA").string() + "/";
    std::string victim;
    nlohmann::json j;
    ASSERT_TRUE(f.c.wait_job(
        id,
        [&](const nlohmann::json& job) {
            for (const auto& seg : segments_of_kind(job, "video"))
                if (seg.value("state", "") == "running" &&
                    seg.value("engine_id", nlohmann::json()) == f.a_id &&
                    !ffmpeg_pids_mentioning(a_dir).empty()) {
                    victim = seg.value("task_id", "");
                    return true;
                }
            return false;
        },
        60s, &j))
        << "no video segment seen running on engine A: " << brief(j);
    crash(f.a);
    std::cout << "[ fault   ] killed engine A while it ran task " << victim << std::endl;

    ASSERT_TRUE(f.c.wait_job(id, is_final, k_job_timeout, &j)) << brief(j);
    ASSERT_EQ(j.value("state", ""), "completed") << brief(j);
    expect_joined(j, *source_frames, 4, k_fault_source.fps, k_fault_source.gop);
    bool found = false;
    for (const auto& seg : segments_of_kind(j, "video")) {
        if (seg.value("task_id", "") != victim) continue;
        found = true;
        const auto attempts = seg.value("attempts", nlohmann::json::array());
        std::cout << "[ fault   ] the killed task's attempts: " << attempts.dump() << std::endl;
        ASSERT_GE(attempts.size(), 2u) << "the killed segment was retried: " << seg.dump();
        EXPECT_EQ(attempts[0].value("engine_id", ""), f.a_id) << seg.dump();
        EXPECT_FALSE(attempt_completed(attempts[0])) << seg.dump();
        EXPECT_TRUE(attempt_completed(attempts.back())) << seg.dump();
        EXPECT_EQ(attempts.back().value("engine_id", ""), f.b_id) << seg.dump();
    }
    EXPECT_TRUE(found) << "task " << victim << " is not among the segments: " << brief(j);

    // Exactly once: one parent in the list, completed, with one output that is frame-exact.
    const auto listed = list_jobs(f.c);
    ASSERT_TRUE(listed.is_array());
    EXPECT_EQ(listed.size(), 1u) << listed.dump();
    const auto out = f.c.dir() / "out.mp4";
    ASSERT_TRUE(f.c.download_result(id, out));
    const auto frames = decoded_video_frames(out);
    ASSERT_TRUE(frames);
    std::cout << "[ measure ] frames source " << *source_frames << ", output " << *frames << std::endl;
    EXPECT_EQ(*frames, *source_frames);
    EXPECT_EQ(dts_problem(out), "");
    EXPECT_EQ(decode_errors(out), "");
}

class SplitDispatchRestart : public ::testing::TestWithParam<int> {};

TEST_P(SplitDispatchRestart, MidJobTheJobCompletesFrameExactWithEveryAttemptKept) {
    const int sig = GetParam();
    Farm f;
    ASSERT_FALSE(f.a_id.empty() || f.b_id.empty());
    const auto source = f.c.dir() / "source.mp4";
    std::string log;
    ASSERT_TRUE(make_source(source, k_fault_source, &log)) << log;
    const auto source_frames = decoded_video_frames(source);
    ASSERT_TRUE(source_frames);

    std::string answer;
    const auto id = f.c.submit(source, slow_split_job(), &answer);
    ASSERT_FALSE(id.empty()) << answer;

    // Some video segments done, not all.
    nlohmann::json before;
    ASSERT_TRUE(f.c.wait_job(
        id,
        [&](const nlohmann::json& job) {
            const auto video = segments_of_kind(job, "video");
            size_t done = 0;
            for (const auto& seg : video) done += seg.value("state", "") == "completed";
            return video.size() >= 4 && done >= 1 && done < video.size();
        },
        60s, &before))
        << "never saw some but not all segments completed: " << brief(before);
    std::map<std::string, size_t> attempts_before;
    for (const auto& kind : {"video", "audio"})
        for (const auto& seg : segments_of_kind(before, kind))
            attempts_before[seg.value("task_id", "")] = seg.value("attempts", nlohmann::json::array()).size();

    f.c.restart_dispatch(sig);
    std::cout << "[ fault   ] dispatch restarted (signal " << sig << ") with " << brief(before) << std::endl;

    nlohmann::json j;
    ASSERT_TRUE(f.c.wait_job(id, is_final, k_job_timeout, &j)) << brief(j);
    ASSERT_EQ(j.value("state", ""), "completed") << brief(j);
    expect_joined(j, *source_frames, 4, k_fault_source.fps, k_fault_source.gop);
    // The same tasks, each with at least the attempts it had before the restart.
    size_t seen = 0;
    for (const auto& kind : {"video", "audio"})
        for (const auto& seg : segments_of_kind(j, kind)) {
            const auto it = attempts_before.find(seg.value("task_id", ""));
            if (it == attempts_before.end()) continue;
            ++seen;
            EXPECT_GE(seg.value("attempts", nlohmann::json::array()).size(), std::max<size_t>(it->second, 1))
                << "attempts lost in the restart: " << seg.dump();
        }
    EXPECT_EQ(seen, attempts_before.size()) << "tasks changed across the restart: " << brief(j);
    for (const auto& kind : {"video", "audio"})
        for (const auto& seg : segments_of_kind(j, kind))
            std::cout << "[ fault   ] " << kind << " " << seg.value("index", -1) << ": "
                      << seg.value("attempts", nlohmann::json::array()).size() << " attempt(s), "
                      << attempts_before[seg.value("task_id", "")] << " before the restart" << std::endl;

    const auto out = f.c.dir() / "out.mp4";
    ASSERT_TRUE(f.c.download_result(id, out));
    const auto frames = decoded_video_frames(out);
    ASSERT_TRUE(frames);
    std::cout << "[ measure ] frames source " << *source_frames << ", output " << *frames << std::endl;
    EXPECT_EQ(*frames, *source_frames);
    EXPECT_EQ(dts_problem(out), "");
    EXPECT_EQ(decode_errors(out), "");
}

INSTANTIATE_TEST_SUITE_P(Signals, SplitDispatchRestart, ::testing::Values(SIGTERM, SIGKILL),
                         [](const ::testing::TestParamInfo<int>& p) {
                             return std::string(p.param == SIGKILL ? "SIGKILL" : "SIGTERM");
                         });

// ---------------------------------------------------------------------------------------------------
// Fallbacks: sources that cannot be cut safely run as one task, the reason recorded.

struct FallbackCase {
    std::string name;
    SourceSpec source;
};

void PrintTo(const FallbackCase& c, std::ostream* os) {
    *os << c.name;
}

class SplitFallback : public ::testing::TestWithParam<FallbackCase> {};

TEST_P(SplitFallback, RunsAsOneTaskWithTheReason) {
    const auto& pc = GetParam();
    Farm f;
    ASSERT_FALSE(f.a_id.empty() || f.b_id.empty());
    const auto source = f.c.dir() / "source.mp4";
    std::string log;
    ASSERT_TRUE(make_source(source, pc.source, &log)) << log;
    const auto source_frames = decoded_video_frames(source);
    ASSERT_TRUE(source_frames);
    if (pc.source.gop == 0) {
        const auto keys = video_keyframes(source);
        ASSERT_TRUE(keys);
        ASSERT_EQ(*keys, 1) << "the source should have a single keyframe";
    }

    // The same job with split mode off beside it: a fallback runs as that ordinary job does.
    const nlohmann::json options = {{"preset", "h264-web"}, {"video", {{"preset", "ultrafast"}}}};
    auto split_job = split_on(options);
    split_job["output_filename"] = "fallback.mp4";
    auto whole_job = options;
    whole_job["output_filename"] = "whole.mp4";
    whole_job["split"] = {{"mode", "off"}};
    std::string answer;
    const auto id = f.c.submit(source, split_job, &answer);
    ASSERT_FALSE(id.empty()) << answer;
    const auto whole_id = f.c.submit(source, whole_job, &answer);
    ASSERT_FALSE(whole_id.empty()) << answer;
    nlohmann::json j, jw;
    ASSERT_TRUE(f.c.wait_job(id, is_final, k_job_timeout, &j)) << brief(j);
    ASSERT_TRUE(f.c.wait_job(whole_id, is_final, k_job_timeout, &jw)) << brief(jw);
    ASSERT_EQ(j.value("state", ""), "completed") << brief(j);
    ASSERT_EQ(jw.value("state", ""), "completed") << brief(jw);

    const auto& s = split_of(j);
    ASSERT_TRUE(s.is_object()) << "split was asked for, so the resource says what became of it: " << brief(j);
    std::cout << "[ split   ] " << pc.name << ": " << s.dump() << std::endl;
    EXPECT_EQ(s.value("state", ""), "single") << brief(j);
    EXPECT_FALSE(s.value("reason", "").empty()) << brief(j);
    EXPECT_LE(segments_of_kind(j, "video").size(), 1u) << "one task, not segments: " << brief(j);
    EXPECT_TRUE(segments_of_kind(j, "audio").empty()) << brief(j);
    EXPECT_GE(j.value("attempts", nlohmann::json::array()).size(), 1u) << "it ran as an ordinary job";

    const auto out = f.c.dir() / "out-fallback.mp4";
    const auto whole_out = f.c.dir() / "out-whole.mp4";
    ASSERT_TRUE(f.c.download_result(id, out));
    ASSERT_TRUE(f.c.download_result(whole_id, whole_out));
    const auto frames = decoded_video_frames(out);
    const auto whole_frames = decoded_video_frames(whole_out);
    ASSERT_TRUE(frames && whole_frames);
    std::cout << "[ measure ] frames source " << *source_frames << ", fallback output " << *frames
              << ", unsplit output " << *whole_frames << std::endl;
    EXPECT_EQ(*frames, *whole_frames) << "the fallback is the ordinary job";
    // A constant-rate source keeps every frame. A VFR source does not in an ordinary MP4 job either
    // (ffmpeg's MP4 output is constant-rate at r_frame_rate: 648 frames in, 578 out here), which is
    // outside split mode, so only the equality with the unsplit job is asked of it.
    if (!pc.source.vfr) {
        EXPECT_EQ(*frames, *source_frames);
    }
    EXPECT_EQ(decode_errors(out), "");
}

INSTANTIATE_TEST_SUITE_P(
    Sources, SplitFallback,
    ::testing::Values(FallbackCase{"SingleKeyframe",
                                   {.seconds = 30, .width = 256, .height = 144, .fps = 24, .gop = 0}},
                      FallbackCase{"VariableFrameRate",
                                   {.seconds = 24, .width = 256, .height = 144, .fps = 24, .vfr = true}}),
    [](const ::testing::TestParamInfo<FallbackCase>& p) { return p.param.name; });

}  // namespace
