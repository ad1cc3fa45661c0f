// Which sources ffmpeg may read: the format detection and the allow-list, on what real ffprobe
// prints and on real files.
#include "common/media/input_policy.hpp"
#include "common/media/ffmpeg_args.hpp"
#include "common/media/ffprobe.hpp"
#include "common/process.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

using namespace distconv;
using namespace distconv::media;

TEST(InputPolicy, DemuxerIsTheFirstNameOfTheFormat) {
    EXPECT_EQ(demuxer_of("mov,mp4,m4a,3gp,3g2,mj2"), "mov");
    EXPECT_EQ(demuxer_of("matroska,webm"), "matroska");
    EXPECT_EQ(demuxer_of("mpegts"), "mpegts");
    EXPECT_EQ(demuxer_of(""), "");
}

TEST(InputPolicy, MediaContainersPassPlaylistsAndListsAreRefusedNamingTheFormat) {
    for (const char* ok : {"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "mpegts", "avi", "flv", "wav", "mp3",
                           "ogg", "png_pipe", "mxf", "mpeg"})
        EXPECT_TRUE(check_source_format(ok).ok()) << ok;
    for (const char* bad : {"hls", "dash", "concat", "sdp", "rtsp", "image2", "vobsub", "webm_dash_manifest",
                            "tty", "ffmetadata", "lavfi", "imf"}) {
        auto st = check_source_format(bad);
        ASSERT_FALSE(st.ok()) << bad;
        EXPECT_EQ(st.error().code, ErrorCode::UnsupportedMediaType);
        EXPECT_EQ(st.error().details["format"], bad);
        EXPECT_NE(st.error().message.find(std::string("'") + bad + "'"), std::string::npos)
            << st.error().message;
    }
    // Not known to be dangerous, simply not a format distconv reads: refused as well.
    auto other = check_source_format("libopenmpt");
    ASSERT_FALSE(other.ok());
    EXPECT_EQ(other.error().details["format"], "libopenmpt");
    EXPECT_FALSE(demuxer_allowed(""));
    EXPECT_FALSE(demuxer_allowed("mov,mp4"));  // only the -f name, never a list
}

TEST(InputPolicy, ProbedFormatIsReadFromFfprobesDebugOutput) {
    EXPECT_EQ(parse_probed_format("[NULL @ 0x1] Opening 'x' for reading\n"
                                  "[hls @ 0x55ad5b15c240] Format hls probed with size=2048 and score=100\n"
                                  "[hls @ 0x55ad5b15c240] Format not on whitelist 'none'\n"),
              "hls");
    EXPECT_EQ(
        parse_probed_format("[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5] Format mov,mp4,m4a,3gp,3g2,mj2 probed with "
                            "size=2048 and score=100\n"),
        "mov,mp4,m4a,3gp,3g2,mj2");
    EXPECT_EQ(parse_probed_format("x.bin: Invalid data found when processing input\n"), std::nullopt);
    EXPECT_EQ(parse_probed_format(""), std::nullopt);
    // A file name can not forge the line: only a plain demuxer name counts.
    EXPECT_EQ(parse_probed_format("Format ../../etc probed with size=1"), std::nullopt);
}

TEST(InputPolicy, DetectionOnRealFilesNeverOpensWhatAPlaylistNames) {
    test::TempDir dir;
    const auto clip = dir / "clip.mp4";
    ASSERT_TRUE(test::make_test_clip(clip, 0.5, 64, 48));
    const auto marker = dir / "elsewhere.mp4";  // a media name: the HLS demuxer checks segment extensions
    const auto playlist = dir / "video.mp4";    // an HLS playlist under a media name
    test::write_file(playlist, "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n" + marker.string() +
                                   "\n#EXTINF:1,\nfile://" + marker.string() + "\n#EXT-X-ENDLIST\n");
    const auto concat = dir / "list.mp4";
    test::write_file(concat, "ffconcat version 1.0\nfile " + clip.string() + "\n");

    auto detect = [](const std::filesystem::path& file) {
        auto run = process::run(ffprobe_detect_argv("ffprobe", file.string()), {std::chrono::seconds(20)});
        EXPECT_TRUE(run.ok());
        return run ? parse_probed_format(run->err) : std::nullopt;
    };
    EXPECT_EQ(detect(clip), "mov,mp4,m4a,3gp,3g2,mj2");
    EXPECT_EQ(detect(playlist), "hls");
    EXPECT_EQ(detect(concat), "concat");

    // The pinned probe reads the clip, and reads the playlist as what it claims to be: nothing.
    auto pinned = process::run(ffprobe_argv("ffprobe", clip.string(), "mov"), {std::chrono::seconds(20)});
    ASSERT_TRUE(pinned.ok());
    EXPECT_EQ(pinned->exit_code, 0) << pinned->err;
    EXPECT_TRUE(parse_ffprobe_json(pinned->out).ok());

    // The control: the segment the playlist names is a real clip elsewhere on this host. Unpinned,
    // ffprobe follows the playlist and reports that clip's streams (what the old probe did); pinned
    // to what the upload claims to be, it reads nothing but the upload.
    std::filesystem::copy_file(clip, marker);
    auto unpinned = process::run(ffprobe_argv("ffprobe", playlist.string()), {std::chrono::seconds(20)});
    ASSERT_TRUE(unpinned.ok());
    EXPECT_EQ(unpinned->exit_code, 0) << unpinned->err;
    EXPECT_NE(unpinned->out.find("\"hls\""), std::string::npos) << unpinned->out;
    auto as_mov = process::run(ffprobe_argv("ffprobe", playlist.string(), "mov"), {std::chrono::seconds(20)});
    ASSERT_TRUE(as_mov.ok());
    EXPECT_NE(as_mov->exit_code, 0);
    EXPECT_EQ(as_mov->out.find("\"codec_type\""), std::string::npos) << as_mov->out;
}

TEST(InputPolicy, TheArgvPinsTheInputBeforeMinusI) {
    ArgvSettings s;
    s.input_format = "matroska";
    auto argv = build_ffmpeg_argv(*resolve_options({}), "{input}", "{output}", s);
    ASSERT_TRUE(argv.ok());
    auto at = [&](const std::string& flag) {
        return std::find(argv->begin(), argv->end(), flag) - argv->begin();
    };
    auto i = at("-i");
    EXPECT_LT(at("-protocol_whitelist"), i);
    EXPECT_EQ((*argv)[at("-protocol_whitelist") + 1], "file");
    EXPECT_EQ((*argv)[at("-format_whitelist") + 1], "matroska");
    EXPECT_EQ((*argv)[i - 2], "-f");
    EXPECT_EQ((*argv)[i - 1], "matroska");

    s.input_format = "hls";
    EXPECT_FALSE(build_ffmpeg_argv(*resolve_options({}), "{input}", "{output}", s).ok());
    s.input_format = "mov";
    s.input_protocols = "file,http,https,tcp,tls,crypto,data";
    EXPECT_FALSE(build_ffmpeg_argv(*resolve_options({}), "{input}", "{output}", s).ok());
    s.input_protocols = "http,tcp";
    EXPECT_TRUE(build_ffmpeg_argv(*resolve_options({}), "{input}", "{output}", s).ok());
}
