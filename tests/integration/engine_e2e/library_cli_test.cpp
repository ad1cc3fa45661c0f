// `distconv library` against the real dispatch server, a real engine and ffmpeg, on a generated
// library tree: nested folders, names with spaces and UTF-8, H.264 files to transcode, HEVC files
// already fine, a broken file, a text file named like media, a hidden file, a symlink out of the
// tree, a file still being written. Plan, run into a mirror, run again (nothing to do), run in place
// with a trash, a result bigger than its source, and a CLI killed in the middle (of the run, of an
// upload, of a download).

#include "common/http/client.hpp"
#include "common/media/ffprobe.hpp"
#include "tests/integration/engine_e2e/e2e_support.hpp"

#include <gtest/gtest.h>

#include <regex>

#include <signal.h>

#include <fstream>
#include <map>
#include <set>
#include <thread>

using namespace distconv;
using namespace distconv::e2e;
using namespace std::chrono_literals;
namespace stdfs = std::filesystem;
using nlohmann::json;

namespace {

const std::string k_cli = DISTCONV_BINARY_DIR "/submission_client/distconv";

// A clip as a camera or an old rip leaves it: a high rate for its size (H.264 at CRF 12, 192 kb/s
// AAC), so a transcode makes it smaller; HEVC ones at CRF 35 are already small.
bool clip(const stdfs::path& path, const std::string& vcodec, double seconds = 0.5,
          const std::string& audio_bitrate = "192k") {
    stdfs::create_directories(path.parent_path());
    return test::run_command(
               {"ffmpeg",       "-nostdin",
                "-hide_banner", "-loglevel",
                "error",        "-y",
                "-f",           "lavfi",
                "-i",           "testsrc2=size=96x64:rate=25:duration=" + std::to_string(seconds),
                "-f",           "lavfi",
                "-i",           "sine=duration=" + std::to_string(seconds),
                "-c:v",         vcodec,
                "-preset",      "ultrafast",
                "-crf",         vcodec == "libx265" ? "35" : "12",
                "-x265-params", "log-level=error",
                "-c:a",         "aac",
                "-b:a",         audio_bitrate,
                path.string()}) == 0;
}

void age(const stdfs::path& p) {
    stdfs::last_write_time(p, stdfs::file_time_type::clock::now() - std::chrono::hours(1));
}

struct Tree {
    std::set<std::string> transcode, skip, unreadable;
};

// The library under `root`: 10 H.264 files (transcode), 3 HEVC MP4s (skip), a broken MKV and a
// text "MP4" (unreadable), a file written just now (skip: settling), plus what the walk ignores.
Tree make_library(const stdfs::path& root, const stdfs::path& outside) {
    Tree t;
    const std::vector<std::string> h264 = {"Films/A Film (2001)/A Film.mkv",
                                           "Films/Été à Paris.mp4",
                                           "Films/Zoë/Zoë.mov",
                                           "Series/Show Name/Season 1/S01E01.mkv",
                                           "Series/Show Name/Season 1/S01E02.mkv",
                                           "Series/Show Name/Season 2/S02E01 – pilot.mkv",
                                           "Home videos/2019 birthday.mp4",
                                           "Home videos/新年.mkv",
                                           "Concerts/Live at the Hall.mkv",
                                           "top level.avi"};
    for (const auto& f : h264) {
        EXPECT_TRUE(clip(root / f, "libx264")) << f;
        t.transcode.insert(f);
    }
    for (const std::string f : {"Films/Already HEVC.mp4", "Series/Other/E1 hevc.mp4", "hevc.mp4"}) {
        EXPECT_TRUE(clip(root / f, "libx265")) << f;
        t.skip.insert(f);
    }
    test::write_file(root / "Films/Broken.mkv", std::string(4096, '\x42'));
    test::write_file(root / "notes as video.mp4", "these are notes, not a video\n");
    t.unreadable = {"Films/Broken.mkv", "notes as video.mp4"};
    test::write_file(root / "Films/readme.txt", "not media: not walked\n");
    EXPECT_TRUE(clip(root / ".hidden/secret.mkv", "libx264"));
    EXPECT_TRUE(clip(root / "Films/.part.mkv", "libx264"));
    EXPECT_TRUE(clip(outside / "elsewhere.mkv", "libx264"));
    stdfs::create_symlink(outside / "elsewhere.mkv", root / "Films/link.mkv");
    stdfs::create_directory_symlink(outside, root / "linked dir");
    for (auto it = stdfs::recursive_directory_iterator(root); it != stdfs::recursive_directory_iterator();
         ++it)
        if (!it->is_symlink() && it->is_regular_file()) age(it->path());
    // Written last and not aged: still being copied as far as the plan can tell.
    EXPECT_TRUE(clip(root / "Incoming/copying.mkv", "libx264"));
    t.skip.insert("Incoming/copying.mkv");
    return t;
}

// The dispatch server's ffprobe through a wrapper a test can slow down: while `dir`/slow exists each
// probe first touches `dir`/probing and sleeps 3 s (the server checking an upload for that long).
DispatchTimings probing_through_a_gate(const stdfs::path& dir) {
    const auto wrapper = dir / "ffprobe";
    test::write_file(wrapper, "#!/bin/sh\nif [ -e '" + (dir / "slow").string() + "' ]; then touch '" +
                                  (dir / "probing").string() + "'; sleep 3; fi\nexec ffprobe \"$@\"\n");
    stdfs::permissions(wrapper, stdfs::perms::owner_all);
    DispatchTimings t;
    t.extra_args = {"--ffprobe", wrapper.string()};
    return t;
}

class LibraryCli : public ::testing::Test {
  protected:
    test::TempDir probe_gate;
    Cluster c{probing_through_a_gate(probe_gate.path())};
    std::unique_ptr<Daemon> engine = c.start_engine("engine1", two_slots());
    stdfs::path root = c.dir() / "Library";
    stdfs::path outside = c.dir() / "outside";
    stdfs::path state = c.dir() / "state" / "library.sqlite";

