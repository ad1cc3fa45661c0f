#include "common/media/ffmpeg_args.hpp"
#include "common/media/ffprobe.hpp"
#include "common/media/progress.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <regex>

namespace distconv::media {
namespace {

using nlohmann::json;

JobOptions resolved(const json& j) {
    auto r = parse_and_resolve(j);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().to_string());
    return r.ok() ? *r : JobOptions{};
}

std::vector<std::string> argv_ok(const JobOptions& o, const std::string& in, const std::string& out,
                                 const ArgvSettings& s = {}) {
    auto r = build_ffmpeg_argv(o, in, out, s);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().to_string());
    return r.ok() ? *r : std::vector<std::string>{};
}

// The value after the first occurrence of `flag`, or "" when absent.
std::string value_of(const std::vector<std::string>& argv, const std::string& flag) {
    auto it = std::find(argv.begin(), argv.end(), flag);
    if (it == argv.end() || it + 1 == argv.end()) return {};
    return *(it + 1);
}

size_t count(const std::vector<std::string>& argv, const std::string& arg) {
    return static_cast<size_t>(std::count(argv.begin(), argv.end(), arg));
}

std::string probe_codec_name(const std::string& encoder) {
    static const std::map<std::string, std::string> names = {
        {"libx264", "h264"},   {"libx265", "hevc"},     {"libvpx-vp9", "vp9"},  {"libsvtav1", "av1"},
        {"libaom-av1", "av1"}, {"aac", "aac"},          {"libopus", "opus"},    {"flac", "flac"},
        {"libmp3lame", "mp3"}, {"libvorbis", "vorbis"}, {"copy-video", "h264"}, {"copy-audio", "aac"}};
    return names.at(encoder);
}

TEST(FfmpegArgv, EveryPresetBuildsAWellFormedArgv) {
    const std::string in = "/data/in put's.mkv";
    const std::string out = "/data/work/out file";
    for (const auto& p : builtin_presets()) {
        SCOPED_TRACE(p.name);
        JobOptions o = resolved(json{{"preset", p.name}});
        auto argv = argv_ok(o, in, out);
        ASSERT_GE(argv.size(), 10u);
        EXPECT_EQ(argv[0], "ffmpeg");
        EXPECT_EQ(std::vector<std::string>(argv.begin() + 1, argv.begin() + 4),
                  (std::vector<std::string>{"-hide_banner", "-nostdin", "-y"}));
        EXPECT_EQ(value_of(argv, "-progress"), "pipe:1");
        EXPECT_EQ(count(argv, "-nostats"), 1u);
        // One input, right after the one -i; one output, last, right after -f <muxer>.
        EXPECT_EQ(count(argv, "-i"), 1u);
        EXPECT_EQ(count(argv, in), 1u);
        EXPECT_EQ(value_of(argv, "-i"), in);
        EXPECT_EQ(count(argv, out), 1u);
        EXPECT_EQ(argv.back(), out);
        ASSERT_GE(argv.size(), 3u);
        EXPECT_EQ(argv[argv.size() - 3], "-f");
        EXPECT_EQ(argv[argv.size() - 2], container_muxer(*p.options.container));
        EXPECT_EQ(count(argv, "-f"), 1u);

        const std::string vcodec = *p.options.video.codec;
        if (vcodec == "none") {
            EXPECT_EQ(count(argv, "-vn"), 1u);
            EXPECT_EQ(count(argv, "-c:v"), 0u);
            EXPECT_EQ(count(argv, "0:v:0?"), 0u);
        } else {
            EXPECT_EQ(value_of(argv, "-c:v"), vcodec);
            EXPECT_EQ(value_of(argv, "-map"), "0:v:0?");
        }
        const std::string acodec = *p.options.audio.codec;
        if (acodec == "none") {
            EXPECT_EQ(count(argv, "-an"), 1u);
        } else
            EXPECT_EQ(value_of(argv, "-c:a"), acodec);
        if (p.options.video.crf) {
            EXPECT_EQ(value_of(argv, "-crf"), std::to_string(*p.options.video.crf));
        }
        if (p.options.video.scale) {
            EXPECT_EQ(value_of(argv, "-vf"), "scale=" + *p.options.video.scale);
        }
        if (p.options.audio.bitrate) {
            EXPECT_EQ(value_of(argv, "-b:a"), *p.options.audio.bitrate);
        }
        if (vcodec == "libx264" || vcodec == "libx265") {
            EXPECT_EQ(value_of(argv, "-preset"), *p.options.video.preset);
        }
        if (vcodec == "libvpx-vp9") {
            EXPECT_EQ(value_of(argv, "-cpu-used"), *p.options.video.preset);
            EXPECT_EQ(value_of(argv, "-b:v"), "0");  // constant quality
        }
        if (vcodec == "libsvtav1") {
            EXPECT_EQ(value_of(argv, "-preset"), *p.options.video.preset);
        }
        if (vcodec == "libx265" && *p.options.container == "mp4") {
            EXPECT_EQ(value_of(argv, "-tag:v"), "hvc1");
        }
        // Nothing but the progress sink may look like a protocol.
        static const std::regex k_protocol("^[A-Za-z][A-Za-z0-9+.-]*:");
        for (size_t i = 0; i < argv.size(); ++i)
            if (std::regex_search(argv[i], k_protocol)) {
                EXPECT_TRUE(argv[i] == "pipe:1" && argv[i - 1] == "-progress") << argv[i];
            }
    }
}

