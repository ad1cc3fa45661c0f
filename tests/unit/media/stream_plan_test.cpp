#include "common/media/stream_plan.hpp"

#include "common/media/ffmpeg_args.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace distconv::media {
namespace {

using nlohmann::json;

JobOptions resolved(const json& j) {
    auto r = parse_and_resolve(j);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().to_string());
    return r.ok() ? *r : JobOptions{};
}

StreamInfo stream(int index, std::string type, std::string codec, std::string language = "",
                  std::vector<std::string> disposition = {}) {
    StreamInfo s;
    s.index = index;
    s.codec_type = std::move(type);
    s.codec_name = std::move(codec);
    s.language = std::move(language);
    s.disposition = std::move(disposition);
    return s;
}

// A film as a library holds it: H.264 video, English 5.1 and French stereo audio, English SubRip,
// French ASS, an English PGS track, a font attachment, a data stream, chapters.
ProbeInfo film() {
    ProbeInfo p;
    p.format_name = "matroska,webm";
    p.demuxer = "matroska";
    p.duration_seconds = 10.0;
    p.title = "A Film";
    p.chapters = 3;
    auto v = stream(0, "video", "h264");
    v.pix_fmt = "yuv420p";
    v.field_order = "progressive";
    p.streams.push_back(v);
    auto en = stream(1, "audio", "ac3", "eng", {"default"});
    en.channels = 6;
    en.channel_layout = "5.1(side)";
    en.title = "English 5.1";
    p.streams.push_back(en);
    auto fr = stream(2, "audio", "aac", "fre");
    fr.channels = 2;
    fr.channel_layout = "stereo";
    p.streams.push_back(fr);
    p.streams.push_back(stream(3, "subtitle", "subrip", "eng", {"default"}));
    p.streams.push_back(stream(4, "subtitle", "ass", "fre", {"forced"}));
    p.streams.push_back(stream(5, "subtitle", "hdmv_pgs_subtitle", "eng"));
    auto font = stream(6, "attachment", "ttf");
    font.mimetype = "font/ttf";
    p.streams.push_back(font);
    p.streams.push_back(stream(7, "data", "bin_data"));
    return p;
}

StreamPlan plan_ok(const json& options, const ProbeInfo& probe) {
    auto plan = plan_streams(resolved(options), probe);
    EXPECT_TRUE(plan.ok()) << (plan.ok() ? "" : plan.error().to_string());
    return plan.ok() ? *plan : StreamPlan{};
}

const PlannedStream& at(const StreamPlan& plan, int index) {
    auto it = std::find_if(plan.streams.begin(), plan.streams.end(),
                           [&](const PlannedStream& p) { return p.index == index; });
    EXPECT_NE(it, plan.streams.end());
    return *it;
}

std::vector<int> kept(const StreamPlan& plan) {
    std::vector<int> out;
    for (int i : plan.output_order) out.push_back(plan.streams[static_cast<size_t>(i)].index);
    return out;
}

std::vector<std::string> argv_for(const json& options, const StreamPlan& plan) {
    ArgvSettings s;
    s.plan = &plan;
    s.progress = false;
    auto argv = build_ffmpeg_argv(resolved(options), "in.mkv", "out", s);
    EXPECT_TRUE(argv.ok()) << (argv.ok() ? "" : argv.error().to_string());
    return argv.ok() ? *argv : std::vector<std::string>{};
}

std::vector<std::string> maps(const std::vector<std::string>& argv) {
    std::vector<std::string> out;
    for (size_t i = 0; i + 1 < argv.size(); ++i)
        if (argv[i] == "-map") out.push_back(argv[i + 1]);
    return out;
}

std::string value_of(const std::vector<std::string>& argv, const std::string& flag) {
    auto it = std::find(argv.begin(), argv.end(), flag);
    return it == argv.end() || it + 1 == argv.end() ? "" : *(it + 1);
}

