// Split mode's decisions before anything is cut: whether a job is split (mode, duration, the auto
// threshold), why a job's options or plan make it one task, and the concat list the join reads.

#include "dispatch_server/service/split.hpp"

#include "common/media/options.hpp"
#include "common/media/stream_plan.hpp"

#include <gtest/gtest.h>

namespace distconv::dispatch {
namespace {

using nlohmann::json;

media::JobOptions resolved(const json& j) {
    auto o = media::parse_and_resolve(j);
    EXPECT_TRUE(o.ok()) << o.error().to_string();
    return o.ok() ? *o : media::JobOptions{};
}

media::ProbeInfo probe_with(std::vector<std::string> types) {
    media::ProbeInfo p;
    p.format_name = "mov,mp4,m4a,3gp,3g2,mj2";
    p.demuxer = "mov";
    p.duration_seconds = 120;
    int i = 0;
    for (const auto& t : types) {
        media::StreamInfo s;
        s.index = i++;
        s.codec_type = t;
        if (t == "video") {
            s.codec_name = "h264";
            s.width = 320;
            s.height = 240;
            s.fps = 25;
        } else {
            s.codec_name = "aac";
            s.channels = 2;
            s.sample_rate = 48000;
        }
        p.streams.push_back(s);
    }
    return p;
}

TEST(SplitDecision, OffAndShortAutoSourcesAreNotSplit) {
    EXPECT_TRUE(initial_split(resolved({{"split", {{"mode", "off"}}}}), 3600, 600).is_null());
    // auto is the default: a short source is not split, a long one waits to be cut.
    EXPECT_TRUE(initial_split(resolved(json::object()), 300, 600).is_null());
    auto long_one = initial_split(resolved(json::object()), 3600, 600);
    ASSERT_TRUE(long_one.is_object());
    EXPECT_EQ(long_one["state"], k_split_pending);
    EXPECT_EQ(long_one["mode"], "auto");
    EXPECT_EQ(long_one["segment_seconds"], 60.0);
}

TEST(SplitDecision, OnSplitsAnythingLongEnoughAndSaysWhyNot) {
    auto on = initial_split(resolved({{"split", {{"mode", "on"}, {"segment_seconds", 10}}}}), 45, 600);
    EXPECT_EQ(on["state"], k_split_pending);
    auto too_short = initial_split(resolved({{"split", {{"mode", "on"}, {"segment_seconds", 10}}}}), 15, 600);
    EXPECT_EQ(too_short["state"], k_split_single);
    EXPECT_NE(too_short["reason"].get<std::string>().find("shorter than two segments"), std::string::npos);
    auto unknown = initial_split(resolved({{"split", {{"mode", "on"}}}}), std::nullopt, 600);
    EXPECT_EQ(unknown["state"], k_split_single);
}

TEST(SplitDecision, OptionsAndPlansThatCannotBeSplitSayWhy) {
    auto plan_of = [](const media::JobOptions& o, const media::ProbeInfo& p) {
        auto plan = media::plan_streams(o, p);
        EXPECT_TRUE(plan.ok()) << plan.error().to_string();
        return plan.ok() ? *plan : media::StreamPlan{};
    };
    const auto av = probe_with({"video", "audio"});
    auto fine = resolved({{"preset", "h264-web"}});
    EXPECT_FALSE(split_refusal(fine, plan_of(fine, av)).has_value());

    auto copy = resolved({{"video", {{"codec", "copy"}}}});
    EXPECT_NE(split_refusal(copy, plan_of(copy, av))->find("video.codec copy"), std::string::npos);
    auto trim = resolved({{"trim", {{"start", 5}}}});
    EXPECT_NE(split_refusal(trim, plan_of(trim, av))->find("trim"), std::string::npos);
    auto fps = resolved({{"video", {{"fps", 30}}}});
    EXPECT_NE(split_refusal(fps, plan_of(fps, av))->find("video.fps"), std::string::npos);
    auto audio_only = resolved({{"container", "m4a"}});
    EXPECT_TRUE(split_refusal(audio_only, plan_of(audio_only, av)).has_value());
}

TEST(SplitDecision, TheConcatListGivesEachSegmentItsFramesDuration) {
    auto list = concat_list({{"/pool/a b/seg_000.nut", 250}, {"/pool/it's/seg_001.nut", 1001}}, 30000, 1001);
    EXPECT_EQ(list,
              "ffconcat version 1.0\n"
              "file '/pool/a b/seg_000.nut'\nduration 8.341666667\n"
              "file '/pool/it'\\''s/seg_001.nut'\nduration 33.400033333\n");
}

}  // namespace
}  // namespace distconv::dispatch
