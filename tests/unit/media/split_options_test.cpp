// Split mode's option (split.mode, split.segment_seconds) and the argv of a video segment: one
// video stream, closed GOPs, every frame passed through with its timestamp, NUT whatever the job's
// container.

#include "common/media/ffmpeg_args.hpp"
#include "common/media/options.hpp"
#include "common/media/stream_plan.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace distconv::media {
namespace {

using nlohmann::json;

bool has_pair(const std::vector<std::string>& argv, const std::string& flag, const std::string& value) {
    for (size_t i = 0; i + 1 < argv.size(); ++i)
        if (argv[i] == flag && argv[i + 1] == value) return true;
    return false;
}

ProbeInfo video_probe(const std::string& codec = "h264") {
    ProbeInfo p;
    p.format_name = "nut";
    p.demuxer = "nut";
    p.duration_seconds = 10;
    StreamInfo v;
    v.index = 0;
    v.codec_type = "video";
    v.codec_name = codec;
    v.width = 320;
    v.height = 240;
    v.fps = 25;
    p.streams = {v};
    return p;
}

TEST(SplitOptions, ParsesValidatesAndRoundTrips) {
    auto o =
        parse_and_resolve(json{{"preset", "h264-web"}, {"split", {{"mode", "on"}, {"segment_seconds", 15}}}});
    ASSERT_TRUE(o.ok()) << o.error().to_string();
    EXPECT_EQ(o->split.mode, "on");
    EXPECT_EQ(o->split.segment_seconds, 15.0);
    auto back = parse_job_options(to_json(*o));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->split, o->split);
    EXPECT_FALSE(to_json(*parse_and_resolve(json{{"preset", "h264-web"}})).contains("split"));
}

TEST(SplitOptions, BadValuesNameTheirField) {
    struct Case {
        json split;
        std::string field;
    };
    for (const auto& c :
         {Case{{{"mode", "always"}}, "split.mode"}, Case{{{"segment_seconds", 1}}, "split.segment_seconds"},
          Case{{{"segment_seconds", 4000}}, "split.segment_seconds"},
          Case{{{"segment_seconds", "ten"}}, "split.segment_seconds"},
          Case{{{"segments", 4}}, "split.segments"}, Case{json("on"), "split"}}) {
        auto o = parse_and_resolve(json{{"split", c.split}});
        ASSERT_FALSE(o.ok()) << c.split.dump();
        EXPECT_EQ(o.error().code, ErrorCode::InvalidArgument);
        EXPECT_EQ(o.error().details.value("field", ""), c.field) << o.error().to_string();
    }
}

TEST(SplitArgs, AVideoSegmentEncodesItsOneStreamToNutWithClosedGops) {
    auto o = parse_and_resolve(json{{"preset", "h265-archive"},
                                    {"container", "mp4"},
                                    {"audio", {{"codec", "none"}}},
                                    {"subtitles", {{"mode", "drop"}}}});
    ASSERT_TRUE(o.ok()) << o.error().to_string();
    auto plan = plan_streams(*o, video_probe());
    ASSERT_TRUE(plan.ok()) << plan.error().to_string();
    ArgvSettings s;
    s.plan = &*plan;
    s.input_format = "nut";
    s.video_segment = true;
    auto argv = build_ffmpeg_argv(*o, "{input}", "{output}", s);
    ASSERT_TRUE(argv.ok()) << argv.error().to_string();
    EXPECT_TRUE(has_pair(*argv, "-f", "nut"));
    EXPECT_FALSE(has_pair(*argv, "-f", "mp4"));
    EXPECT_TRUE(has_pair(*argv, "-fps_mode", "passthrough"));
    EXPECT_TRUE(has_pair(*argv, "-x265-params:v:0", "log-level=error:open-gop=0"));
    EXPECT_EQ(std::count(argv->begin(), argv->end(), "-map"), 1);
    EXPECT_FALSE(has_pair(*argv, "-tag:v:0", "hvc1"));  // the join tags the MP4
    EXPECT_EQ(std::find(argv->begin(), argv->end(), "+faststart"), argv->end());

    // The same job unsplit keeps its container and tags.
    s.video_segment = false;
    auto whole = build_ffmpeg_argv(*o, "{input}", "{output}", s);
    ASSERT_TRUE(whole.ok());
    EXPECT_TRUE(has_pair(*whole, "-f", "mp4"));
    EXPECT_FALSE(has_pair(*whole, "-fps_mode", "passthrough"));
}

TEST(SplitArgs, ASegmentWithoutItsOneVideoStreamIsRefused) {
    auto o = parse_and_resolve(json{{"preset", "h264-web"}});
    ASSERT_TRUE(o.ok());
    ProbeInfo p = video_probe();
    StreamInfo a;
    a.index = 1;
    a.codec_type = "audio";
    a.codec_name = "aac";
    a.channels = 2;
    a.sample_rate = 48000;
    p.streams.push_back(a);
    auto plan = plan_streams(*o, p);
    ASSERT_TRUE(plan.ok());
    ArgvSettings s;
    s.plan = &*plan;
    s.input_format = "nut";
    s.video_segment = true;
    auto argv = build_ffmpeg_argv(*o, "{input}", "{output}", s);
    ASSERT_FALSE(argv.ok());
    EXPECT_EQ(argv.error().details.value("field", ""), "plan");
    s.plan = nullptr;
    EXPECT_FALSE(build_ffmpeg_argv(*o, "{input}", "{output}", s).ok());
}

}  // namespace
}  // namespace distconv::media
