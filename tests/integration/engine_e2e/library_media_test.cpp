// End to end on media that looks like a library: several audio languages (one 5.1), SubRip, ASS
// and PGS subtitles, chapters, a title, a font attachment; cover art in an M4A; an HDR10 HEVC; a
// rotated phone MP4; an interlaced MPEG-2 TS. Each goes through the real dispatch, engine and
// ffmpeg; the output's ffprobe must show what the job's stream plan says, and the plan must name
// every dropped stream with its reason. An encode that stops early with exit code 0 fails as
// OUTPUT_MISMATCH.

#include "common/media/ffprobe.hpp"
#include "tests/integration/engine_e2e/e2e_support.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>

using namespace distconv;
using namespace distconv::e2e;
using namespace std::chrono_literals;
namespace stdfs = std::filesystem;

namespace {

bool is_final(const nlohmann::json& j) {
    auto s = j.value("state", "");
    return s == "completed" || s == "failed" || s == "canceled";
}

bool ffmpeg(std::vector<std::string> args) {
    std::vector<std::string> argv = {"ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"};
    argv.insert(argv.end(), args.begin(), args.end());
    return test::run_command(argv) == 0;
}

// A PGS (.sup) stream of one 2x2 picture shown from 0.1 s to 0.5 s: ffmpeg cannot make bitmap
// subtitles from text, so the test writes the segments itself (presentation composition, window,
// palette, object, end).
void write_pgs(const stdfs::path& path, int width, int height) {
    std::string out;
    auto u8 = [](std::string& s, unsigned v) { s.push_back(static_cast<char>(v & 0xff)); };
    auto u16 = [&](std::string& s, unsigned v) { u8(s, v >> 8), u8(s, v); };
    auto u32 = [&](std::string& s, uint32_t v) { u16(s, v >> 16), u16(s, v & 0xffff); };
    auto segment = [&](unsigned type, const std::string& data, uint32_t pts) {
        out += "PG";
        u32(out, pts);
        u32(out, 0);
        u8(out, type);
        u16(out, static_cast<unsigned>(data.size()));
        out += data;
    };
    auto display = [&](uint32_t pts, bool show) {
        std::string pcs;
        u16(pcs, static_cast<unsigned>(width)), u16(pcs, static_cast<unsigned>(height)), u8(pcs, 0x10);
        u16(pcs, show ? 0 : 1), u8(pcs, show ? 0x80 : 0), u8(pcs, 0), u8(pcs, 0), u8(pcs, show ? 1 : 0);
        if (show) u16(pcs, 0), u8(pcs, 0), u8(pcs, 0), u16(pcs, 10), u16(pcs, 10);
        segment(0x16, pcs, pts);
        std::string wds;
        u8(wds, 1), u8(wds, 0), u16(wds, 10), u16(wds, 10), u16(wds, 2), u16(wds, 2);
        segment(0x17, wds, pts);
        if (show) {
            std::string pds;
            for (unsigned b : {0u, 0u, 1u, 235u, 128u, 128u, 255u}) u8(pds, b);
            segment(0x14, pds, pts);
            std::string rle;
            for (int line = 0; line < 2; ++line)
                for (unsigned b : {1u, 1u, 0u, 0u}) u8(rle, b);
            std::string ods;
            u16(ods, 0), u8(ods, 0), u8(ods, 0xC0);
            const unsigned length = static_cast<unsigned>(rle.size()) + 4;
            u8(ods, length >> 16), u16(ods, length & 0xffff), u16(ods, 2), u16(ods, 2);
            segment(0x15, ods + rle, pts);
        }
        segment(0x80, "", pts);
    };
    display(9000, true);
    display(45000, false);
    test::write_file(path, out);
}

// The film: H.264 video, English mono (default, titled), French 5.1 (titled), German mono audio;
// English SubRip, French ASS (forced), English PGS; two chapters, a title and a font attachment.
bool make_film(const stdfs::path& dir, const stdfs::path& out) {
    test::write_file(dir / "en.srt",
                     "1\n00:00:00,100 --> 00:00:00,900\nHello\n\n2\n00:00:01,000 --> 00:00:01,800\nWorld\n");
    test::write_file(
        dir / "fr.ass",
        "[Script Info]\nScriptType: v4.00+\nPlayResX: 160\nPlayResY: 120\n\n[V4+ Styles]\n"
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, "
        "Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, "
        "Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
        "Style: Default,Sans,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,"
        "2,10,10,10,1\n\n[Events]\n"
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
        "Dialogue: 0,0:00:00.10,0:00:00.90,Default,,0,0,0,,Bonjour\n");
    test::write_file(dir / "meta.txt",
                     ";FFMETADATA1\ntitle=A Library Film\n\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\n"
                     "END=1000\ntitle=One\n\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=1000\nEND=2000\n"
                     "title=Two\n");
    test::write_file(dir / "font.ttf", "a font's bytes");
    write_pgs(dir / "pgs.sup", 160, 120);
    return ffmpeg({"-f",
                   "lavfi",
                   "-i",
                   "testsrc2=size=160x120:rate=25:duration=2",
                   "-f",
                   "lavfi",
                   "-i",
                   "sine=frequency=440:duration=2",
                   "-f",
                   "lavfi",
                   "-i",
                   "sine=frequency=220:duration=2,pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0",
                   "-f",
                   "lavfi",
                   "-i",
                   "sine=frequency=660:duration=2",
                   "-i",
                   (dir / "en.srt").string(),
                   "-i",
                   (dir / "fr.ass").string(),
                   "-i",
                   (dir / "pgs.sup").string(),
                   "-i",
                   (dir / "meta.txt").string(),
                   "-map",
                   "0:v",
                   "-map",
                   "1:a",
                   "-map",
                   "2:a",
                   "-map",
                   "3:a",
                   "-map",
                   "4",
                   "-map",
                   "5",
                   "-map",
                   "6",
                   "-map_metadata",
                   "7",
                   "-map_chapters",
                   "7",
                   "-c:v",
                   "libx264",
                   "-preset",
                   "ultrafast",
                   "-c:a",
                   "aac",
                   "-c:s",
                   "copy",
                   "-metadata:s:a:0",
                   "language=eng",
                   "-metadata:s:a:0",
                   "title=English",
                   "-metadata:s:a:1",
                   "language=fre",
                   "-metadata:s:a:1",
                   "title=Français 5.1",
                   "-metadata:s:a:2",
                   "language=ger",
                   "-metadata:s:s:0",
                   "language=eng",
                   "-metadata:s:s:1",
                   "language=fre",
                   "-metadata:s:s:2",
                   "language=eng",
                   "-disposition:a:0",
                   "default",
                   "-disposition:a:1",
                   "0",
                   "-disposition:a:2",
                   "0",
                   "-disposition:s:0",
                   "0",
                   "-disposition:s:1",
                   "forced",
                   "-disposition:s:2",
                   "0",
                   "-attach",
                   (dir / "font.ttf").string(),
                   "-metadata:s:t",
                   "mimetype=font/ttf",
                   "-metadata:s:t",
                   "filename=font.ttf",
                   out.string()});
}

std::optional<media::ProbeInfo> probe(const stdfs::path& file) {
    std::string out;
    if (test::run_command({"ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                           "-show_chapters", file.string()},
                          &out) != 0)
        return std::nullopt;
    auto p = media::parse_ffprobe_json(out);
    if (!p) return std::nullopt;
    return *p;
}

// The output's streams of one type (data streams, such as MP4's chapter track, left out).
std::vector<media::StreamInfo> of_type(const media::ProbeInfo& p, const std::string& type) {
    std::vector<media::StreamInfo> out;
    for (const auto& s : p.streams)
        if (s.codec_type == type) out.push_back(s);
    return out;
}

std::vector<std::string> languages(const std::vector<media::StreamInfo>& streams) {
    std::vector<std::string> out;
    for (const auto& s : streams) out.push_back(s.language);
    return out;
}

std::vector<std::string> codecs(const std::vector<media::StreamInfo>& streams) {
    std::vector<std::string> out;
    for (const auto& s : streams) out.push_back(s.codec_name);
    return out;
}

// The plan's entry for source stream `index`.
nlohmann::json planned(const nlohmann::json& job, int index) {
    for (const auto& s : job.value("streams", nlohmann::json::array()))
        if (s.value("index", -1) == index) return s;
    return nullptr;
}

struct Family {
    std::string preset;
    std::string video;                        // ffprobe's codec name of the output video
    std::string audio;                        // ... of every audio track
    std::vector<std::string> subtitles;       // the subtitle codecs the output has, in order
    std::vector<std::string> subtitle_langs;  // their languages
    bool attachment = false;                  // the font kept
    std::vector<int> dropped;                 // source streams the plan drops (with a reason)
};

class LibraryMedia : public ::testing::Test {
  protected:
    Cluster c;
    std::unique_ptr<Daemon> e1 = c.start_engine("engine1", two_slots());

    static EngineOptions two_slots() {
        EngineOptions o;
        o.slots = 2;
        return o;
    }

    // Submits, waits for completion, downloads and probes the result.
    std::pair<nlohmann::json, media::ProbeInfo> transcode(const stdfs::path& source,
                                                          const nlohmann::json& job,
                                                          const std::string& output) {
        std::string answer;
        auto id = c.submit(source, job, &answer);
        EXPECT_FALSE(id.empty()) << answer;
        nlohmann::json j;
        EXPECT_TRUE(c.wait_job(id, is_final, 120s, &j)) << j.dump();
        EXPECT_EQ(j.value("state", ""), "completed") << job.dump() << ": " << j.dump();
        auto out = c.dir() / output;
        EXPECT_TRUE(c.download_result(id, out));
        auto p = probe(out);
        EXPECT_TRUE(p) << "ffprobe cannot read " << out;
        return {j, p.value_or(media::ProbeInfo{})};
    }
};

TEST_F(LibraryMedia, EveryPresetFamilyKeepsEveryTrackSubtitleChapterAndTitleAsPlanned) {
    const auto film = c.dir() / "film.mkv";
    ASSERT_TRUE(make_film(c.dir().path(), film));
    const std::vector<Family> families = {
        {"h264-web", "h264", "aac", {"mov_text", "mov_text"}, {"eng", "fre"}, false, {6, 7}},
        {"h265-web", "hevc", "aac", {"mov_text", "mov_text"}, {"eng", "fre"}, false, {6, 7}},
        {"h265-archive",
         "hevc",
         "flac",
         {"subrip", "ass", "hdmv_pgs_subtitle"},
         {"eng", "fre", "eng"},
         true,
         {}},
        {"vp9-web", "vp9", "opus", {"webvtt", "webvtt"}, {"eng", "fre"}, false, {6, 7}},
        {"av1-web", "av1", "opus", {"webvtt", "webvtt"}, {"eng", "fre"}, false, {6, 7}},
        {"av1-archive",
         "av1",
         "flac",
         {"subrip", "ass", "hdmv_pgs_subtitle"},
         {"eng", "fre", "eng"},
         true,
         {}},
    };
    for (const auto& f : families) {
        SCOPED_TRACE(f.preset);
        auto [job, out] = transcode(film, {{"preset", f.preset}}, "out-" + f.preset);
        ASSERT_TRUE(job["streams"].is_array()) << job.dump();
        ASSERT_EQ(job["streams"].size(), 8u);

        auto video = of_type(out, "video");
        ASSERT_EQ(video.size(), 1u);
        EXPECT_EQ(video[0].codec_name, f.video);

        // Every audio track, in the source's order, with its language and the default flag.
        auto audio = of_type(out, "audio");
        ASSERT_EQ(audio.size(), 3u);
        EXPECT_EQ(codecs(audio), (std::vector<std::string>(3, f.audio)));
        EXPECT_EQ(languages(audio), (std::vector<std::string>{"eng", "fre", "ger"}));
        EXPECT_TRUE(audio[0].has_disposition("default"));
        EXPECT_FALSE(audio[1].has_disposition("default"));
        EXPECT_EQ(audio[1].channels.value_or(0), 6) << "the 5.1 track was downmixed";
        if (f.preset.find("archive") != std::string::npos) {
            EXPECT_EQ(audio[0].title, "English");  // Matroska carries track titles
            EXPECT_EQ(audio[1].title, "Français 5.1");
        }

        auto subs = of_type(out, "subtitle");
        EXPECT_EQ(codecs(subs), f.subtitles);
        EXPECT_EQ(languages(subs), f.subtitle_langs);
        ASSERT_GE(subs.size(), 2u);
        EXPECT_TRUE(subs[1].has_disposition("forced"));
        EXPECT_EQ(of_type(out, "attachment").size(), f.attachment ? 1u : 0u);

        EXPECT_EQ(out.chapters, 2);
        EXPECT_EQ(out.title, "A Library Film");
        EXPECT_EQ(job["output_plan"].value("chapters", false), true);

        for (int index : f.dropped) {
            auto p = planned(job, index);
            EXPECT_EQ(p.value("action", ""), "drop") << p.dump();
            EXPECT_FALSE(p.value("reason", "").empty()) << p.dump();
        }
        // The command shown is the one that ran: every kept stream mapped by index.
        const auto command = job.value("ffmpeg_command", "");
        EXPECT_NE(command.find("-map 0:1 -map 0:2 -map 0:3"), std::string::npos) << command;
    }
}

TEST_F(LibraryMedia, SelectionsChooseTracksAndOneThatMatchesNothingIsRefusedAtSubmit) {
    const auto film = c.dir() / "film.mkv";
    ASSERT_TRUE(make_film(c.dir().path(), film));
    auto [job, out] = transcode(
        film,
        {{"preset", "h264-web"}, {"audio", {{"languages", {"fr", "en"}}}}, {"subtitles", {{"mode", "drop"}}}},
        "selected.mp4");
    EXPECT_EQ(languages(of_type(out, "audio")), (std::vector<std::string>{"fre", "eng"}));
    EXPECT_TRUE(of_type(out, "subtitle").empty());
    EXPECT_EQ(planned(job, 3).value("action", ""), "drop");
    EXPECT_NE(planned(job, 3).value("reason", "").find("audio.languages"), std::string::npos);

    std::string answer;
    auto id = c.submit(film, {{"preset", "h264-web"}, {"audio", {{"languages", {"ja"}}}}}, &answer);
    EXPECT_TRUE(id.empty());
    EXPECT_EQ(answer.rfind("422 ", 0), 0u) << answer;  // the status, then the body
    auto err =
        nlohmann::json::parse(answer.substr(std::min(answer.size(), answer.find('{'))), nullptr, false);
    ASSERT_TRUE(err.is_object()) << answer;
    EXPECT_EQ(err["error"].value("code", ""), "UNPROCESSABLE") << answer;
    EXPECT_EQ(err["error"]["details"].value("field", ""), "audio.languages") << answer;
    EXPECT_EQ(err["error"]["details"]["source_languages"], nlohmann::json::array({"eng", "fre", "ger"}))
        << answer;

    // subtitles.on_unsupported "fail": the PGS track cannot go into MP4, so the job is refused.
    id = c.submit(film, {{"preset", "h264-web"}, {"subtitles", {{"on_unsupported", "fail"}}}}, &answer);
    EXPECT_TRUE(id.empty());
    EXPECT_NE(answer.find("subtitles.on_unsupported"), std::string::npos) << answer;
}

TEST_F(LibraryMedia, PicturePropertiesAreCarriedOrAppliedAsPlanned) {
    const auto dir = c.dir().path();
    // HDR10: 10-bit HEVC with BT.2020 / PQ tags and mastering metadata.
    ASSERT_TRUE(ffmpeg({"-f",
                        "lavfi",
                        "-i",
                        "testsrc2=size=128x96:rate=25:duration=1",
                        "-f",
                        "lavfi",
                        "-i",
                        "sine=duration=1",
                        "-c:v",
                        "libx265",
                        "-preset",
                        "ultrafast",
                        "-pix_fmt",
                        "yuv420p10le",
                        "-x265-params",
                        "log-level=error:hdr10=1:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:"
                        "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1):"
                        "max-cll=1000,400",
                        "-color_primaries",
                        "bt2020",
                        "-color_trc",
                        "smpte2084",
                        "-colorspace",
                        "bt2020nc",
                        "-c:a",
                        "aac",
                        (dir / "hdr.mkv").string()}));
    auto [hdr_job, hdr_out] = transcode(dir / "hdr.mkv", {{"preset", "h265-archive"}}, "hdr-out.mkv");
    auto hv = of_type(hdr_out, "video");
    ASSERT_EQ(hv.size(), 1u);
    EXPECT_EQ(hv[0].pix_fmt, "yuv420p10le");
    EXPECT_EQ(hv[0].color_primaries, "bt2020");
    EXPECT_EQ(hv[0].color_transfer, "smpte2084");
    EXPECT_EQ(hv[0].color_space, "bt2020nc");
    EXPECT_EQ(hdr_job["output_plan"]["picture"].value("color_transfer", ""), "smpte2084");
    EXPECT_FALSE(hdr_job["output_plan"]["picture"]["mastering_display"].is_null()) << hdr_job.dump();
    EXPECT_NE(hdr_job.value("ffmpeg_command", "").find("master-display=G(13250,34500)"), std::string::npos);

    // SVT-AV1 takes the same tags and metadata.
    auto [av1_job, av1_out] = transcode(dir / "hdr.mkv", {{"preset", "av1-archive"}}, "hdr-av1.mkv");
    auto av = of_type(av1_out, "video");
    ASSERT_EQ(av.size(), 1u);
    EXPECT_EQ(av[0].codec_name, "av1");
    EXPECT_EQ(av[0].color_primaries, "bt2020");
    EXPECT_EQ(av[0].color_transfer, "smpte2084");
    EXPECT_NE(av1_job.value("ffmpeg_command", "").find("mastering-display=G(0.2650,0.6900)"),
              std::string::npos)
        << av1_job.value("ffmpeg_command", "");

    // The same source to an 8-bit preset is refused with the reason, or tone-mapped when asked.
    std::string answer;
    EXPECT_TRUE(c.submit(dir / "hdr.mkv", {{"preset", "h264-web"}}, &answer).empty());
    EXPECT_NE(answer.find("HDR"), std::string::npos) << answer;
    auto [sdr_job, sdr_out] =
        transcode(dir / "hdr.mkv", {{"preset", "h264-web"}, {"video", {{"hdr", "tonemap"}}}}, "sdr.mp4");
    auto sv = of_type(sdr_out, "video");
    ASSERT_EQ(sv.size(), 1u);
    EXPECT_EQ(sv[0].pix_fmt, "yuv420p");
    EXPECT_NE(sv[0].color_transfer, "smpte2084");

    // A phone video rotated 90°: it comes out displayed the same way (rotation applied).
    ASSERT_TRUE(test::make_test_clip(dir / "phone-raw.mp4", 1.0, 160, 96));
    ASSERT_TRUE(ffmpeg({"-i", (dir / "phone-raw.mp4").string(), "-c", "copy", "-metadata:s:v:0", "rotate=90",
                        (dir / "phone.mp4").string()}));
    auto [phone_job, phone_out] = transcode(dir / "phone.mp4", {{"preset", "h264-web"}}, "phone-out.mp4");
    auto pv = of_type(phone_out, "video");
    ASSERT_EQ(pv.size(), 1u);
    EXPECT_EQ(pv[0].width.value_or(0), 96);
    EXPECT_EQ(pv[0].height.value_or(0), 160);
    EXPECT_FALSE(pv[0].rotation && std::abs(*pv[0].rotation) > 0.5);
    EXPECT_NE(planned(phone_job, 0).value("reason", "").find("rotated"), std::string::npos)
        << phone_job.dump();

    // Interlaced MPEG-2 in a TS: deinterlaced on auto.
    ASSERT_TRUE(ffmpeg({"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=1", "-f", "lavfi", "-i",
                        "sine=duration=1", "-c:v", "mpeg2video", "-flags", "+ilme+ildct", "-top", "1", "-c:a",
                        "mp2", "-f", "mpegts", (dir / "tv.ts").string()}));
    auto [tv_job, tv_out] = transcode(dir / "tv.ts", {{"preset", "h264-web"}}, "tv.mp4");
    auto tv = of_type(tv_out, "video");
    ASSERT_EQ(tv.size(), 1u);
    EXPECT_TRUE(tv[0].field_order.empty() || tv[0].field_order == "progressive") << tv[0].field_order;
    EXPECT_EQ(tv_job["output_plan"]["picture"].value("deinterlace", false), true);
    EXPECT_NE(tv_job.value("ffmpeg_command", "").find("bwdif"), std::string::npos);

    // Cover art in an M4A is kept; WebM-family outputs cannot hold it and say so.
    ASSERT_TRUE(
        ffmpeg({"-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", (dir / "song-raw.m4a").string()}));
    ASSERT_TRUE(
        ffmpeg({"-f", "lavfi", "-i", "color=c=red:s=32x32", "-frames:v", "1", (dir / "cover.png").string()}));
    ASSERT_TRUE(
        ffmpeg({"-i", (dir / "song-raw.m4a").string(), "-i", (dir / "cover.png").string(), "-map", "0",
                "-map", "1", "-c", "copy", "-disposition:v:0", "attached_pic", (dir / "song.m4a").string()}));
    auto [song_job, song_out] = transcode(dir / "song.m4a", {{"preset", "audio-aac"}}, "song-out.m4a");
    auto art = of_type(song_out, "video");
    ASSERT_EQ(art.size(), 1u) << song_job.dump();
    EXPECT_TRUE(art[0].has_disposition("attached_pic"));
    auto [ogg_job, ogg_out] = transcode(dir / "song.m4a", {{"preset", "audio-opus"}}, "song.ogg");
    EXPECT_TRUE(of_type(ogg_out, "video").empty());
    EXPECT_NE(planned(ogg_job, 1).value("reason", "").find("cover art"), std::string::npos) << ogg_job.dump();
}

TEST(LibraryMediaVerify, AnEncodeThatStopsEarlyWithExitCodeZeroFailsAsOutputMismatch) {
    Cluster c;
    // ffmpeg that stops after 0.4 s of output and exits 0, as a crashed-but-quiet encoder might.
    const auto wrapper = c.dir() / "short-ffmpeg.sh";
    test::write_file(
        wrapper,
        "#!/bin/sh\n"
        "# a transcode (not -version or -encoders): every argument but the last, -t 0.4, the output\n"
        "[ $# -lt 8 ] && exec ffmpeg \"$@\"\n"
        "n=$#; i=0; for a in \"$@\"; do i=$((i+1)); if [ $i -eq $n ]; then set -- \"$@\" -t 0.4 \"$a\"; "
        "else set -- \"$@\" \"$a\"; fi; done; shift $n\nexec ffmpeg \"$@\"\n");
    stdfs::permissions(wrapper, stdfs::perms::owner_all);
    EngineOptions short_ffmpeg;
    short_ffmpeg.extra_args = {"--ffmpeg", wrapper.string()};
    auto e = c.start_engine("short", short_ffmpeg);
    ASSERT_TRUE(test::make_test_clip(c.dir() / "in.mp4", 3.0, 160, 120));
    std::string answer;
    auto id = c.submit(c.dir() / "in.mp4", {{"preset", "h264-web"}, {"max_attempts", 3}}, &answer);
    ASSERT_FALSE(id.empty()) << answer;
    nlohmann::json j;
    ASSERT_TRUE(c.wait_job(id, is_final, 60s, &j)) << j.dump();
    EXPECT_EQ(j.value("state", ""), "failed") << j.dump();
    EXPECT_EQ(j.value("failure_code", ""), "OUTPUT_MISMATCH") << j.dump();
    EXPECT_NE(j.value("failure_reason", "").find("expected 3.00 s"), std::string::npos) << j.dump();
    // Permanent: one attempt, not three.
    EXPECT_EQ(j["attempts"].size(), 1u) << j.dump();
    EXPECT_EQ(j["attempts"][0].value("error_class", ""), "output_mismatch");
}

TEST(LibraryMediaVerify, AStreamModeOutputMissingAPlannedStreamFailsAtTheServer) {
    Cluster c;
    // ffmpeg that silently drops the audio (-an before the output), streaming: the engine never holds
    // the whole file, so the server's probe of what it stored is what catches it.
    const auto wrapper = c.dir() / "no-audio-ffmpeg.sh";
    test::write_file(
        wrapper,
        "#!/bin/sh\n"
        "[ $# -lt 8 ] && exec ffmpeg \"$@\"\n"
        "n=$#; i=0; for a in \"$@\"; do i=$((i+1)); if [ $i -eq $n ]; then set -- \"$@\" -an \"$a\"; "
        "else set -- \"$@\" \"$a\"; fi; done; shift $n\nexec ffmpeg \"$@\"\n");
    stdfs::permissions(wrapper, stdfs::perms::owner_all);
    EngineOptions streaming;
    streaming.reserve_disk = "1000T";  // no free disk: stream mode
    streaming.extra_args = {"--ffmpeg", wrapper.string()};
    auto e = c.start_engine("streaming", streaming);
    ASSERT_TRUE(test::make_test_clip(c.dir() / "in.mp4", 1.0, 160, 120));
    std::string answer;
    auto id = c.submit(c.dir() / "in.mp4", {{"preset", "h264-web"}}, &answer);
    ASSERT_FALSE(id.empty()) << answer;
    nlohmann::json j;
    ASSERT_TRUE(c.wait_job(id, is_final, 60s, &j)) << j.dump();
    EXPECT_EQ(j.value("state", ""), "failed") << j.dump() << "\n" << e->log();
    EXPECT_EQ(j.value("failure_code", ""), "OUTPUT_MISMATCH") << j.dump();
    EXPECT_NE(j.value("failure_reason", "").find("missing from the output"), std::string::npos) << j.dump();
    ASSERT_FALSE(j["attempts"].empty());
    EXPECT_EQ(j["attempts"][0].value("transfer_mode", ""), "stream") << j.dump();
}

}  // namespace
