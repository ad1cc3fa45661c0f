#include "common/media/ffprobe.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

namespace distconv::media {
namespace {

Result<ProbeInfo> parse_data(const std::string& name) {
    return parse_ffprobe_json(test::read_file(test::data_path("media/" + name)));
}

TEST(Ffprobe, ArgvShape) {
    EXPECT_EQ(ffprobe_argv("ffprobe", "/x/in.mkv"),
              (std::vector<std::string>{"ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                                        "-show_streams", "-show_chapters", "/x/in.mkv"}));
}

TEST(Ffprobe, RealOutputOfAGeneratedClip) {
    test::TempDir dir;
    auto clip = dir / "clip.mp4";
    ASSERT_TRUE(test::make_test_clip(clip, 1.0, 160, 120));
    std::string out;
    ASSERT_EQ(test::run_command(ffprobe_argv("ffprobe", clip.string()), &out), 0);
    auto r = parse_ffprobe_json(out);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    const ProbeInfo& info = *r;
    EXPECT_NE(info.format_name.find("mp4"), std::string::npos);
    ASSERT_TRUE(info.duration_seconds.has_value());
    EXPECT_NEAR(*info.duration_seconds, 1.0, 0.1);
    ASSERT_TRUE(info.size.has_value());
    EXPECT_EQ(*info.size, static_cast<std::int64_t>(std::filesystem::file_size(clip)));
    EXPECT_TRUE(info.bit_rate.has_value());
    ASSERT_TRUE(info.has_video());
    ASSERT_TRUE(info.has_audio());
    const StreamInfo* v = info.first_video();
    EXPECT_EQ(v->codec_name, "h264");
    EXPECT_EQ(v->width, 160);
    EXPECT_EQ(v->height, 120);
    ASSERT_TRUE(v->fps.has_value());
    EXPECT_DOUBLE_EQ(*v->fps, 25.0);
    const StreamInfo* a = info.first_audio();
    EXPECT_EQ(a->codec_name, "aac");
    EXPECT_EQ(a->sample_rate, 44100);
    EXPECT_EQ(a->channels, 1);
    EXPECT_NE(a->index, v->index);
}

TEST(Ffprobe, SavedMkvWithNtscRate) {
    auto r = parse_data("probe_mkv_x264_aac.json");
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->format_name, "matroska,webm");
    ASSERT_TRUE(r->duration_seconds.has_value());
    EXPECT_NEAR(*r->duration_seconds, 1.0, 0.1);
    ASSERT_EQ(r->streams.size(), 2u);
    ASSERT_TRUE(r->first_video()->fps.has_value());
    EXPECT_NEAR(*r->first_video()->fps, 30000.0 / 1001.0, 1e-9);
    EXPECT_FALSE(r->first_video()->duration_seconds.has_value());  // mkv streams carry no duration
    EXPECT_EQ(r->first_audio()->sample_rate, 48000);
    EXPECT_EQ(r->first_audio()->channels, 2);
    EXPECT_FALSE(r->first_audio()->fps.has_value());
}

TEST(Ffprobe, SavedAudioOnlyMp3) {
    auto r = parse_data("probe_mp3_audio_only.json");
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_FALSE(r->has_video());
    EXPECT_EQ(r->first_video(), nullptr);
    ASSERT_TRUE(r->has_audio());
    EXPECT_EQ(r->first_audio()->codec_name, "mp3");
    ASSERT_TRUE(r->duration_seconds.has_value());
    EXPECT_NEAR(*r->duration_seconds, 2.0, 0.1);
}

TEST(Ffprobe, SavedStillImageHasNoDuration) {
    auto r = parse_data("probe_png_image.json");
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    ASSERT_TRUE(r->has_video());
    EXPECT_EQ(r->first_video()->codec_name, "png");
    EXPECT_EQ(r->first_video()->width, 64);
    EXPECT_FALSE(r->duration_seconds.has_value());
}

TEST(Ffprobe, NotAvailableValuesBecomeUnset) {
    auto r = parse_data("probe_na_values.json");
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_FALSE(r->size.has_value());
    EXPECT_FALSE(r->bit_rate.has_value());
    // The format's duration is N/A: the longest audio/video stream counts, not the subtitle.
    ASSERT_TRUE(r->duration_seconds.has_value());
    EXPECT_DOUBLE_EQ(*r->duration_seconds, 12.5);
    const StreamInfo* v = r->first_video();
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(v->width, 1920);
    EXPECT_FALSE(v->height.has_value());
    EXPECT_DOUBLE_EQ(v->fps.value_or(0), 25.0);  // avg_frame_rate 0/0 falls back to r_frame_rate
    EXPECT_FALSE(v->duration_seconds.has_value());
    EXPECT_FALSE(v->bit_rate.has_value());
    EXPECT_FALSE(r->first_audio()->sample_rate.has_value());
    EXPECT_EQ(r->first_audio()->channels, 6);
}

TEST(Ffprobe, NoAudioOrVideoIsUnsupportedMedia) {
    auto r = parse_data("probe_no_av_streams.json");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::UnsupportedMediaType);
    EXPECT_NE(r.error().message.find("no audio or video"), std::string::npos);
    auto empty = parse_ffprobe_json(R"({"format": {"format_name": "tty"}, "streams": []})");
    ASSERT_FALSE(empty.ok());
    EXPECT_EQ(empty.error().code, ErrorCode::UnsupportedMediaType);
}

TEST(Ffprobe, GarbageIsInvalidArgument) {
    for (const std::string& text :
         std::vector<std::string>{test::read_file(test::data_path("media/probe_truncated.json")),
                                  test::read_file(test::data_path("media/probe_empty.json")), std::string(""),
                                  std::string("Invalid data found when processing input"),
                                  std::string("[1,2]"), std::string(R"({"streams": "nope"})")}) {
        SCOPED_TRACE(text);
        auto r = parse_ffprobe_json(text);
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().code, ErrorCode::InvalidArgument);
        EXPECT_FALSE(r.error().message.empty());
    }
}

TEST(Ffprobe, OddFieldTypesAreTolerated) {
    auto r = parse_ffprobe_json(R"({"streams": [
        {"index": "x", "codec_type": "video", "width": "640", "height": -5, "avg_frame_rate": "1/0",
         "r_frame_rate": "garbage", "duration": "-3"},
        7,
        {"codec_type": "audio", "sample_rate": 44100.0, "channels": "two"}],
      "format": {"duration": 5, "size": "1e3", "bit_rate": {}}})");
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    ASSERT_EQ(r->streams.size(), 2u);
    EXPECT_EQ(r->streams[0].index, 0);
    EXPECT_EQ(r->streams[0].width, 640);
    EXPECT_FALSE(r->streams[0].height.has_value());
    EXPECT_FALSE(r->streams[0].fps.has_value());
    EXPECT_FALSE(r->streams[0].duration_seconds.has_value());
    EXPECT_EQ(r->streams[1].sample_rate, 44100);
    EXPECT_FALSE(r->streams[1].channels.has_value());
    EXPECT_EQ(r->duration_seconds, 5.0);
    EXPECT_EQ(r->size, 1000);
    EXPECT_FALSE(r->bit_rate.has_value());
}

TEST(Ffprobe, ParseRational) {
    EXPECT_NEAR(parse_rational("30000/1001").value_or(0), 29.97, 0.001);
    EXPECT_EQ(parse_rational("25/1"), 25.0);
    EXPECT_EQ(parse_rational("25"), 25.0);
    EXPECT_FALSE(parse_rational("0/0").has_value());
    EXPECT_FALSE(parse_rational("N/A").has_value());
    EXPECT_FALSE(parse_rational("").has_value());
    EXPECT_FALSE(parse_rational("1/x").has_value());
    EXPECT_FALSE(parse_rational("1e300/1e-300").has_value());  // overflows to inf
}

}  // namespace
}  // namespace distconv::media
