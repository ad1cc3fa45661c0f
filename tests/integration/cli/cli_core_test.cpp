// Unit tests of the CLI's pure parts: flags -> job JSON, output names, multipart framing, the SSE
// parser, progress/ETA formatting, exit codes and the key-over-http rule.

#include "common/hash.hpp"
#include "submission_client/core.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

namespace distconv::client {
namespace {

namespace stdfs = std::filesystem;

TEST(CliOutputName, DerivedFromInputAndContainer) {
    EXPECT_EQ(derive_output_path("/v/clip.mov", "mp4", std::nullopt), stdfs::path("/v/clip.mp4"));
    EXPECT_EQ(derive_output_path("/v/clip.mov", "mkv", std::nullopt), stdfs::path("/v/clip.mkv"));
    EXPECT_EQ(derive_output_path("/v/clip.mov", "mp4", stdfs::path("/out")), stdfs::path("/out/clip.mp4"));
    EXPECT_EQ(derive_output_path("rel/My Movie.final.MOV", "webm", std::nullopt),
              stdfs::path("rel/My Movie.final.webm"));
}

TEST(CliOutputName, NeverTheInputItself) {
    EXPECT_EQ(derive_output_path("/v/clip.mp4", "mp4", std::nullopt), stdfs::path("/v/clip.transcoded.mp4"));
    EXPECT_EQ(derive_output_path("/v/clip.mp4", "mp4", stdfs::path("/v")),
              stdfs::path("/v/clip.transcoded.mp4"));
    EXPECT_EQ(derive_output_path("/v/clip.mp4", "mp4", stdfs::path("/elsewhere")),
              stdfs::path("/elsewhere/clip.mp4"));
}

TEST(CliJobJson, MapsFlagsToTheOptionsContract) {
    TranscodeFlags f;
    f.preset = "h264-web";
    f.video_codec = "libx265";
    f.crf = 28;
    f.scale = "-2:720";
    f.fps = "30";
    f.audio_codec = "libopus";
    f.audio_bitrate = "96k";
    f.priority = 5;
    auto container = resolve_container(f, stdfs::path("out.mkv"));
    ASSERT_TRUE(container.ok()) << container.error().to_string();
    EXPECT_EQ(*container, "mkv");  // from the -o extension
    auto j = build_job_json(f, *container, "out.mkv");
    ASSERT_TRUE(j.ok()) << j.error().to_string();
    EXPECT_EQ((*j)["output_filename"], "out.mkv");
    EXPECT_EQ((*j)["container"], "mkv");
    EXPECT_EQ((*j)["preset"], "h264-web");
    EXPECT_EQ((*j)["video"]["codec"], "libx265");
    EXPECT_EQ((*j)["video"]["crf"], 28);
    EXPECT_EQ((*j)["video"]["scale"], "-2:720");
    EXPECT_EQ((*j)["audio"]["codec"], "libopus");
    EXPECT_EQ((*j)["audio"]["bitrate"], "96k");
    EXPECT_EQ((*j)["priority"], 5);
    EXPECT_FALSE(j->contains("trim"));
    EXPECT_FALSE(j->contains("split"));

    f.split = "on";
    f.segment_seconds = 30;
    auto split = build_job_json(f, *container, "out.mkv");
    ASSERT_TRUE(split.ok()) << split.error().to_string();
    EXPECT_EQ((*split)["split"]["mode"], "on");
    EXPECT_EQ((*split)["split"]["segment_seconds"], 30.0);
    f.split = "sometimes";
    auto bad = build_job_json(f, *container, "out.mkv");
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().details.value("field", ""), "split.mode");
    EXPECT_FALSE((*j)["video"].contains("bitrate"));
}

TEST(CliJobJson, ContainerFromFlagThenPresetDefault) {
    TranscodeFlags f;
    auto c = resolve_container(f, std::nullopt);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(*c, "mp4");  // the default preset h264-web
    f.container = "webm";
    f.video_codec = "libvpx-vp9";
    f.audio_codec = "libopus";
    c = resolve_container(f, stdfs::path("x.mp4"));  // the flag wins over the -o extension
    ASSERT_TRUE(c.ok()) << c.error().to_string();
    EXPECT_EQ(*c, "webm");
}

TEST(CliJobJson, BadValuesAreUsageErrorsNamingTheField) {
    TranscodeFlags f;
    f.video_codec = "h265x";
    auto c = resolve_container(f, std::nullopt);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code, ErrorCode::InvalidArgument);
    EXPECT_EQ(c.error().details.value("field", ""), "video.codec");
    EXPECT_EQ(exit_code_for(c.error()), k_exit_usage);