    static EngineOptions two_slots() {
        EngineOptions o;
        o.slots = 2;
        return o;
    }

    std::vector<std::string> cli(std::vector<std::string> args) const {
        std::vector<std::string> argv = {k_cli, "--server", c.url(), "--key", c.user_key()};
        argv.insert(argv.end(), args.begin(), args.end());
        return argv;
    }

    // Runs the CLI to the end; its stdout in *out.
    int run(const std::vector<std::string>& args, std::string* out) const {
        return test::run_command(cli(args), out);
    }
    // The same with stderr too (the per-file lines and the status line go there).
    int run_all_output(const std::vector<std::string>& args, std::string* out) const {
        std::string command;
        for (const auto& a : cli(args)) {
            std::string quoted = "'";
            for (char ch : a) quoted += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
            command += quoted + "' ";
        }
        return test::run_command({"/bin/sh", "-c", command + "2>&1"}, out);
    }

    json run_json(const std::vector<std::string>& args, int* code = nullptr) const {
        std::string out;
        auto argv = args;
        argv.push_back("--json");
        int rc = run(argv, &out);
        if (code) *code = rc;
        auto j = json::parse(out, nullptr, false);
        EXPECT_TRUE(j.is_object()) << out;
        return j;
    }

    // Every job the server holds for the user.
    size_t server_jobs() {
        std::string out;
        EXPECT_EQ(run({"list", "--json"}, &out), 0);
        auto j = json::parse(out, nullptr, false);
        return j.is_object() ? j.value("items", json::array()).size() : 0;
    }

    std::map<std::string, json> by_relative(const json& report) {
        std::map<std::string, json> out;
        for (const auto& f : report.value("files", json::array())) out[f.value("relative", "")] = f;
        return out;
    }