TEST(StreamPlan, MkvArchiveKeepsEveryTrackSubtitleAndAttachment) {
    auto plan = plan_ok(json{{"preset", "h265-archive"}}, film());
    EXPECT_EQ(at(plan, 0).action, StreamAction::Encode);
    EXPECT_EQ(at(plan, 0).encoder, "libx265");
    EXPECT_EQ(at(plan, 1).action, StreamAction::Encode);
    EXPECT_EQ(at(plan, 2).action, StreamAction::Encode);
    EXPECT_EQ(at(plan, 3).action, StreamAction::Copy);
    EXPECT_EQ(at(plan, 4).action, StreamAction::Copy);
    EXPECT_EQ(at(plan, 5).action, StreamAction::Copy);  // PGS fits in MKV
    EXPECT_EQ(at(plan, 6).action, StreamAction::Copy);
    EXPECT_EQ(at(plan, 7).action, StreamAction::Drop);
    EXPECT_NE(at(plan, 7).reason.find("data"), std::string::npos);
    EXPECT_EQ(kept(plan), (std::vector<int>{0, 1, 2, 3, 4, 5, 6}));
    EXPECT_TRUE(plan.chapters);
    // 5.1 stays 5.1: nothing asked for a downmix.
    EXPECT_FALSE(at(plan, 1).channels);

    auto argv = argv_for(json{{"preset", "h265-archive"}}, plan);
    EXPECT_EQ(maps(argv), (std::vector<std::string>{"0:0", "0:1", "0:2", "0:3", "0:4", "0:5", "0:6"}));
    EXPECT_EQ(value_of(argv, "-c:v:0"), "libx265") << quote_command(argv);
    EXPECT_EQ(value_of(argv, "-c:s:0"), "copy");
    EXPECT_EQ(value_of(argv, "-c:s:2"), "copy");
    EXPECT_EQ(value_of(argv, "-c:t"), "copy");
    EXPECT_EQ(value_of(argv, "-map_chapters"), "0");
    EXPECT_EQ(value_of(argv, "-map_metadata"), "0");
    EXPECT_EQ(std::count(argv.begin(), argv.end(), "0:v:0?"), 0);
}

TEST(StreamPlan, Mp4ConvertsTextSubtitlesAndDropsWhatItCannotHoldWithAReason) {
    auto plan = plan_ok(json{{"preset", "h265-web"}}, film());
    EXPECT_EQ(at(plan, 1).action, StreamAction::Encode);
    EXPECT_EQ(at(plan, 2).action, StreamAction::Encode);
    EXPECT_EQ(at(plan, 3).action, StreamAction::Convert);
    EXPECT_EQ(at(plan, 3).encoder, "mov_text");
    EXPECT_EQ(at(plan, 4).action, StreamAction::Convert);
    EXPECT_NE(at(plan, 4).reason.find("ASS styling"), std::string::npos);
    EXPECT_EQ(at(plan, 5).action, StreamAction::Drop);
    EXPECT_NE(at(plan, 5).reason.find("bitmap subtitles"), std::string::npos);
    EXPECT_EQ(at(plan, 6).action, StreamAction::Drop);
    EXPECT_NE(at(plan, 6).reason.find("attachments"), std::string::npos);
    EXPECT_EQ(kept(plan), (std::vector<int>{0, 1, 2, 3, 4}));

    auto argv = argv_for(json{{"preset", "h265-web"}}, plan);
    EXPECT_EQ(maps(argv), (std::vector<std::string>{"0:0", "0:1", "0:2", "0:3", "0:4"}));
    EXPECT_EQ(value_of(argv, "-c:s:0"), "mov_text");
    EXPECT_EQ(value_of(argv, "-c:s:1"), "mov_text");
    EXPECT_EQ(value_of(argv, "-c:t"), "");
    EXPECT_EQ(value_of(argv, "-tag:v:0"), "hvc1");

    auto j = to_json(plan);
    ASSERT_EQ(j["streams"].size(), 8u);
    EXPECT_EQ(j["streams"][5]["action"], "drop");
    EXPECT_EQ(j["streams"][1]["language"], "eng");
    EXPECT_EQ(j["streams"][1]["title"], "English 5.1");
    EXPECT_EQ(j["streams"][1]["disposition"], json::array({"default"}));
    EXPECT_EQ(j["chapters"], true);
}