    TranscodeFlags p;
    p.preset = "no-such-preset";
    EXPECT_FALSE(resolve_container(p, std::nullopt).ok());
    TranscodeFlags prio;
    prio.priority = 101;
    EXPECT_FALSE(resolve_container(prio, std::nullopt).ok());
}

TEST(CliMultipart, FramingAndStreamedBodyMatchTheLength) {
    test::TempDir dir;
    std::string content;
    for (int i = 0; i < 100000; ++i) content.push_back(static_cast<char>(i * 7));
    test::write_file(dir / "in.bin", content);
    auto framing = make_multipart_framing(R"({"container":"mp4"})", "we\"ird\nname.mov", "BOUNDARY123");
    EXPECT_EQ(framing.content_type(), "multipart/form-data; boundary=BOUNDARY123");
    EXPECT_NE(framing.head.find(
                  "name=\"job\"\r\nContent-Type: application/json\r\n\r\n{\"container\":\"mp4\"}\r\n"),
              std::string::npos);
    EXPECT_NE(framing.head.find("name=\"file\"; filename=\"we%22ird_name.mov\""), std::string::npos);
    EXPECT_EQ(framing.tail, "\r\n--BOUNDARY123--\r\n");

    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen((dir / "in.bin").c_str(), "rb"),
                                                      std::fclose);
    ASSERT_TRUE(f);
    MultipartBody body(framing, f.get());
    std::string out;
    char buf[777];  // an odd size crosses every phase boundary mid-buffer
    for (;;) {
        size_t n = body.read(buf, sizeof buf);
        ASSERT_NE(n, http::k_read_abort);
        if (n == 0) break;
        out.append(buf, n);
    }
    EXPECT_EQ(out.size(), framing.content_length(content.size()));
    EXPECT_EQ(out, framing.head + content + framing.tail);
}

TEST(CliMultipart, RandomBoundariesDiffer) {
    auto a = random_boundary(), b = random_boundary();
    EXPECT_NE(a, b);
    EXPECT_GE(a.size(), 30u);
    EXPECT_LE(a.size(), 70u);  // RFC 2046 limit
}

TEST(CliSse, ParsesEventsAcrossChunksAndLineEndings) {
    SseParser p;
    std::string stream =
        ": keep-alive\n\n"
        "id: 1\nevent: state\ndata: {\"state\":\"queued\"}\n\n"
        "id: 2\r\nevent: progress\r\ndata: {\"a\":1,\r\ndata: \"b\":2}\r\n\r\n"
        "event: state\ndata:{\"state\":\"completed\"}\n\n";
    std::vector<SseEvent> events;
    for (size_t i = 0; i < stream.size(); i += 5) {  // tiny chunks split lines and CRLFs
        auto got = p.feed(std::string_view(stream).substr(i, 5));
        events.insert(events.end(), got.begin(), got.end());
    }
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(events[0].event, "state");
    EXPECT_EQ(events[0].id, "1");
    EXPECT_EQ(events[0].data, "{\"state\":\"queued\"}");
    EXPECT_EQ(events[1].event, "progress");
    EXPECT_EQ(events[1].data, "{\"a\":1,\n\"b\":2}");
    EXPECT_EQ(events[2].event, "state");
    EXPECT_EQ(events[2].id, "2");  // the last id carries over
    EXPECT_EQ(events[2].data, "{\"state\":\"completed\"}");
}

TEST(CliSse, IncompleteEventIsNotDispatched) {
    SseParser p;
    EXPECT_TRUE(p.feed("event: state\ndata: {}\n").empty());
    EXPECT_EQ(p.feed("\n").size(), 1u);
}

TEST(CliFormat, BytesRatesDurations) {
    EXPECT_EQ(format_bytes(0), "0 B");
    EXPECT_EQ(format_bytes(1023), "1023 B");
    EXPECT_EQ(format_bytes(1536), "1.5 KiB");
    EXPECT_EQ(format_bytes(3 * 1024 * 1024), "3.0 MiB");
    EXPECT_EQ(format_rate(2.0 * 1024 * 1024), "2.0 MiB/s");
    EXPECT_EQ(format_duration(7), "0:07");
    EXPECT_EQ(format_duration(723), "12:03");
    EXPECT_EQ(format_duration(3723), "1:02:03");
    EXPECT_EQ(format_duration(-1), "--:--");
    EXPECT_EQ(render_bar(0.5, 10), "[#####.....]");
    EXPECT_EQ(render_bar(1.5, 4), "[####]");
    EXPECT_EQ(render_bar(0, 4), "[....]");
}