    // `n` H.264 clips root/<prefix>1.mkv .. <prefix>n.mkv, aged past the settle time.
    void aged_clips(const std::string& prefix, int n, double seconds = 1.0) {
        for (int i = 1; i <= n; ++i) {
            auto f = root / (prefix + std::to_string(i) + ".mkv");
            ASSERT_TRUE(clip(f, "libx264", seconds)) << f;
            age(f);
        }
    }

    // `library run` into a mirror, `in_flight` jobs at once.
    std::vector<std::string> mirror_run(const stdfs::path& mirror, int in_flight) const {
        return {"library",
                "run",
                root.string(),
                "--preset",
                "h265-web",
                "--output-dir",
                mirror.string(),
                "--state",
                state.string(),
                "--max-in-flight",
                std::to_string(in_flight)};
    }

    std::optional<media::ProbeInfo> probe(const stdfs::path& p) {
        std::string out;
        if (test::run_command({"ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                               "-show_streams", p.string()},
                              &out) != 0)
            return std::nullopt;
        auto r = media::parse_ffprobe_json(out);
        if (!r) return std::nullopt;
        return *r;
    }
};

TEST_F(LibraryCli, PlanRunIntoAMirrorAndRunAgainDoesNothing) {
    stdfs::create_directories(outside);
    const Tree tree = make_library(root, outside);
    test::write_file(c.dir() / "rules.json", R"({"max_bits_per_pixel": 0})");
    const std::vector<std::string> selection = {
        root.string(), "--preset", "h265-web", "--rules", (c.dir() / "rules.json").string(),
        "--settle",    "60"};

    auto plan_args = selection;
    plan_args.insert(plan_args.begin(), {"library", "plan"});
    auto plan = run_json(plan_args);
    auto files = by_relative(plan);
    EXPECT_EQ(files.size(), tree.transcode.size() + tree.skip.size() + tree.unreadable.size())
        << plan.dump(2);
    for (const auto& f : tree.transcode)
        EXPECT_EQ(files[f].value("verdict", ""), "transcode") << f << plan.dump(2);
    for (const auto& f : tree.skip) EXPECT_EQ(files[f].value("verdict", ""), "skip") << f;
    for (const auto& f : tree.unreadable) {
        EXPECT_EQ(files[f].value("verdict", ""), "unreadable") << f;
        EXPECT_FALSE(files[f].value("reason", "").empty()) << f;
    }
    EXPECT_NE(files["Incoming/copying.mkv"].value("reason", "").find("still being written"),
              std::string::npos);
    EXPECT_EQ(plan["totals"].value("transcode", 0), 10);
    EXPECT_GT(plan["totals"].value("bytes_in", 0), 0);
    // Hidden files, the tool's own temporaries, text files and symlinks are not in the library.
    for (const auto& [rel, _] : files) {
        EXPECT_EQ(rel.find(".hidden"), std::string::npos) << rel;
        EXPECT_EQ(rel.find("link"), std::string::npos) << rel;
        EXPECT_EQ(rel.find(".part"), std::string::npos) << rel;
    }

    const auto mirror = c.dir() / "Mirror";
    auto run_args = selection;
    run_args.insert(run_args.begin(), {"library", "run"});
    run_args.insert(run_args.end(),
                    {"--output-dir", mirror.string(), "--state", state.string(), "--max-in-flight", "3"});
    int code = -1;
    auto report = run_json(run_args, &code);
    EXPECT_EQ(code, 0) << report.dump(2);
    EXPECT_EQ(report["totals"].value("transcoded", 0), 10) << report.dump(2);
    for (const auto& f : tree.transcode) {
        auto out = mirror / f;
        out.replace_extension(".mp4");
        auto p = probe(out);
        ASSERT_TRUE(p) << out;
        ASSERT_NE(p->first_video(), nullptr);
        EXPECT_EQ(p->first_video()->codec_name, "hevc") << out;
        EXPECT_TRUE(stdfs::exists(root / f)) << "the original stays where it was: " << f;
    }
    for (const auto& f : tree.skip) {
        auto out = mirror / f;
        out.replace_extension(".mp4");
        EXPECT_FALSE(stdfs::exists(out)) << f;
    }
    EXPECT_EQ(server_jobs(), 10u);

    // Again: every file is known as done; nothing is submitted.
    std::string out;
    run_args.erase(std::find(run_args.begin(), run_args.end(), "--max-in-flight"), run_args.end());
    EXPECT_EQ(run(run_args, &out), 0) << out;
    EXPECT_NE(out.find("nothing to do: 10 files were transcoded by an earlier run"), std::string::npos)
        << out;
    EXPECT_EQ(server_jobs(), 10u);

    // The state database says so too.
    std::string status;
    EXPECT_EQ(run({"library", "status", root.string(), "--state", state.string()}, &status), 0);
    EXPECT_NE(status.find("done"), std::string::npos) << status;
    EXPECT_NE(status.find("Films/Été à Paris.mp4"), std::string::npos) << status;
}

TEST_F(LibraryCli, ReplaceMovesOriginalsToTheTrashAndNeverPlacesABiggerResult) {
    for (const std::string f : {"Show/E1.mkv", "Show/E2.mkv", "Film.mp4"}) {
        ASSERT_TRUE(clip(root / f, "libx264", 1.0));
        age(root / f);
    }
    const auto trash = c.dir() / "Trash";
    std::string out;
    int code = run_all_output({"library", "run", root.string(), "--preset", "h265-web", "--replace",
                               "--trash", trash.string(), "--state", state.string()},
                              &out);
    EXPECT_EQ(code, 0) << out;
    // The line of a file in flight names the engine it runs on.
    EXPECT_TRUE(std::regex_search(out, std::regex(R"((assigned|running)[^\n]* on engine1\n)"))) << out;
    for (const std::string f : {"Show/E1.mkv", "Show/E2.mkv", "Film.mp4"}) {
        EXPECT_TRUE(stdfs::exists(trash / f)) << "original kept in the trash: " << f;
        auto placed = root / f;
        placed.replace_extension(".mp4");
        auto p = probe(placed);
        ASSERT_TRUE(p) << placed;
        EXPECT_EQ(p->first_video()->codec_name, "hevc");
        EXPECT_NEAR(p->duration_seconds.value_or(0), 1.0, 0.1);
    }
    EXPECT_FALSE(stdfs::exists(root / "Show/E1.mkv"));
    // No temporary file is left behind.
    for (const auto& e : stdfs::recursive_directory_iterator(root))
        EXPECT_EQ(e.path().filename().string().rfind(".distconv-part-", 0), std::string::npos) << e.path();

    // FLAC audio from a 16 kb/s AAC source: the result is bigger, so it is not placed.
    const auto small = c.dir() / "Small";
    ASSERT_TRUE(clip(small / "tiny.mkv", "libx264", 1.0, "16k"));
    age(small / "tiny.mkv");
    const auto before = test::read_file(small / "tiny.mkv");
    auto report = run_json({"library", "run", small.string(), "--preset", "h264-archive", "--replace",
                            "--state", state.string()},
                           &code);
    EXPECT_EQ(code, 1) << report.dump(2);
    auto files = by_relative(report);
    EXPECT_EQ(files["tiny.mkv"].value("state", ""), "bigger") << report.dump(2);
    EXPECT_EQ(test::read_file(small / "tiny.mkv"), before) << "the original is untouched";
    EXPECT_FALSE(stdfs::exists(small / ".distconv-trash"));
}

TEST_F(LibraryCli, AKilledRunResumesWithoutDuplicateJobsOrFilesDoneTwice) {
    aged_clips("Season/E0", 6);
    const auto mirror = c.dir() / "Mirror";
    const auto args = mirror_run(mirror, 1);
    {
        Daemon first(cli(args), c.dir() / "first-run.log");
        // Killed once the second job is on the server: one file done or in flight, the rest not begun.
        ASSERT_TRUE(test::wait_until([&] { return server_jobs() >= 2; }, 60s)) << first.log();
        first.signal(SIGKILL);
        first.wait_exit();
    }
    const size_t after_kill = server_jobs();
    std::string out;
    EXPECT_EQ(run(args, &out), 0) << out;
    EXPECT_EQ(server_jobs(), 6u) << "each file is one job, however often the run was restarted";
    EXPECT_GE(after_kill, 2u);
    for (int i = 1; i <= 6; ++i) {
        auto placed = mirror / ("Season/E0" + std::to_string(i) + ".mp4");
        auto p = probe(placed);
        ASSERT_TRUE(p) << placed;
        EXPECT_EQ(p->first_video()->codec_name, "hevc");
    }
    // And once more: nothing.
    EXPECT_EQ(run(args, &out), 0);
    EXPECT_NE(out.find("nothing to do"), std::string::npos) << out;
    EXPECT_EQ(server_jobs(), 6u);
}

TEST_F(LibraryCli, ARunKilledWhileTheServerChecksItsUploadedFileEndsWithThatUploadOnTheNextRun) {
    // The upload's last byte is on the server, which is still probing it (job: awaiting_upload) when
    // the run is killed; the next run finds every byte held and the job still finishing, and waits
    // for it instead of sending an empty range or starting again.
    aged_clips("Late/E", 1);
    test::write_file(probe_gate / "slow", "");
    const auto mirror = c.dir() / "Mirror";
    const auto args = mirror_run(mirror, 1);
    {
        Daemon first(cli(args), c.dir() / "first-run.log");
        ASSERT_TRUE(test::wait_until([&] { return stdfs::exists(probe_gate / "probing"); }, 60s))
            << first.log();
        first.signal(SIGKILL);
        first.wait_exit();
    }
    stdfs::remove(probe_gate / "slow");
    std::string out;
    EXPECT_EQ(run(args, &out), 0) << out;
    EXPECT_EQ(server_jobs(), 1u) << out;
    EXPECT_TRUE(probe(mirror / "Late/E1.mp4")) << out;
}

TEST_F(LibraryCli, CtrlCStopsARunThatTheNextRunFinishes) {
    for (int i = 1; i <= 4; ++i) {
        auto f = root / ("Films/F" + std::to_string(i) + ".mkv");
        ASSERT_TRUE(clip(f, "libx264", 1.0));
        age(f);
    }
    const auto mirror = c.dir() / "Mirror";
    const std::vector<std::string> args = {
        "library",       "run",     root.string(),  "--preset",        "h265-web", "--output-dir",
        mirror.string(), "--state", state.string(), "--max-in-flight", "1"};
    {
        Daemon first(cli(args), c.dir() / "first-run.log");
        ASSERT_TRUE(test::wait_until([&] { return server_jobs() >= 1; }, 60s)) << first.log();
        EXPECT_EQ(first.signal_and_wait(SIGINT), 130) << first.log();
        EXPECT_NE(first.log().find("again resumes where this one stopped"), std::string::npos) << first.log();
    }
    std::string out;
    EXPECT_EQ(run(args, &out), 0) << out;
    EXPECT_EQ(server_jobs(), 4u) << out;
    for (int i = 1; i <= 4; ++i) EXPECT_TRUE(probe(mirror / ("Films/F" + std::to_string(i) + ".mp4"))) << i;
}

TEST_F(LibraryCli, ARunThroughADispatchRestartEndsWithOneJobPerFile) {
    for (int i = 1; i <= 6; ++i) {
        auto f = root / ("Show/E0" + std::to_string(i) + ".mkv");
        ASSERT_TRUE(clip(f, "libx264", 1.0));
        age(f);
    }
    const auto mirror = c.dir() / "Mirror";
    const std::vector<std::string> args = {
        "library",       "run",     root.string(),  "--preset",        "h265-web", "--output-dir",
        mirror.string(), "--state", state.string(), "--max-in-flight", "2"};
    {
        Daemon first(cli(args), c.dir() / "first-run.log");
        ASSERT_TRUE(test::wait_until([&] { return server_jobs() >= 2; }, 60s)) << first.log();
        c.restart_dispatch(SIGTERM);
        // The run rides it out (it waits for the server, continues uploads from its offset) or stops
        // with "unreachable"; either way nothing it did is lost.
        const int code = first.wait_exit();
        EXPECT_TRUE(code == 0 || code == 3) << code << ": " << first.log();
    }
    std::string out;
    EXPECT_EQ(run(args, &out), 0) << out;
    EXPECT_EQ(server_jobs(), 6u) << out;
    for (int i = 1; i <= 6; ++i) {
        auto p = probe(mirror / ("Show/E0" + std::to_string(i) + ".mp4"));
        ASSERT_TRUE(p) << i;
        EXPECT_EQ(p->first_video()->codec_name, "hevc");
    }
}

TEST_F(LibraryCli, AnUploadCutInTheMiddleContinuesFromTheServersOffset) {
    // A 200 MB MKV (a short clip carrying a 200 MB attachment), uploaded at 100 MB/s and killed once
    // the server holds 40 % of it.
    ASSERT_TRUE(clip(c.dir() / "clip.mkv", "libx264", 1.0));
    {
        std::ofstream blob(c.dir() / "blob.bin", std::ios::binary);
        const std::string mib(1 << 20, 'b');
        for (int i = 0; i < 200; ++i) blob << mib;
    }
    const auto big = root / "Big film.mkv";
    stdfs::create_directories(root);
    ASSERT_EQ(
        test::run_command({"ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i",
                           (c.dir() / "clip.mkv").string(), "-attach", (c.dir() / "blob.bin").string(),
                           "-metadata:s:t", "mimetype=application/octet-stream", "-c", "copy", big.string()}),
        0);
    age(big);
    const auto size = stdfs::file_size(big);
    ASSERT_GT(size, 200u << 20);
    const auto mirror = c.dir() / "Mirror";
    std::vector<std::string> args = {"library",      "run",          root.string(),   "--preset",
                                     "h265-web",     "--output-dir", mirror.string(), "--state",
                                     state.string(), "--json"};

    http::ClientOptions o;
    o.base_url = c.url() + "/api/v1";
    o.api_key = c.user_key();
    http::Client api(o);
    std::uint64_t at_kill = 0;
    {
        auto limited = args;
        limited.insert(limited.end(), {"--limit-upload", "100MB"});
        Daemon first(cli(limited), c.dir() / "first-run.log");
        // Polled every few milliseconds (not test::wait_until's pace): the cut must land mid-upload.
        auto cut = [&] {
            auto list = api.call_json("GET", "/jobs");
            if (!list || (*list)["items"].empty()) return false;
            const std::string id = (*list)["items"][0].value("job_id", "");
            http::Request head;
            head.method = "HEAD";
            head.path_or_url = "/jobs/" + id + "/source";
            auto r = api.request(head);
            auto offset = r ? r->header("Upload-Offset") : std::nullopt;
            at_kill = offset ? std::stoull(*offset) : 0;
            return at_kill >= size * 2 / 5;
        };
        const auto deadline = std::chrono::steady_clock::now() + 60s;
        while (!cut() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
        ASSERT_GE(at_kill, size * 2 / 5) << first.log();
        first.signal(SIGKILL);
        first.wait_exit();
    }
    ASSERT_LT(at_kill, size) << "the upload finished before it could be cut";
    std::string out;
    ASSERT_EQ(run(args, &out), 0) << out;
    auto report = json::parse(out, nullptr, false);
    ASSERT_TRUE(report.is_object()) << out;
    auto files = by_relative(report);
    const auto resumed = files["Big film.mkv"].value("upload_resumed_from", std::uint64_t{0});
    // The second run sent only what the server did not have: from at least where it was cut.
    EXPECT_GE(resumed, at_kill) << out;
    EXPECT_LT(size - resumed, size * 3 / 5 + (1u << 20)) << "bytes sent the second time: " << size - resumed;
    EXPECT_EQ(server_jobs(), 1u);
    auto p = probe(mirror / "Big film.mp4");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->first_video()->codec_name, "hevc");
}

TEST_F(LibraryCli, ARunKilledWhileDownloadingAResultResumesWithoutDuplicateJobs) {
    aged_clips("Docs/D", 3, 4.0);
    const auto mirror = c.dir() / "Mirror";
    const auto args = mirror_run(mirror, 1);
    // A result being written: the download's partial file beside its destination in the mirror.
    auto partial_download = [&] {
        std::error_code ec;
        if (!stdfs::exists(mirror, ec)) return false;
        for (const auto& e : stdfs::recursive_directory_iterator(mirror, ec))
            if (e.is_regular_file() && e.path().extension() == ".part" && e.file_size() > 0) return true;
        return false;
    };
    {
        // Downloads held to 2 KB/s so that the first result (tens of KB) is still coming when killed.
        auto slow = args;
        slow.insert(slow.end(), {"--limit-download", "2KB"});
        Daemon first(cli(slow), c.dir() / "first-run.log");
        ASSERT_TRUE(test::wait_until(partial_download, 120s)) << first.log();
        first.signal(SIGKILL);
        first.wait_exit();
    }
    EXPECT_GE(server_jobs(), 1u);
    std::string out;
    EXPECT_EQ(run(args, &out), 0) << out;
    EXPECT_EQ(server_jobs(), 3u) << "each file is one job, however often the run was restarted";
    for (int i = 1; i <= 3; ++i) {
        auto placed = mirror / ("Docs/D" + std::to_string(i) + ".mp4");
        auto p = probe(placed);
        ASSERT_TRUE(p) << placed;
        EXPECT_EQ(p->first_video()->codec_name, "hevc");
    }
    EXPECT_FALSE(partial_download()) << "no partial download is left in the mirror";
    EXPECT_EQ(run(args, &out), 0);
    EXPECT_NE(out.find("nothing to do"), std::string::npos) << out;
    EXPECT_EQ(server_jobs(), 3u);
}

TEST_F(LibraryCli, WatchTakesAFileCopiedInOnceItHasStoppedGrowing) {
    stdfs::create_directories(root / "Inbox");
    const auto mirror = c.dir() / "Mirror";
    Daemon watch(cli({"library", "watch", root.string(), "--preset", "h265-web", "--output-dir",
                      mirror.string(), "--state", state.string(), "--settle", "2", "--interval", "1"}),
                 c.dir() / "watch.log");
    ASSERT_TRUE(clip(c.dir() / "new.mkv", "libx264", 1.0));
    const std::string bytes = test::read_file(c.dir() / "new.mkv");
    // Copied in slowly: a quarter every 0.7 s, so it never sits still for the 2 s settle time.
    const auto target = root / "Inbox/New film.mkv";
    for (size_t part = 0; part < 4; ++part) {
        std::ofstream out(target, std::ios::binary | std::ios::app);
        out << bytes.substr(part * bytes.size() / 4, (part + 1) * bytes.size() / 4 - part * bytes.size() / 4);
        out.close();
        std::this_thread::sleep_for(700ms);
        EXPECT_EQ(server_jobs(), 0u) << "taken while it was still growing";
    }
    ASSERT_TRUE(test::wait_until([&] { return stdfs::exists(mirror / "Inbox/New film.mp4"); }, 60s))
        << watch.log();
    auto p = probe(mirror / "Inbox/New film.mp4");
    ASSERT_TRUE(p) << watch.log();
    EXPECT_EQ(p->first_video()->codec_name, "hevc");
    EXPECT_EQ(server_jobs(), 1u);
    // It keeps watching and does not take the same file again.
    std::this_thread::sleep_for(2500ms);
    EXPECT_EQ(server_jobs(), 1u);
    EXPECT_EQ(watch.signal_and_wait(SIGINT), 130) << watch.log();
}

}  // namespace