TEST(FfmpegArgv, TrimAndExplicitFieldsAppearInOrder) {
    JobOptions o = resolved(
        json{{"trim", {{"start", 1.5}, {"duration", 10}}},
             {"video", {{"fps", "30000/1001"}, {"bitrate", "2M"}, {"maxrate", "3M"}, {"bufsize", "6M"}}},
             {"audio", {{"channels", 1}, {"sample_rate", 44100}}}});
    auto argv = argv_ok(o, "{input}", "{output}");
    auto pos = [&](const std::string& a) { return std::find(argv.begin(), argv.end(), a) - argv.begin(); };
    EXPECT_EQ(value_of(argv, "-ss"), "1.5");
    EXPECT_EQ(value_of(argv, "-t"), "10");
    EXPECT_LT(pos("-ss"), pos("-i"));  // input seek
    EXPECT_GT(pos("-t"), pos("-i"));
    EXPECT_EQ(value_of(argv, "-r"), "30000/1001");
    EXPECT_EQ(value_of(argv, "-b:v"), "2M");
    EXPECT_EQ(value_of(argv, "-maxrate"), "3M");
    EXPECT_EQ(value_of(argv, "-bufsize"), "6M");
    EXPECT_EQ(count(argv, "-crf"), 0u);
    EXPECT_EQ(value_of(argv, "-ac"), "1");
    EXPECT_EQ(value_of(argv, "-ar"), "44100");
    EXPECT_EQ(value_of(argv, "-movflags"), "+faststart");
}

TEST(FfmpegArgv, SettingsStreamableThreadsAndNoProgress) {
    JobOptions o = resolved(json{{"extra_args", {"-movflags", "+faststart", "-threads", "8"}}});
    ArgvSettings s;
    s.ffmpeg = "/opt/ffmpeg/bin/ffmpeg";
    s.progress = false;
    s.streamable = true;
    s.threads = 2;
    auto argv = argv_ok(o, "http://127.0.0.1:8080/api/v1/assignments/a1/source", "-", s);
    EXPECT_EQ(argv[0], "/opt/ffmpeg/bin/ffmpeg");
    EXPECT_EQ(count(argv, "-progress"), 0u);
    EXPECT_EQ(count(argv, "-movflags"), 1u);
    EXPECT_EQ(value_of(argv, "-movflags"), "+frag_keyframe+empty_moov+default_base_moof");
    EXPECT_EQ(count(argv, "-threads"), 1u);
    EXPECT_EQ(value_of(argv, "-threads"), "2");
    EXPECT_EQ(argv.back(), "-");

    // Matroska needs no flags to stream.
    auto mkv = argv_ok(resolved(json{{"container", "mkv"}}), "in", "out", s);
    EXPECT_EQ(count(mkv, "-movflags"), 0u);
    EXPECT_EQ(value_of(mkv, "-f"), "matroska");
}