TEST(StreamPlan, WebmConvertsTextSubtitlesToWebVtt) {
    auto plan = plan_ok(json{{"preset", "vp9-web"}}, film());
    EXPECT_EQ(at(plan, 3).action, StreamAction::Convert);
    EXPECT_EQ(at(plan, 3).encoder, "webvtt");
    EXPECT_EQ(at(plan, 5).action, StreamAction::Drop);
    EXPECT_EQ(at(plan, 6).action, StreamAction::Drop);
}

TEST(StreamPlan, SelectionKeepsTheAskedLanguagesInTheAskedOrder) {
    json o{{"preset", "h265-archive"},
           {"audio", {{"languages", {"fr", "en"}}}},
           {"subtitles", {{"languages", {"eng"}}}}};
    auto plan = plan_ok(o, film());
    // French (fre) matches "fr", English (eng) matches "en": French first.
    EXPECT_EQ(kept(plan), (std::vector<int>{0, 2, 1, 3, 5, 6}));
    EXPECT_EQ(at(plan, 4).action, StreamAction::Drop);
    EXPECT_NE(at(plan, 4).reason.find("subtitles.languages"), std::string::npos);
}

TEST(StreamPlan, FirstTrackOnlyAndSubtitlesDropped) {
    auto plan = plan_ok(
        json{{"preset", "h264-web"}, {"audio", {{"tracks", "first"}}}, {"subtitles", {{"mode", "drop"}}}},
        film());
    EXPECT_EQ(kept(plan), (std::vector<int>{0, 1}));
    EXPECT_NE(at(plan, 2).reason.find("audio.tracks"), std::string::npos);
    EXPECT_NE(at(plan, 3).reason.find("subtitles.mode"), std::string::npos);
}

TEST(StreamPlan, ASelectionThatMatchesNothingIsUnprocessableAndSaysWhatTheSourceHas) {
    auto plan =
        plan_streams(resolved(json{{"preset", "h264-web"}, {"audio", {{"languages", {"de"}}}}}), film());
    ASSERT_FALSE(plan.ok());
    EXPECT_EQ(plan.error().code, ErrorCode::Unprocessable);
    EXPECT_EQ(http_status(plan.error().code), 422);
    EXPECT_EQ(plan.error().details["field"], "audio.languages");
    EXPECT_EQ(plan.error().details["source_languages"], json::array({"eng", "fre"}));

    auto subs =
        plan_streams(resolved(json{{"preset", "h264-web"}, {"subtitles", {{"languages", {"ja"}}}}}), film());
    ASSERT_FALSE(subs.ok());
    EXPECT_EQ(subs.error().details["field"], "subtitles.languages");
}

TEST(StreamPlan, UnsupportedSubtitleFailsWhenAskedTo) {
    auto plan = plan_streams(
        resolved(json{{"preset", "h264-web"}, {"subtitles", {{"on_unsupported", "fail"}}}}), film());
    ASSERT_FALSE(plan.ok());
    EXPECT_EQ(plan.error().code, ErrorCode::Unprocessable);
    EXPECT_EQ(plan.error().details["field"], "subtitles.on_unsupported");
    EXPECT_EQ(plan.error().details["stream"], 5);
}

TEST(StreamPlan, AnOutputThatWouldHoldNothingIsRefused) {
    ProbeInfo p;
    p.format_name = "mov,mp4,m4a,3gp,3g2,mj2";
    p.streams.push_back(stream(0, "video", "h264"));
    auto plan = plan_streams(resolved(json{{"preset", "audio-aac"}}), p);
    ASSERT_FALSE(plan.ok());
    EXPECT_EQ(plan.error().code, ErrorCode::Unprocessable);
    EXPECT_NE(plan.error().message.find("M4A holds audio only"), std::string::npos) << plan.error().message;
}

