// The library command's local parts: the walk, the rules, the decision, placing a result without
// losing an original, and the state database.

#include "submission_client/library.hpp"
#include "submission_client/library_state.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

namespace distconv::client::library {
namespace {

namespace stdfs = std::filesystem;
using nlohmann::json;

media::JobOptions resolved(const json& j) {
    auto r = media::parse_and_resolve(j);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : media::JobOptions{};
}

media::ProbeInfo video(const std::string& codec, const std::string& format, double bitrate) {
    media::ProbeInfo p;
    p.format_name = format;
    p.duration_seconds = 60;
    p.bit_rate = static_cast<std::int64_t>(bitrate);
    media::StreamInfo v;
    v.codec_type = "video";
    v.codec_name = codec;
    v.width = 1920;
    v.height = 1080;
    v.fps = 25;
    p.streams.push_back(v);
    return p;
}

// test::write_file, with the directories made first.
void put(const stdfs::path& p, const std::string& content) {
    stdfs::create_directories(p.parent_path());
    test::write_file(p, content);
}

Found file(const std::string& name, std::uint64_t size = 100 << 20) {
    Found f;
    f.path = "/lib/" + name;
    f.relative = name;
    f.size = size;
    return f;
}

TEST(LibraryWalk, TakesMediaFilesOnlyAndNeverFollowsALink) {
    test::TempDir dir;
    const auto root = dir.path() / "lib";
    put(root / "a b/ç.mkv", "x");
    put(root / "top.MP4", "x");
    put(root / "notes.txt", "x");
    put(root / ".hidden/x.mkv", "x");
    put(root / "d/.distconv-part-y.mp4", "x");
    put(root / ".distconv-trash/old.mkv", "x");
    put(dir.path() / "outside/o.mkv", "x");
    stdfs::create_symlink(dir.path() / "outside/o.mkv", root / "link.mkv");
    stdfs::create_directory_symlink(dir.path() / "outside", root / "linkdir");
    auto found = walk({root});
    ASSERT_TRUE(found.ok()) << found.error().to_string();
    std::vector<std::string> rel;
    for (const auto& f : *found) rel.push_back(f.relative);
    EXPECT_EQ(rel, (std::vector<std::string>{"a b/ç.mkv", "top.MP4"}));

    auto missing = walk({dir.path() / "nope"});
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().details.value("field", ""), "dir");
}

TEST(LibraryRules, UnknownKeysAndWrongTypesAreRefusedByName) {
    EXPECT_TRUE(parse_rules(json::object()).ok());
    auto r = parse_rules(json{{"max_bits_per_pixel", 0.2}, {"skip_same_codec", false}});
    ASSERT_TRUE(r.ok());
    EXPECT_DOUBLE_EQ(r->max_bits_per_pixel, 0.2);
    EXPECT_FALSE(r->skip_same_codec);
    EXPECT_EQ(parse_rules(json{{"max_bitrate", 1}}).error().details.value("field", ""), "max_bitrate");
    EXPECT_EQ(parse_rules(json{{"settle_seconds", -1}}).error().details.value("field", ""), "settle_seconds");
    EXPECT_EQ(parse_rules(json{{"require_container", "yes"}}).error().details.value("field", ""),
              "require_container");
    EXPECT_FALSE(parse_rules(json::array()).ok());
}

TEST(LibraryDecide, SkipsWhatIsAlreadyFineAndSaysWhy) {
    const auto hevc_mp4 = resolved(json{{"preset", "h265-web"}});
    Rules rules;
    // 2 Mb/s HEVC 1080p25 in MP4: 0.04 bits per pixel, already fine.
    auto d = decide(video("hevc", "mov,mp4,m4a,3gp,3g2,mj2", 2e6), hevc_mp4, rules, file("a.mp4"), 3600);
    EXPECT_EQ(d.verdict, Verdict::Skip) << d.reason;
    EXPECT_NE(d.reason.find("already hevc"), std::string::npos);
    // The same at 20 Mb/s is over the bitrate rule.
    d = decide(video("hevc", "mov,mp4,m4a,3gp,3g2,mj2", 20e6), hevc_mp4, rules, file("a.mp4"), 3600);
    EXPECT_EQ(d.verdict, Verdict::Transcode);
    // HEVC in MKV, MP4 wanted: the container rule.
    d = decide(video("hevc", "matroska,webm", 2e6), hevc_mp4, rules, file("a.mkv"), 3600);
    EXPECT_EQ(d.verdict, Verdict::Transcode) << d.reason;
    rules.require_container = false;
    EXPECT_EQ(decide(video("hevc", "matroska,webm", 2e6), hevc_mp4, rules, file("a.mkv"), 3600).verdict,
              Verdict::Skip);
    // H.264: transcoded, with an estimate below the source.
    d = decide(video("h264", "matroska,webm", 8e6), hevc_mp4, rules, file("a.mkv", 60'000'000), 3600);
    EXPECT_EQ(d.verdict, Verdict::Transcode);
    ASSERT_TRUE(d.estimated_output_bytes);
    EXPECT_LT(*d.estimated_output_bytes, 60'000'000.0);
    // Unreadable, and still being written.
    d = decide(Error(ErrorCode::UnsupportedMediaType, "not media"), hevc_mp4, rules, file("x.mkv"), 3600);
    EXPECT_EQ(d.verdict, Verdict::Unreadable);
    EXPECT_EQ(d.reason, "not media");
    d = decide(video("h264", "matroska,webm", 8e6), hevc_mp4, rules, file("a.mkv"), 1);
    EXPECT_EQ(d.verdict, Verdict::Skip);
    EXPECT_NE(d.reason.find("still being written"), std::string::npos);
}

TEST(LibraryPlace, ReplaceKeepsTheOriginalInTheTrashAndAMirrorNeverOverwrites) {
    test::TempDir dir;
    const auto original = dir.path() / "lib/Show/E1.mkv";
    put(original, "original");
    const auto dest = replace_path(original, "mp4");
    EXPECT_EQ(dest, dir.path() / "lib/Show/E1.mp4");
    const auto temp = temporary_path(dest);
    EXPECT_EQ(temp.filename().string(), ".distconv-part-E1.mp4");
    put(temp, "result");
    const auto trash = dir.path() / "trash";
    ASSERT_TRUE(place(temp, dest, original, trash, "Show/E1.mkv", false).ok());
    EXPECT_EQ(test::read_file(dest), "result");
    EXPECT_EQ(test::read_file(trash / "Show/E1.mkv"), "original");
    EXPECT_FALSE(stdfs::exists(original));
    EXPECT_FALSE(stdfs::exists(temp));

    // A second original of the same name is not put over the first one in the trash.
    put(original, "another");
    put(temp, "result 2");
    auto again = place(temp, dest, original, trash, "Show/E1.mkv", false);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, ErrorCode::Conflict);
    EXPECT_EQ(test::read_file(original), "another");
    EXPECT_EQ(test::read_file(trash / "Show/E1.mkv"), "original");

