#include "common/media/options.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>

namespace distconv::media {
namespace {

using nlohmann::json;

JobOptions parse_ok(const json& j) {
    auto r = parse_job_options(j);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().to_string());
    return r.ok() ? *r : JobOptions{};
}

JobOptions resolve_ok(const json& j) {
    auto r = parse_and_resolve(j);
    EXPECT_TRUE(r.ok()) << j.dump() << " -> " << (r.ok() ? "" : r.error().to_string());
    return r.ok() ? *r : JobOptions{};
}

TEST(OptionsParse, FullContractExampleParsesAndRoundTrips) {
    json in = json::parse(R"({
      "output_filename": "out.mp4", "preset": "h264-web", "container": "mp4",
      "video": {"codec": "libx264", "crf": 23, "bitrate": "3M", "maxrate": "4M", "bufsize": "8M",
                "preset": "veryfast", "fps": 30, "scale": "1280:720", "pix_fmt": "yuv420p", "profile": "high"},
      "audio": {"codec": "aac", "bitrate": "128k", "channels": 2, "sample_rate": 48000},
      "trim": {"start": 1.5, "duration": 10.0},
      "extra_args": ["-movflags", "+faststart"]
    })");
    JobOptions o = parse_ok(in);
    EXPECT_EQ(o.output_filename, "out.mp4");
    EXPECT_EQ(o.video.codec, "libx264");
    EXPECT_EQ(o.video.crf, 23);
    EXPECT_EQ(o.video.fps, "30");
    EXPECT_EQ(o.audio.sample_rate, 48000);
    EXPECT_EQ(o.trim.start, 1.5);
    ASSERT_TRUE(o.extra_args.has_value());
    EXPECT_EQ(o.extra_args->size(), 2u);
    EXPECT_TRUE(validate(o).ok()) << validate(o).error().to_string();

    json out = to_json(o);
    EXPECT_EQ(out, in);
    EXPECT_EQ(parse_ok(out), o);
}

TEST(OptionsParse, FpsKeepsRatiosAndDecimalsThroughRoundTrip) {
    JobOptions a = parse_ok(json{{"video", {{"fps", "30000/1001"}}}});
    EXPECT_EQ(a.video.fps, "30000/1001");
    EXPECT_EQ(to_json(a)["video"]["fps"], "30000/1001");
    JobOptions b = parse_ok(json{{"video", {{"fps", 29.97}}}});
    EXPECT_EQ(b.video.fps, "29.97");
    EXPECT_DOUBLE_EQ(to_json(b)["video"]["fps"].get<double>(), 29.97);
    EXPECT_EQ(parse_ok(to_json(b)), b);
}

TEST(OptionsParse, EmptyObjectAndNullsMeanNothingSet) {
    EXPECT_EQ(parse_ok(json::object()), JobOptions{});
    EXPECT_EQ(parse_ok(json{{"video", nullptr}, {"preset", nullptr}}), JobOptions{});
    EXPECT_EQ(to_json(JobOptions{}), json::object());
}

TEST(OptionsParse, IntegralFloatIsAcceptedForIntegerFields) {
    EXPECT_EQ(parse_ok(json{{"video", {{"crf", 23.0}}}}).video.crf, 23);
}

TEST(OptionsParse, NonObjectIsRejected) {
    auto r = parse_job_options(json::array());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::InvalidArgument);
}

TEST(OptionsResolve, NothingGivenIsH264Web) {
    JobOptions o = resolve_ok(json::object());
    EXPECT_EQ(o.preset, "h264-web");
    EXPECT_EQ(o.container, "mp4");
    EXPECT_EQ(o.video.codec, "libx264");
    EXPECT_EQ(o.video.crf, 23);
    EXPECT_EQ(o.video.preset, "veryfast");
    EXPECT_EQ(o.audio.codec, "aac");
    EXPECT_EQ(o.audio.bitrate, "128k");
}

TEST(OptionsResolve, ExplicitFieldsOverrideThePreset) {
    JobOptions o = resolve_ok(json{{"preset", "h264-web"},
                                   {"video", {{"crf", 30}, {"scale", "-2:360"}}},
                                   {"audio", {{"bitrate", "96k"}}}});
    EXPECT_EQ(o.video.codec, "libx264");
    EXPECT_EQ(o.video.crf, 30);
    EXPECT_EQ(o.video.preset, "veryfast");  // from the preset
    EXPECT_EQ(o.video.scale, "-2:360");
    EXPECT_EQ(o.audio.bitrate, "96k");
}

