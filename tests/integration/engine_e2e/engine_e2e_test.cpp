// End to end: the real distconv-dispatch, the real distconv-engine binaries and real ffmpeg on tiny
// lavfi clips, all on 127.0.0.1. The happy paths and the placement rules; crashes, stops and
// cancels are in engine_faults_test.cpp.

#include "tests/integration/engine_e2e/e2e_support.hpp"

#include <gtest/gtest.h>

#include <set>

#include <signal.h>

using namespace distconv;
using namespace distconv::e2e;
using namespace std::chrono_literals;

namespace {

struct PresetCase {
    std::string preset;
    std::string output;
    std::vector<std::string> codecs;  // expected streams, in order
    nlohmann::json extra = nlohmann::json::object();
};

// One source frame at 25 fps: the output's video must last as long as the source's within this.
constexpr double k_one_frame = 0.05;

bool is_final(const nlohmann::json& j) {
    auto s = j.value("state", "");
    return s == "completed" || s == "failed" || s == "canceled";
}

}  // namespace

TEST(EngineE2E, TwoEnginesCompleteTenJobsOfMixedPresets) {
    Cluster c;
    auto e1 = c.start_engine("engine1");
    auto e2 = c.start_engine("engine2");
    ASSERT_TRUE(test::make_test_clip(c.dir() / "in.mp4", 1.0, 160, 120));
    auto source_duration = video_duration(c.dir() / "in.mp4");
    ASSERT_TRUE(source_duration);

    const std::vector<PresetCase> cases = {
        {"h264-web", "a.mp4", {"h264", "aac"}},
        {"h264-small", "b.mp4", {"h264", "aac"}},
        {"h265-small", "c.mp4", {"hevc", "aac"}},
        {"h265-web", "d.mp4", {"hevc", "aac"}},
        {"vp9-small", "e.webm", {"vp9", "opus"}},
        {"vp9-web", "f.webm", {"vp9", "opus"}},
        {"remux-mkv", "g.mkv", {"h264", "aac"}},
        {"h264-archive", "h.mkv", {"h264", "flac"}},
        {"av1-small", "i.webm", {"av1", "opus"}},
        {"h264-web", "j.mkv", {"h264", "aac"}, {{"container", "mkv"}}},
    };
    std::vector<std::string> ids;
    for (const auto& pc : cases) {
        nlohmann::json job = {{"preset", pc.preset}, {"output_filename", pc.output}};
        job.update(pc.extra);
        std::string answer;
        ids.push_back(c.submit(c.dir() / "in.mp4", job, &answer));
        ASSERT_FALSE(ids.back().empty()) << pc.preset << ": " << answer;
    }

    std::set<std::string> engines_used;
    for (size_t i = 0; i < ids.size(); ++i) {
        nlohmann::json j;
        ASSERT_TRUE(c.wait_job(ids[i], is_final, 60s, &j)) << j.dump();
        ASSERT_EQ(j.value("state", ""), "completed") << cases[i].preset << ": " << j.dump();
        ASSERT_EQ(j["attempts"].size(), 1u) << j.dump();
        engines_used.insert(j["attempts"][0].value("engine_id", ""));

        auto out = c.dir() / ("out-" + cases[i].output);
        ASSERT_TRUE(c.download_result(ids[i], out)) << cases[i].preset;
        auto probe = ffprobe(out);
        ASSERT_TRUE(probe) << cases[i].preset << ": ffprobe cannot read " << out;
        EXPECT_EQ(probe->codecs, cases[i].codecs) << cases[i].preset;
        auto duration = video_duration(out);
        ASSERT_TRUE(duration) << cases[i].preset;
        EXPECT_NEAR(*duration, *source_duration, k_one_frame) << cases[i].preset;
    }
    // Both engines took work: neither idled while the queue was full.
    EXPECT_EQ(engines_used.size(), 2u);

    // Engines drain on SIGTERM with exit code 0 and leave no assignment files behind.
    EXPECT_EQ(e1->signal_and_wait(SIGTERM), 0);
    EXPECT_EQ(e2->signal_and_wait(SIGTERM), 0);
    for (const char* name : {"engine1", "engine2"}) {
        std::error_code ec;
        auto dir = c.work_dir(name) / "assignments";
        EXPECT_TRUE(!std::filesystem::exists(dir, ec) || std::filesystem::is_empty(dir, ec)) << name;
    }
}