    // The mirror: an existing file is never overwritten.
    const auto mirrored = mirror_path(dir.path() / "mirror", "Show/E1.mkv", "mp4");
    EXPECT_EQ(mirrored, dir.path() / "mirror/Show/E1.mp4");
    put(mirrored, "someone's file");
    put(temp, "result 3");
    EXPECT_FALSE(place(temp, mirrored, std::nullopt, std::nullopt, "Show/E1.mkv", false).ok());
    EXPECT_EQ(test::read_file(mirrored), "someone's file");
}

TEST(LibraryState, RowsSurviveReopeningAndListByDirectory) {
    test::TempDir dir;
    const auto file = dir.path() / "state/x/library.sqlite";
    {
        auto db = StateDb::open(file);
        ASSERT_TRUE(db.ok()) << db.error().to_string();
        FileRecord r;
        r.path = "/lib/Show/E1.mkv";
        r.size = 10;
        r.mtime_ns = 5;
        r.sha256 = std::string(64, 'a');
        r.options_key = "k";
        r.job_id = "01J";
        r.state = "submitted";
        ASSERT_TRUE((*db)->put(r).ok());
        r.path = "/lib2/E1.mkv";
        ASSERT_TRUE((*db)->put(r).ok());
        r.path = "/lib/Show/E1.mkv";
        r.state = "done";
        ASSERT_TRUE((*db)->put(r).ok());
    }
    auto db = StateDb::open(file);
    ASSERT_TRUE(db.ok());
    auto r = (*db)->get("/lib/Show/E1.mkv");
    ASSERT_TRUE(r.ok() && r->has_value());
    EXPECT_EQ((*r)->state, "done");
    EXPECT_EQ((*r)->size, 10u);
    auto none = (*db)->get("/lib/none.mkv");
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none->has_value());
    auto under = (*db)->under("/lib");
    ASSERT_TRUE(under.ok());
    ASSERT_EQ(under->size(), 1u);  // not /lib2
    EXPECT_EQ(under->front().path, "/lib/Show/E1.mkv");

    // A file that is not a database is an error, not an empty state.
    put(dir.path() / "junk.sqlite", std::string(8192, 'j'));
    EXPECT_FALSE(StateDb::open(dir.path() / "junk.sqlite").ok());
}

TEST(LibraryIdempotency, TheSameFileAndOptionsAreTheSameKey) {
    const json job{{"preset", "h265-web"}, {"output_filename", "a.mp4"}};
    const auto a = idempotency_key(std::string(64, 'a'), job);
    EXPECT_EQ(a, idempotency_key(std::string(64, 'a'), job));
    EXPECT_NE(a, idempotency_key(std::string(64, 'b'), job));
    EXPECT_NE(
        a, idempotency_key(std::string(64, 'a'), json{{"preset", "h264-web"}, {"output_filename", "a.mp4"}}));
}

}  // namespace
}  // namespace distconv::client::library