TEST(CliFormat, TransferLineHasPercentRateAndEta) {
    // 1 MiB of 4 MiB in 2 s: 512 KiB/s, 6 s left.
    std::string line = format_transfer_line(1024 * 1024, 4 * 1024 * 1024, 2.0, 8);
    EXPECT_EQ(line, "[##......]  25%  1.0 MiB / 4.0 MiB  512.0 KiB/s  ETA 0:06");
    EXPECT_NE(format_transfer_line(10, 0, 0).find("ETA --:--"), std::string::npos);
}

TEST(CliFormat, JobLine) {
    JobView v;
    v.job_id = "01ABC";
    v.label = "clip.mov";
    v.state = "running";
    v.percent = 60;
    v.fps = 48;
    v.speed = 2;
    v.eta_seconds = 4;
    EXPECT_EQ(format_job_line(v, true, 10),
              "clip.mov  [######....]  60% running  fps 48.0  speed 2.00x  ETA 0:04");
    JobView q;
    q.job_id = "01XYZ";
    q.state = "queued";
    q.queue_position = 3;
    EXPECT_EQ(format_job_line(q, false), "01XYZ    0% queued (position 3)");
}

TEST(CliFormat, Table) {
    EXPECT_EQ(render_table({"ID", "STATE"}, {{"a", "queued"}, {"longer-id", "x"}}),
              "ID         STATE\na          queued\nlonger-id  x\n");
}

TEST(CliFormat, StreamPlan) {
    auto plan = nlohmann::json::parse(R"([
        {"index":0,"type":"video","codec":"h264","language":null,"title":null,"disposition":[],"action":"encode","reason":"the main video"},
        {"index":2,"type":"audio","codec":"ac3","language":"fre","title":"Français 5.1","disposition":["default"],"action":"encode","reason":"audio, 5.1 kept"},
        {"index":5,"type":"subtitle","codec":"hdmv_pgs_subtitle","language":"eng","title":null,"disposition":[],"action":"drop","reason":"MP4 cannot hold bitmap subtitles"}])");
    auto lines = format_stream_plan(plan);
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[0], "#0 video h264 -> encode (the main video)");
    EXPECT_EQ(lines[1], "#2 audio ac3 fre \"Français 5.1\" [default] -> encode (audio, 5.1 kept)");
    EXPECT_EQ(lines[2], "#5 subtitle hdmv_pgs_subtitle eng -> drop (MP4 cannot hold bitmap subtitles)");
    EXPECT_TRUE(format_stream_plan(nullptr).empty());
}

TEST(CliExitCodes, FromErrors) {
    EXPECT_EQ(exit_code_for(Error(ErrorCode::Unauthenticated, "x")), k_exit_unreachable);
    EXPECT_EQ(exit_code_for(Error(ErrorCode::Forbidden, "x")), k_exit_unreachable);
    EXPECT_EQ(exit_code_for(Error(ErrorCode::Unavailable, "x")), k_exit_unreachable);
    EXPECT_EQ(exit_code_for(Error(ErrorCode::InvalidArgument, "x")), k_exit_usage);
    EXPECT_EQ(exit_code_for(Error(ErrorCode::JobNotFound, "x")), k_exit_job_failed);
    EXPECT_EQ(error_line(Error(ErrorCode::JobNotFound, "no such job")),
              "distconv: JOB_NOT_FOUND: no such job");
}

TEST(CliServer, KeyNeverInClearToOtherHosts) {
    EXPECT_EQ(api_base_url("http://h:8080"), "http://h:8080/api/v1");
    EXPECT_EQ(api_base_url("http://h:8080/"), "http://h:8080/api/v1");
    EXPECT_EQ(api_base_url("https://h/api/v1"), "https://h/api/v1");
    EXPECT_TRUE(check_key_transport("http://127.0.0.1:8080", true, false).ok());
    EXPECT_TRUE(check_key_transport("http://localhost:8080", true, false).ok());
    EXPECT_TRUE(check_key_transport("http://[::1]:8080", true, false).ok());
    EXPECT_TRUE(check_key_transport("https://example.com", true, false).ok());
    EXPECT_TRUE(check_key_transport("http://example.com", false, false).ok());  // no key to leak
    EXPECT_TRUE(check_key_transport("http://example.com", true, true).ok());
    EXPECT_FALSE(check_key_transport("http://example.com:8080", true, false).ok());
    EXPECT_FALSE(check_key_transport("http://127.0.0.1.evil.com", true, false).ok());
    EXPECT_FALSE(check_key_transport("http://localhost@evil.com/", true, false).ok());
    EXPECT_FALSE(check_key_transport("ftp://127.0.0.1", true, false).ok());
}

}  // namespace
}  // namespace distconv::client