TEST(StreamPlan, Mp3DownmixesAndHoldsOneTrack) {
    auto plan = plan_ok(json{{"preset", "audio-mp3"}}, film());
    EXPECT_EQ(at(plan, 0).action, StreamAction::Drop);
    EXPECT_EQ(at(plan, 1).action, StreamAction::Encode);
    ASSERT_TRUE(at(plan, 1).channels);
    EXPECT_EQ(*at(plan, 1).channels, 2);
    EXPECT_EQ(at(plan, 2).action, StreamAction::Drop);
    auto argv = argv_for(json{{"preset", "audio-mp3"}}, plan);
    EXPECT_EQ(value_of(argv, "-ac:a:0"), "2");
    EXPECT_EQ(maps(argv), (std::vector<std::string>{"0:1"}));
}

TEST(StreamPlan, CoverArtIsCopiedInM4aAndDroppedInWebm) {
    ProbeInfo p;
    p.format_name = "mov,mp4,m4a,3gp,3g2,mj2";
    p.duration_seconds = 5;
    p.streams.push_back(stream(0, "audio", "aac", "eng"));
    p.streams.push_back(stream(1, "video", "mjpeg", "", {"attached_pic"}));
    auto m4a = plan_ok(json{{"preset", "audio-aac"}}, p);
    EXPECT_EQ(at(m4a, 1).action, StreamAction::Copy);
    EXPECT_EQ(kept(m4a), (std::vector<int>{0, 1}));  // cover art last, as muxers write it
    auto argv = argv_for(json{{"preset", "audio-aac"}}, m4a);
    EXPECT_EQ(value_of(argv, "-c:v:0"), "copy");
    EXPECT_EQ(std::count(argv.begin(), argv.end(), "-vn"), 0);

    auto webm = plan_ok(json{{"preset", "vp9-web"}}, p);
    EXPECT_EQ(at(webm, 1).action, StreamAction::Drop);
    EXPECT_NE(at(webm, 1).reason.find("cover art"), std::string::npos);
}

ProbeInfo hdr10() {
    ProbeInfo p;
    p.format_name = "matroska,webm";
    p.duration_seconds = 2;
    auto v = stream(0, "video", "hevc");
    v.pix_fmt = "yuv420p10le";
    v.color_primaries = "bt2020";
    v.color_transfer = "smpte2084";
    v.color_space = "bt2020nc";
    v.color_range = "tv";
    v.mastering_display = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)";
    v.content_light = "1000,400";
    p.streams.push_back(v);
    p.streams.push_back(stream(1, "audio", "aac"));
    return p;
}

TEST(StreamPlan, HdrToAnEightBitPresetIsRefusedUnlessToneMappingIsAsked) {
    auto refused = plan_streams(resolved(json{{"preset", "h264-web"}}), hdr10());
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code, ErrorCode::Unprocessable);
    EXPECT_NE(refused.error().message.find("HDR"), std::string::npos);
    EXPECT_EQ(refused.error().details["source_transfer"], "smpte2084");

    auto tonemapped = plan_ok(json{{"preset", "h264-web"}, {"video", {{"hdr", "tonemap"}}}}, hdr10());
    EXPECT_TRUE(tonemapped.tonemap);
    EXPECT_TRUE(tonemapped.color_transfer.empty());
    auto argv = argv_for(json{{"preset", "h264-web"}, {"video", {{"hdr", "tonemap"}}}}, tonemapped);
    EXPECT_NE(value_of(argv, "-filter:v:0").find("tonemap"), std::string::npos);
}

TEST(StreamPlan, HdrTenBitKeepsColourTagsAndMasteringMetadata) {
    auto plan = plan_ok(json{{"preset", "h265-archive"}}, hdr10());
    EXPECT_EQ(plan.color_primaries, "bt2020");
    EXPECT_EQ(plan.color_transfer, "smpte2084");
    auto argv = argv_for(json{{"preset", "h265-archive"}}, plan);
    EXPECT_EQ(value_of(argv, "-color_primaries:v:0"), "bt2020");
    EXPECT_EQ(value_of(argv, "-color_trc:v:0"), "smpte2084");
    EXPECT_EQ(value_of(argv, "-colorspace:v:0"), "bt2020nc");
    const auto params = value_of(argv, "-x265-params:v:0");
    EXPECT_NE(params.find("hdr10=1"), std::string::npos);
    EXPECT_NE(params.find("master-display=G(13250,34500)"), std::string::npos);
    EXPECT_NE(params.find("max-cll=1000,400"), std::string::npos);
}