TEST(FfmpegArgv, RefusesBadInputsAndUncheckedOptions) {
    JobOptions good = resolved(json::object());
    EXPECT_FALSE(build_ffmpeg_argv(good, "", "out").ok());
    EXPECT_FALSE(build_ffmpeg_argv(good, "in", "").ok());
    EXPECT_FALSE(build_ffmpeg_argv(good, "-i", "out").ok());
    EXPECT_FALSE(build_ffmpeg_argv(good, "in", "-f").ok());
    EXPECT_FALSE(build_ffmpeg_argv(good, std::string("in\nx"), "out").ok());
    ArgvSettings bad_level;
    bad_level.loglevel = "trace; rm";
    EXPECT_FALSE(build_ffmpeg_argv(good, "in", "out", bad_level).ok());

    // Options that never went through resolve_options are validated again here.
    JobOptions evil = good;
    evil.extra_args = std::vector<std::string>{"-i", "/etc/passwd"};
    auto r = build_ffmpeg_argv(evil, "in", "out");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().details["field"], "extra_args[0]");
}

TEST(QuoteCommand, QuotesOnlyWhatNeedsIt) {
    EXPECT_EQ(quote_command(
                  {"ffmpeg", "-i", "in.mp4", "-movflags", "+faststart", "-map", "0:v:0?", "out dir/o.mp4"}),
              "ffmpeg -i in.mp4 -movflags +faststart -map '0:v:0?' 'out dir/o.mp4'");
    EXPECT_EQ(quote_command({"echo", "it's", "", "$HOME", "a;b", "scale=-2:480"}),
              "echo 'it'\\''s' '' '$HOME' 'a;b' scale=-2:480");
    EXPECT_EQ(quote_command({}), "");
}

TEST(QuoteCommand, ShellRoundTripsTheArgv) {
    const std::vector<std::string> argv = {"printf", "%s\\n", "it's", "two words", "$HOME",
                                           "`x`",    "a\"b",  "*",    "~"};
    std::string out;
    ASSERT_EQ(test::run_command({"sh", "-c", quote_command(argv)}, &out), 0);
    EXPECT_EQ(out, "it's\ntwo words\n$HOME\n`x`\na\"b\n*\n~\n");
}

// Real ffmpeg on a tiny clip: every preset's argv must run and produce what it promises.
class RealEncode : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        // SVT-AV1 logs its banner to stderr whatever -loglevel says; 1 = errors only.
        setenv("SVT_LOG", "1", 1);
        s_dir = new test::TempDir();
        s_clip = (s_dir->path() / "clip.mp4").string();
        s_ok = test::make_test_clip(s_clip, 1.0, 160, 120);
    }
    static void TearDownTestSuite() {
        delete s_dir;
        s_dir = nullptr;
    }
    void SetUp() override { ASSERT_TRUE(s_ok) << "could not make the test clip with ffmpeg"; }

    static ProbeInfo probe(const std::string& file) {
        std::string out;
        EXPECT_EQ(test::run_command(ffprobe_argv("ffprobe", file), &out), 0);
        auto r = parse_ffprobe_json(out);
        EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().to_string());
        return r.ok() ? *r : ProbeInfo{};
    }

    static test::TempDir* s_dir;
    static std::string s_clip;
    static bool s_ok;
};

test::TempDir* RealEncode::s_dir = nullptr;
std::string RealEncode::s_clip;
bool RealEncode::s_ok = false;