TEST(OptionsResolve, ExplicitBitrateReplacesThePresetCrf) {
    JobOptions o = resolve_ok(json{{"video", {{"bitrate", "2M"}}}});
    EXPECT_FALSE(o.video.crf.has_value());
    EXPECT_EQ(o.video.bitrate, "2M");
}

TEST(OptionsResolve, ChangingCodecDropsThePresetsEncoderSettings) {
    JobOptions o = resolve_ok(json{{"preset", "h264-small"}, {"video", {{"codec", "libx265"}}}});
    EXPECT_EQ(o.video.codec, "libx265");
    EXPECT_FALSE(o.video.profile.has_value());  // "main" was an x264 profile choice
    EXPECT_EQ(o.video.scale, "-2:480");         // size is kept
    EXPECT_EQ(o.container, "mp4");
}

TEST(OptionsResolve, ContainerPicksAFittingDefault) {
    EXPECT_EQ(resolve_ok(json{{"container", "webm"}}).video.codec, "libvpx-vp9");
    JobOptions m4a = resolve_ok(json{{"container", "m4a"}});
    EXPECT_EQ(m4a.video.codec, "none");
    EXPECT_EQ(m4a.audio.codec, "aac");
    JobOptions mkv = resolve_ok(json{{"container", "mkv"}});
    EXPECT_EQ(mkv.video.codec, "libx264");
    EXPECT_FALSE(mkv.extra_args.has_value());  // -movflags does not apply to mkv
}

TEST(OptionsResolve, OutputFilenameExtensionChoosesTheContainer) {
    JobOptions o = resolve_ok(json{{"output_filename", "clip.webm"}});
    EXPECT_EQ(o.container, "webm");
    EXPECT_EQ(o.output_filename, "clip.webm");
    JobOptions p = resolve_ok(json{{"preset", "h264-web"}, {"output_filename", "clip.mkv"}});
    EXPECT_EQ(p.container, "mkv");
}

TEST(OptionsResolve, EveryBuiltinPresetResolvesAndValidates) {
    std::set<std::string> names;
    for (const auto& p : builtin_presets()) {
        SCOPED_TRACE(p.name);
        EXPECT_TRUE(names.insert(p.name).second) << "duplicate preset name";
        EXPECT_FALSE(p.description.empty());
        EXPECT_TRUE(validate(p.options).ok()) << validate(p.options).error().to_string();
        JobOptions o = resolve_ok(json{{"preset", p.name}});
        EXPECT_EQ(o.preset, p.name);
        EXPECT_EQ(o.container, p.options.container);
        EXPECT_EQ(find_preset(p.name), &p);
        EXPECT_EQ(to_json(p)["name"], p.name);
    }
    for (const char* required : {"h264-web", "h264-archive", "h264-small", "h265-web", "h265-archive",
                                 "h265-small", "vp9-web", "vp9-small", "av1-web", "av1-small"})
        EXPECT_TRUE(names.count(required)) << required;
    EXPECT_EQ(find_preset("nope"), nullptr);
}

TEST(OptionsValidate, GoodExtraArgsPass) {
    JobOptions o = resolve_ok(json{{"extra_args",
                                    {"-movflags", "+faststart+frag_keyframe", "-tune", "film", "-g", "50",
                                     "-bf", "2", "-threads", "2", "-level", "4.1"}}});
    ASSERT_TRUE(o.extra_args.has_value());
    EXPECT_EQ(o.extra_args->size(), 12u);
}

TEST(OptionsValidate, ContainersAndExtensions) {
    EXPECT_EQ(container_extension("mkv"), "mkv");
    EXPECT_EQ(container_extension("ogg"), "ogg");
    EXPECT_EQ(container_extension("avi"), "");
    EXPECT_EQ(container_muxer("mkv"), "matroska");
    EXPECT_EQ(container_muxer("ts"), "mpegts");
    EXPECT_EQ(container_muxer("m4a"), "ipod");
    EXPECT_TRUE(is_audio_only_container("mp3"));
    EXPECT_FALSE(is_audio_only_container("mp4"));
    EXPECT_EQ(supported_containers().size(), 9u);
}