TEST(StreamPlan, SvtAv1GetsTheHdr10MetadataInItsOwnNotation) {
    auto plan = plan_ok(json{{"preset", "av1-archive"}}, hdr10());
    auto argv = argv_for(json{{"preset", "av1-archive"}}, plan);
    EXPECT_EQ(value_of(argv, "-color_trc:v:0"), "smpte2084");
    EXPECT_EQ(value_of(argv, "-svtav1-params:v:0"),
              "mastering-display=G(0.2650,0.6900)B(0.1500,0.0600)R(0.6800,0.3200)WP(0.3127,0.3290)"
              "L(1000.0000,0.0001):content-light=1000,400");
}

TEST(StreamPlan, InterlacedSourcesAreDeinterlacedOnAuto) {
    ProbeInfo p;
    p.format_name = "mpegts";
    p.duration_seconds = 2;
    auto v = stream(0, "video", "mpeg2video");
    v.field_order = "tt";
    p.streams.push_back(v);
    auto plan = plan_ok(json{{"preset", "h264-web"}}, p);
    EXPECT_TRUE(plan.deinterlace);
    EXPECT_NE(value_of(argv_for(json{{"preset", "h264-web"}}, plan), "-filter:v:0").find("bwdif"),
              std::string::npos);
    auto off = plan_ok(json{{"preset", "h264-web"}, {"video", {{"deinterlace", "off"}}}}, p);
    EXPECT_FALSE(off.deinterlace);
}

ProbeInfo output_like(const StreamPlan& plan, double duration) {
    ProbeInfo out;
    out.duration_seconds = duration;
    for (int i : plan.output_order) {
        const auto& p = plan.streams[static_cast<size_t>(i)];
        auto s = stream(static_cast<int>(out.streams.size()), p.type, p.output_codec_name, p.language);
        out.streams.push_back(s);
    }
    return out;
}

TEST(VerifyOutput, AcceptsWhatThePlanSaysAndNamesEveryDifference) {
    auto plan = plan_ok(json{{"preset", "h265-web"}}, film());
    EXPECT_TRUE(verify_output(plan, 10.0, output_like(plan, 10.2)).ok());

    auto short_output = verify_output(plan, 10.0, output_like(plan, 4.0));
    ASSERT_FALSE(short_output.ok());
    EXPECT_EQ(short_output.error().code, ErrorCode::OutputMismatch);
    EXPECT_NE(short_output.error().message.find("4.00 s long, expected 10.00 s"), std::string::npos);

    // A streamed Matroska carries no duration: not a difference by itself.
    auto no_duration = output_like(plan, 10.0);
    no_duration.duration_seconds.reset();
    EXPECT_TRUE(verify_output(plan, 10.0, no_duration).ok());

    auto missing = output_like(plan, 10.0);
    missing.streams.erase(missing.streams.begin() + 2);  // the French track
    auto lost = verify_output(plan, 10.0, missing);
    ASSERT_FALSE(lost.ok());
    EXPECT_FALSE(lost.error().details["differences"].empty());

    auto wrong_codec = output_like(plan, 10.0);
    wrong_codec.streams[0].codec_name = "h264";
    EXPECT_FALSE(verify_output(plan, 10.0, wrong_codec).ok());

    // 1 % of a long film is more than half a second.
    auto long_plan = plan;
    EXPECT_TRUE(verify_output(long_plan, 7200.0, output_like(plan, 7260.0)).ok());
    EXPECT_FALSE(verify_output(long_plan, 7200.0, output_like(plan, 7000.0)).ok());
}

TEST(OutputDemuxer, ReadsBackWhatEachContainerWrites) {
    EXPECT_EQ(output_demuxer("mp4"), "mov");
    EXPECT_EQ(output_demuxer("m4a"), "mov");
    EXPECT_EQ(output_demuxer("mkv"), "matroska");
    EXPECT_EQ(output_demuxer("webm"), "matroska");
    EXPECT_EQ(output_demuxer("nonsense"), "");
}

}  // namespace
}  // namespace distconv::media