TEST(EngineE2E, CorruptSourceFailsOnceAsPermanentWithTheStderrSummary) {
    Cluster c;
    auto engine = c.start_engine("engine1");
    // A fast-start MP4 whose index is intact (the server's ffprobe accepts it) but whose media data
    // is garbage: ffmpeg cannot decode a single frame.
    ASSERT_TRUE(test::make_test_clip(c.dir() / "good.mp4", 1.0, 160, 120));
    ASSERT_EQ(test::run_command({"ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i",
                                 (c.dir() / "good.mp4").string(), "-c", "copy", "-movflags", "+faststart",
                                 (c.dir() / "faststart.mp4").string()}),
              0);
    std::string bytes = test::read_file(c.dir() / "faststart.mp4");
    auto mdat = bytes.find("mdat");
    ASSERT_NE(mdat, std::string::npos);
    for (size_t i = mdat + 4; i < bytes.size(); ++i)
        bytes[i] = static_cast<char>((static_cast<unsigned char>(bytes[i]) * 7 + 13) & 0xff);
    test::write_file(c.dir() / "corrupt.mp4", bytes);

    std::string answer;
    auto id =
        c.submit(c.dir() / "corrupt.mp4",
                 {{"preset", "h264-web"}, {"output_filename", "out.mp4"}, {"max_attempts", 3}}, &answer);
    ASSERT_FALSE(id.empty()) << answer;
    nlohmann::json j;
    ASSERT_TRUE(c.wait_job(id, is_final, 30s, &j)) << j.dump();
    EXPECT_EQ(j.value("state", ""), "failed") << j.dump();
    ASSERT_EQ(j["attempts"].size(), 1u) << "a permanent failure is not retried: " << j.dump();
    EXPECT_EQ(j["attempts"][0].value("error_class", ""), "permanent") << j.dump();
    EXPECT_NE(j["attempts"][0].value("exit_code", 0), 0) << j.dump();
    // The reason carries ffmpeg's exit and the tail of its stderr.
    std::string reason = j.value("failure_reason", "");
    EXPECT_NE(reason.find("ffmpeg exited with status"), std::string::npos) << reason;
    EXPECT_NE(reason.find('\n'), std::string::npos) << "no stderr summary: " << reason;
    // Still failed (not requeued) a moment later.
    EXPECT_FALSE(c.wait_job(
        id, [](const nlohmann::json& job) { return job.value("state", "") != "failed"; }, 1s));
}

TEST(EngineE2E, EngineWithoutFreeDiskGetsStreamModeAndTheMp4IsFinished) {
    Cluster c;
    // A reserve larger than any disk: the engine reports 0 bytes free.
    EngineOptions small_disk;
    small_disk.reserve_disk = "1000T";
    auto engine = c.start_engine("engine1", small_disk);
    ASSERT_TRUE(test::make_test_clip(c.dir() / "in.mp4", 1.0, 160, 120));
    auto source_duration = video_duration(c.dir() / "in.mp4");
    ASSERT_TRUE(source_duration);

    std::string answer;
    auto id = c.submit(c.dir() / "in.mp4", {{"preset", "h264-web"}, {"output_filename", "out.mp4"}}, &answer);
    ASSERT_FALSE(id.empty()) << answer;
    nlohmann::json j;
    ASSERT_TRUE(c.wait_job(id, is_final, 30s, &j)) << j.dump();
    ASSERT_EQ(j.value("state", ""), "completed") << j.dump() << "\n" << engine->log();
    ASSERT_EQ(j["attempts"].size(), 1u) << j.dump();
    EXPECT_EQ(j["attempts"][0].value("transfer_mode", ""), "stream") << j.dump();

    auto out = c.dir() / "out.mp4";
    ASSERT_TRUE(c.download_result(id, out));
    auto probe = ffprobe(out);
    ASSERT_TRUE(probe);
    EXPECT_EQ(probe->codecs, (std::vector<std::string>{"h264", "aac"}));
    EXPECT_NE(probe->format.find("mp4"), std::string::npos) << probe->format;
    auto duration = video_duration(out);
    ASSERT_TRUE(duration);
    EXPECT_NEAR(*duration, *source_duration, k_one_frame);
    // What the user asked for: a fast-start MP4, not the fragmented stream the engine sent.
    EXPECT_TRUE(moov_before_mdat(out));
}

TEST(EngineE2E, JobNeedingAnEncoderNoEngineHasStaysQueuedWithAReason) {
    Cluster c;
    auto engine = c.start_engine("engine1");
    ASSERT_FALSE(c.engine_id("engine1").empty());
    ASSERT_TRUE(test::make_test_clip(c.dir() / "in.mp4", 1.0, 160, 120));
    std::string answer;
    auto id = c.submit(c.dir() / "in.mp4",
                       {{"preset", "h264-web"},
                        {"output_filename", "out.mp4"},
                        {"requirements", {{"encoders", {"libsvtav1-nonexistent"}}}}},
                       &answer);
    ASSERT_FALSE(id.empty()) << answer;
    // A job anyone can run goes through meanwhile: the engine is polling, it just cannot take this one.
    auto other =
        c.submit(c.dir() / "in.mp4", {{"preset", "h264-web"}, {"output_filename", "other.mp4"}}, &answer);
    ASSERT_FALSE(other.empty()) << answer;
    ASSERT_TRUE(c.wait_state(other, "completed", 30s));

    nlohmann::json status;
    EXPECT_TRUE(test::wait_until(
        [&] {
            status = c.status(id);
            return status.value("message", "").find("no online engine") != std::string::npos;
        },
        10s))
        << status.dump();
    // Several claim and rescue cycles later it is still queued, still explained.
    EXPECT_FALSE(c.wait_job(
        id, [](const nlohmann::json& job) { return job.value("state", "") != "queued"; }, 2s));
    status = c.status(id);
    EXPECT_EQ(status.value("state", ""), "queued") << status.dump();
    EXPECT_NE(status.value("message", "").find("no online engine"), std::string::npos) << status.dump();
    EXPECT_EQ(c.job(id)["attempts"].size(), 0u);
}