TEST(OptionsValidate, BitrateParsing) {
    EXPECT_EQ(parse_bitrate("128k"), 128000.0);
    EXPECT_EQ(parse_bitrate("2.5M"), 2500000.0);
    EXPECT_EQ(parse_bitrate("800000"), 800000.0);
    EXPECT_FALSE(parse_bitrate("1e9").has_value());
    EXPECT_FALSE(parse_bitrate("-1k").has_value());
    EXPECT_FALSE(parse_bitrate("12kb").has_value());
    EXPECT_FALSE(parse_bitrate("").has_value());
    EXPECT_FALSE(parse_bitrate("1.k").has_value());
}

TEST(OptionsDefaultName, UsesInputStemAndContainerExtension) {
    JobOptions mp4 = resolve_ok(json::object());
    JobOptions webm = resolve_ok(json{{"preset", "vp9-web"}});
    EXPECT_EQ(default_output_filename("My Movie.final.MOV", mp4), "My Movie.final.mp4");
    EXPECT_EQ(default_output_filename("/srv/in/clip.mkv", webm), "clip.webm");
    EXPECT_EQ(default_output_filename("../../etc/passwd", mp4), "passwd.mp4");
    EXPECT_EQ(default_output_filename("", mp4), "output.mp4");
    EXPECT_EQ(default_output_filename("-rf.avi", mp4), "rf.mp4");
    EXPECT_EQ(default_output_filename(".hidden", mp4), "hidden.mp4");
    EXPECT_EQ(default_output_filename("a:b|c\n.avi", mp4), "a_b_c_.mp4");
    std::string long_name(400, 'x');
    std::string out = default_output_filename(long_name + ".avi", mp4);
    EXPECT_LE(out.size(), 255u);
    EXPECT_EQ(out.substr(out.size() - 4), ".mp4");
    // Whatever comes in, the result is a valid output_filename for the container.
    for (const std::string& in :
         std::vector<std::string>{"x", "..", "a/b/..", "\xc3\xa9t\xc3\xa9.mov", std::string(300, '\xc3')}) {
        JobOptions o = mp4;
        o.output_filename = default_output_filename(in, mp4);
        EXPECT_TRUE(validate(o).ok()) << in << " -> " << *o.output_filename;
    }
}

TEST(OptionsValidate, NanAndInfinityAreRejected) {
    JobOptions o;
    o.trim.start = std::numeric_limits<double>::quiet_NaN();
    auto s = validate(o);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().details["field"], "trim.start");
    o.trim.start.reset();
    o.trim.duration = std::numeric_limits<double>::infinity();
    s = validate(o);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().details["field"], "trim.duration");
    // A NaN that reaches parse (a json built in code, not text) is refused at parse time.
    auto r = parse_job_options(json{{"trim", {{"start", std::nan("")}}}});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().details["field"], "trim.start");
}

}  // namespace
}  // namespace distconv::media

namespace distconv::media {
namespace {

TEST(OptionsResolve, ResolvingAgainChangesNothing) {
    // Resolved options are stored and may be resolved again by another component.
    std::vector<nlohmann::json> inputs = {
        nlohmann::json::object(),
        {{"container", "webm"}},
        {{"preset", "h264-small"}, {"video", {{"codec", "libx265"}, {"bitrate", "1M"}}}},
        {{"preset", "vp9-web"},
         {"audio", {{"codec", "libvorbis"}, {"bitrate", "96k"}}},
         {"trim", {{"start", 2}}}},
        {{"output_filename", "x.mkv"}, {"extra_args", {"-g", "48", "-bf", "0"}}},
    };
    for (const auto& p : builtin_presets()) inputs.push_back({{"preset", p.name}});
    for (const auto& in : inputs) {
        SCOPED_TRACE(in.dump());
        auto once = parse_and_resolve(in);
        ASSERT_TRUE(once.ok()) << once.error().to_string();
        auto twice = resolve_options(*once);
        ASSERT_TRUE(twice.ok()) << twice.error().to_string();
        EXPECT_EQ(*twice, *once);
        auto via_json = parse_and_resolve(to_json(*once));
        ASSERT_TRUE(via_json.ok()) << via_json.error().to_string();
        EXPECT_EQ(*via_json, *once);
    }
}

}  // namespace
}  // namespace distconv::media
