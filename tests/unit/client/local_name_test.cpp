// safe_local_name: whatever the server calls a job's output, `distconv download` writes a plain
// name in the current directory.

#include "submission_client/local_name.hpp"
#include "common/fs.hpp"

#include <gtest/gtest.h>

#include <string>

namespace distconv::client {
namespace {

using namespace std::string_literals;

const std::string k_fallback = "01JOB.out";

std::string reduced(const std::string& server_name) {
    std::string name = safe_local_name(server_name, k_fallback);
    // Every answer is a plain name that fits NAME_MAX with ".part" after it, and is not hidden.
    EXPECT_TRUE(fs::is_plain_file_name(name)) << name;
    EXPECT_EQ(name.find('\\'), std::string::npos) << name;
    EXPECT_NE(name.front(), '.') << name;
    EXPECT_LE(name.size() + 5, 255u) << name;
    for (unsigned char c : name) EXPECT_FALSE(c < 0x20 || c == 0x7f) << "control byte in " << name;
    return name;
}

TEST(LocalName, OrdinaryNamesAreKept) {
    EXPECT_EQ(reduced("clip.mp4"), "clip.mp4");
    EXPECT_EQ(reduced("My Movie.final.webm"), "My Movie.final.webm");
    EXPECT_EQ(reduced("vid\xC3\xA9o.mkv"), "vid\xC3\xA9o.mkv");  // UTF-8 is a name, not an attack
}

TEST(LocalName, OnlyTheLastPathComponent) {
    EXPECT_EQ(reduced("../planted.sh"), "planted.sh");
    EXPECT_EQ(reduced("/etc/passwd"), "passwd");
    EXPECT_EQ(reduced("a/../../b.mp4"), "b.mp4");
    EXPECT_EQ(reduced("../../../../home/user/.bashrc"), "bashrc");
    EXPECT_EQ(reduced("dir/"), k_fallback);
}

TEST(LocalName, BackslashesSeparateToo) {
    EXPECT_EQ(reduced("..\\..\\planted.sh"), "planted.sh");
    EXPECT_EQ(reduced("C:\\Windows\\evil.dll"), "evil.dll");
    EXPECT_EQ(reduced("a/b\\c.mp4"), "c.mp4");
}

TEST(LocalName, DotNamesAndHiddenNames) {
    EXPECT_EQ(reduced(""), k_fallback);
    EXPECT_EQ(reduced("."), k_fallback);
    EXPECT_EQ(reduced(".."), k_fallback);
    EXPECT_EQ(reduced("..."), k_fallback);
    EXPECT_EQ(reduced("a/.."), k_fallback);
    EXPECT_EQ(reduced(".hidden"), "hidden");
    EXPECT_EQ(reduced("..profile"), "profile");
    EXPECT_EQ(reduced("name.with.dots."), "name.with.dots.");  // only leading dots matter
}

TEST(LocalName, ControlBytesAreDropped) {
    EXPECT_EQ(reduced("out\n.mp4"), "out.mp4");
    EXPECT_EQ(reduced("out\r\n\t\x1b[31m.mp4"), "out[31m.mp4");
    EXPECT_EQ(reduced("a\177b.mp4"), "ab.mp4");
    EXPECT_EQ(reduced("clip.mp4\0../../x"s), "x");  // a NUL does not end the name early
    EXPECT_EQ(reduced("x\0y.mp4"s), "xy.mp4");
    // Dropping them cannot make a dot name: ".\n." is not "..".
    EXPECT_EQ(reduced(".\n."), k_fallback);
    EXPECT_EQ(reduced("\n\n"), k_fallback);
}

TEST(LocalName, LongNamesAreCutKeepingTheExtension) {
    std::string name = reduced(std::string(1000, 'a') + ".mp4");
    EXPECT_EQ(name.size(), k_max_local_name_bytes);
    EXPECT_TRUE(name.ends_with(".mp4")) << name;
    EXPECT_EQ(name, std::string(k_max_local_name_bytes - 4, 'a') + ".mp4");

    std::string no_ext = reduced(std::string(1000, 'b'));
    EXPECT_EQ(no_ext, std::string(k_max_local_name_bytes, 'b'));

    // An "extension" that is most of the name is not kept whole.
    std::string long_ext = reduced("a." + std::string(1000, 'c'));
    EXPECT_EQ(long_ext.size(), k_max_local_name_bytes);
    EXPECT_TRUE(long_ext.starts_with("a.c")) << long_ext;

    EXPECT_EQ(reduced(std::string(k_max_local_name_bytes, 'd')).size(), k_max_local_name_bytes);
    EXPECT_EQ(reduced("../" + std::string(1000, '.') + "e.ts"), "e.ts");
}

TEST(LocalName, CutsOnAUtf8Boundary) {
    std::string e_acute = "\xC3\xA9";  // two bytes
    std::string long_name;
    while (long_name.size() < 1000) long_name += e_acute;
    for (std::string ext : {"", ".mkv", ".mp4x"}) {
        std::string name = reduced("x" + long_name + ext);  // odd offset: a cut at the cap splits a pair
        EXPECT_LE(name.size(), k_max_local_name_bytes);
        EXPECT_GE(name.size() + 1, k_max_local_name_bytes);
        EXPECT_TRUE(name.ends_with(ext)) << name;
        std::string stem = name.substr(1, name.size() - 1 - ext.size());
        ASSERT_EQ(stem.size() % 2, 0u) << "a code point was cut in half";
        for (size_t i = 0; i < stem.size(); i += 2) EXPECT_EQ(stem.substr(i, 2), e_acute);
    }
}

TEST(LocalName, TheFallbackIsReducedToo) {
    EXPECT_EQ(safe_local_name("..", "01JOB.out"), "01JOB.out");
    EXPECT_EQ(safe_local_name("", "../01JOB.out"), "01JOB.out");
    EXPECT_EQ(safe_local_name("/", "."), "download.out");
    EXPECT_EQ(safe_local_name("ok.mp4", "../never"), "ok.mp4");
}

}  // namespace
}  // namespace distconv::client