TEST_F(RealEncode, EveryPresetProducesTheRequestedCodecs) {
    test::TempDir dir;
    for (const auto& p : builtin_presets()) {
        SCOPED_TRACE(p.name);
        JobOptions o = resolved(json{{"preset", p.name}});
        std::string out = (dir.path() / default_output_filename(p.name + ".mp4", o)).string();
        auto argv = argv_ok(o, s_clip, out);
        std::string progress;
        ASSERT_EQ(test::run_command(argv, &progress), 0) << quote_command(argv);
        ProbeInfo info = probe(out);

        const std::string vcodec = *o.video.codec;
        if (vcodec == "none") {
            EXPECT_FALSE(info.has_video());
        } else {
            ASSERT_TRUE(info.has_video());
            EXPECT_EQ(info.first_video()->codec_name,
                      probe_codec_name(vcodec == "copy" ? "copy-video" : vcodec));
            EXPECT_EQ(info.first_video()->height, o.video.scale == "-2:480" ? 480 : 120);
        }
        ASSERT_TRUE(info.has_audio());
        const std::string acodec = *o.audio.codec;
        EXPECT_EQ(info.first_audio()->codec_name, probe_codec_name(acodec == "copy" ? "copy-audio" : acodec));
        ASSERT_TRUE(info.duration_seconds.has_value());
        EXPECT_NEAR(*info.duration_seconds, 1.0, 0.15);

        // The run's own -progress output parses to a finished 100% update.
        ProgressParser parser(1.0);
        auto updates = parser.feed(progress);
        ASSERT_FALSE(updates.empty());
        EXPECT_TRUE(updates.back().done);
        EXPECT_EQ(updates.back().percent, 100.0);
    }
}

TEST_F(RealEncode, TrimCutsTheOutput) {
    test::TempDir dir;
    JobOptions o = resolved(json{{"preset", "h264-small"}, {"trim", {{"start", 0.4}, {"duration", 0.4}}}});
    std::string out = (dir / "trim.mp4").string();
    auto argv = argv_ok(o, s_clip, out);
    std::string progress;
    ASSERT_EQ(test::run_command(argv, &progress), 0) << quote_command(argv);
    ProbeInfo info = probe(out);
    ASSERT_TRUE(info.duration_seconds.has_value());
    EXPECT_NEAR(*info.duration_seconds, 0.4, 0.1);
}

TEST_F(RealEncode, StreamableMp4WrittenToAPipeIsPlayable) {
    test::TempDir dir;
    ArgvSettings s;
    s.progress = false;
    s.streamable = true;
    auto argv = argv_ok(resolved(json{{"preset", "h264-web"}}), s_clip, "-", s);
    std::string bytes;
    ASSERT_EQ(test::run_command(argv, &bytes), 0) << quote_command(argv);
    ASSERT_GT(bytes.size(), 1000u);
    test::write_file(dir / "piped.mp4", bytes);
    ProbeInfo info = probe((dir / "piped.mp4").string());
    ASSERT_TRUE(info.has_video());
    EXPECT_EQ(info.first_video()->codec_name, "h264");
    EXPECT_NE(info.format_name.find("mp4"), std::string::npos);
}

TEST_F(RealEncode, AomAv1WithTheFastestSpeedRuns) {
    // libaom is the slowest encoder here: check it really runs with the fastest speed allowed.
    test::TempDir dir;
    JobOptions o = resolved(json{{"preset", "av1-aom-web"}, {"video", {{"preset", "8"}, {"crf", 50}}}});
    std::string out = (dir / "aom.webm").string();
    auto argv = argv_ok(o, s_clip, out);
    EXPECT_EQ(value_of(argv, "-cpu-used"), "8");
    std::string progress;
    ASSERT_EQ(test::run_command(argv, &progress), 0) << quote_command(argv);
    ProbeInfo info = probe(out);
    ASSERT_TRUE(info.has_video());
    EXPECT_EQ(info.first_video()->codec_name, "av1");
}

}  // namespace
}  // namespace distconv::media
