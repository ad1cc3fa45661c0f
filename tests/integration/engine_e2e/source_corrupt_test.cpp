// End to end: a source corrupted on the server's disk after its upload (one byte flipped) is found
// by the engine in both transfer modes (file mode checks the download, stream mode the bytes its
// relay fetched plus the rest), and the job fails with SOURCE_CORRUPT instead of being transcoded.
// The uncorrupted controls are EngineE2E.TwoEnginesCompleteTenJobsOfMixedPresets (file mode) and
// EngineE2E.EngineWithoutFreeDiskGetsStreamModeAndTheMp4IsFinished (stream mode).

#include "tests/integration/engine_e2e/e2e_support.hpp"

#include <gtest/gtest.h>

using namespace distconv;
using namespace distconv::e2e;
using namespace std::chrono_literals;

namespace {

bool is_final(const nlohmann::json& j) {
    auto s = j.value("state", "");
    return s == "completed" || s == "failed" || s == "canceled";
}

// Submits a clip while no engine runs, flips one byte in the middle of the stored source, then
// starts an engine with `options` and expects the job to fail as SOURCE_CORRUPT in `mode`.
void expect_source_corrupt(const EngineOptions& options, const std::string& mode) {
    Cluster c;
    ASSERT_TRUE(test::make_test_clip(c.dir() / "in.mp4", 1.0, 160, 120));
    std::string answer;
    auto id =
        c.submit(c.dir() / "in.mp4",
                 {{"preset", "h264-web"}, {"output_filename", "out.mp4"}, {"max_attempts", 3}}, &answer);
    ASSERT_FALSE(id.empty()) << answer;
    nlohmann::json j;
    ASSERT_TRUE(c.wait_state(id, "queued", 10s, &j)) << j.dump();

    // No engine yet: the job waits, and its stored source changes under it.
    const auto job_dir = c.dir() / "data" / "pool" / "jobs" / id;
    const auto source = job_dir / "source";
    ASSERT_TRUE(std::filesystem::exists(source)) << source;
    std::string bytes = test::read_file(source);
    ASSERT_GT(bytes.size(), 1000u);
    const size_t middle = bytes.size() / 2;
    bytes[middle] = static_cast<char>(bytes[middle] ^ 0x01);
    test::write_file(source, bytes);

    auto engine = c.start_engine("engine1", options);
    ASSERT_TRUE(c.wait_job(id, is_final, 60s, &j)) << j.dump() << "\n--- engine:\n" << engine->log();
    ASSERT_EQ(j.value("state", ""), "failed") << j.dump() << "\n--- engine:\n" << engine->log();
    EXPECT_EQ(j.value("failure_code", ""), "SOURCE_CORRUPT") << j.dump();
    std::string reason = j.value("failure_reason", "");
    EXPECT_NE(reason.find("corrupted"), std::string::npos) << reason;
    // The stored copy is what changed, so retrying cannot help: one attempt, reported as such.
    ASSERT_EQ(j["attempts"].size(), 1u) << j.dump();
    EXPECT_EQ(j["attempts"][0].value("transfer_mode", ""), mode) << j.dump();
    EXPECT_EQ(j["attempts"][0].value("error_class", ""), "source_corrupt") << j.dump();
    // The engine said what it got: both digests (its log line may land just after the job ended).
    EXPECT_TRUE(test::wait_until(
        [&] { return engine->log().find("does not match its SHA-256: expected ") != std::string::npos; }, 5s))
        << engine->log();

    // Nothing was stored as the job's output.
    EXPECT_TRUE(j["output"]["size"].is_null()) << j.dump();
    EXPECT_FALSE(c.download_result(id, c.dir() / "out.mp4"));
    for (const auto& entry : std::filesystem::directory_iterator(job_dir))
        EXPECT_EQ(entry.path().filename().string().rfind("output", 0), std::string::npos) << entry.path();
    // Still failed (not requeued) a moment later.
    EXPECT_FALSE(c.wait_job(
        id, [](const nlohmann::json& job) { return job.value("state", "") != "failed"; }, 1s));
}

}  // namespace

TEST(SourceCorrupt, FileModeEngineFindsTheFlippedByteAndTheJobFails) {
    expect_source_corrupt(EngineOptions{}, "file");
}

TEST(SourceCorrupt, StreamModeEngineFindsTheFlippedByteAndTheJobFails) {
    // A reserve larger than any disk: the engine reports 0 bytes free and gets stream mode.
    EngineOptions small_disk;
    small_disk.reserve_disk = "1000T";
    expect_source_corrupt(small_disk, "stream");
}
