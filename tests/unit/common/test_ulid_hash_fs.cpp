#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/hash.hpp"
#include "common/logging.hpp"
#include "common/time.hpp"
#include "common/ulid.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

using namespace distconv;

TEST(Ulid, FormatAndTimestamp) {
    UlidGenerator g;
    auto id = g.next_at(1'700'000'000'123ULL);
    EXPECT_EQ(id.size(), 26u);
    EXPECT_TRUE(is_ulid(id));
    EXPECT_EQ(ulid_timestamp_ms(id), 1'700'000'000'123ULL);
    EXPECT_EQ(id.substr(0, 10), "01HF7YAT3V");  // 1700000000123 in Crockford base32
    EXPECT_FALSE(is_ulid("not-a-ulid"));
    EXPECT_FALSE(is_ulid("01HF7YAT03IIIIIIIIIIIIIIII"));  // I is not Crockford
    EXPECT_FALSE(is_ulid("81HF7YAT030000000000000000"));  // overflows 128 bits
}

TEST(Ulid, StrictlyIncreasingWithinAndAcrossMilliseconds) {
    UlidGenerator g;
    std::string prev;
    for (int i = 0; i < 5000; ++i) {
        auto id = g.next_at(1'700'000'000'000ULL + static_cast<uint64_t>(i / 1000));
        EXPECT_LT(prev, id);
        prev = id;
    }
    // A clock stepping back never produces a smaller id.
    auto before = g.next_at(1'800'000'000'000ULL);
    auto after = g.next_at(1'700'000'000'000ULL);
    EXPECT_LT(before, after);
}

TEST(Ulid, UniqueAcrossThreads) {
    std::vector<std::vector<std::string>> per(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&per, t] {
            for (int i = 0; i < 2000; ++i) per[static_cast<size_t>(t)].push_back(new_ulid());
        });
    for (auto& th : threads) th.join();
    std::set<std::string> all;
    for (auto& v : per) all.insert(v.begin(), v.end());
    EXPECT_EQ(all.size(), 8000u);
}

TEST(Sha256, KnownVectors) {
    EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    // One million 'a' fed in uneven chunks: streaming gives the same digest.
    Sha256 h;
    std::string chunk(997, 'a');
    size_t left = 1'000'000;
    while (left > 0) {
        size_t n = std::min(left, chunk.size());
        h.update(chunk.data(), n);
        left -= n;
    }
    EXPECT_EQ(h.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, File) {
    test::TempDir dir;
    test::write_file(dir / "f", "abc");
    EXPECT_EQ(*sha256_file(dir / "f"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sha256_file(dir / "missing").error().code, ErrorCode::NotFound);
}

TEST(Hmac, Rfc4231Vectors) {
    EXPECT_EQ(hmac_sha256_hex(std::string(20, '\x0b'), "Hi There"),
              "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Hash, ConstantTimeEqualAndTokens) {
    EXPECT_TRUE(constant_time_equal("abc", "abc"));
    EXPECT_FALSE(constant_time_equal("abc", "abd"));
    EXPECT_FALSE(constant_time_equal("abc", "abcd"));
    auto t1 = random_token(32), t2 = random_token(32);
    EXPECT_EQ(t1.size(), 43u);
    EXPECT_NE(t1, t2);
    EXPECT_EQ(t1.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
              std::string::npos);
    EXPECT_TRUE(is_sha256_hex(sha256_hex("x")));
    EXPECT_FALSE(is_sha256_hex("ABC"));
}

TEST(Fs, AtomicWriteReplacesAndLeavesNoTemp) {
    test::TempDir dir;
    auto p = dir / "state.json";
    ASSERT_TRUE(fs::atomic_write(p, "one").ok());
    ASSERT_TRUE(fs::atomic_write(p, "two").ok());
    EXPECT_EQ(test::read_file(p), "two");
    int files = 0;
    for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
    EXPECT_EQ(files, 1);
    auto bad = fs::atomic_write(dir / "no-such-dir" / "x", "y");
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code, ErrorCode::NotFound);
}

TEST(Fs, DiskSpaceAndDirectorySize) {
    test::TempDir dir;
    auto space = fs::disk_space(dir.path());
    ASSERT_TRUE(space.ok());
    EXPECT_GT(space->capacity_bytes, 0u);
    EXPECT_LE(space->free_bytes, space->capacity_bytes);
    EXPECT_FALSE(fs::disk_space(dir / "missing").ok());
    std::filesystem::create_directories(dir / "a" / "b");
    test::write_file(dir / "a" / "x", std::string(100, 'x'));
    test::write_file(dir / "a" / "b" / "y", std::string(50, 'y'));
    EXPECT_EQ(fs::directory_size(dir.path()), 150u);
    EXPECT_EQ(fs::directory_size(dir / "missing"), 0u);
}

TEST(Fs, PlainFileNames) {
    EXPECT_TRUE(fs::is_plain_file_name("out.mp4"));
    EXPECT_FALSE(fs::is_plain_file_name(""));
    EXPECT_FALSE(fs::is_plain_file_name(".."));
    EXPECT_FALSE(fs::is_plain_file_name("a/b"));
    EXPECT_FALSE(fs::is_plain_file_name(std::string("a\0b", 3)));
}

TEST(ErrorModel, EnvelopeRoundTripAndStatuses) {
    Error e = Error::invalid("video.crf", "crf must be 0..51");
    auto j = e.to_json();
    EXPECT_EQ(j["error"]["code"], "INVALID_ARGUMENT");
    EXPECT_EQ(j["error"]["details"]["field"], "video.crf");
    EXPECT_EQ(j["error"]["retryable"], false);
    auto back = Error::from_json(j);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->code, ErrorCode::InvalidArgument);
    EXPECT_EQ(back->message, "crf must be 0..51");
    EXPECT_EQ(http_status(ErrorCode::LeaseLost), 409);
    EXPECT_EQ(http_status(ErrorCode::InsufficientStorage), 507);
    EXPECT_EQ(http_status(ErrorCode::ResultGone), 410);
    EXPECT_EQ(error_code_from_name("RESULT_GONE"), ErrorCode::ResultGone);
    EXPECT_FALSE(error_code_from_name("NOPE").has_value());
    EXPECT_FALSE(Error::from_json(nlohmann::json{{"x", 1}}).has_value());
}

namespace {
Result<int> half(int x) {
    if (x % 2) return Error::invalid("x", "odd");
    return x / 2;
}
Result<int> quarter(int x) {
    auto h = half(x);
    DISTCONV_TRY(h);
    return half(*h);
}
}  // namespace

TEST(ErrorModel, ResultAndTry) {
    EXPECT_EQ(*quarter(8), 2);
    auto r = quarter(6);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().details["field"], "x");
    EXPECT_EQ(quarter(5).value_or(-1), -1);
}

TEST(Time, Rfc3339) {
    EXPECT_EQ(format_rfc3339_ms(1771588800000), "2026-02-20T12:00:00Z");
    EXPECT_EQ(format_rfc3339_ms(1771588800123, true), "2026-02-20T12:00:00.123Z");
    auto t = parse_rfc3339("2026-02-20T12:00:00.123Z");
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(to_unix_ms(*t), 1771588800123);
    EXPECT_FALSE(parse_rfc3339("2026-02-20 12:00").has_value());
    EXPECT_FALSE(parse_rfc3339("2026-13-20T12:00:00Z").has_value());
    EXPECT_FALSE(parse_rfc3339("2026-02-20T12:00:00+02:00").has_value());
}

TEST(Logging, RedactsSecrets) {
    EXPECT_EQ(logging::redact("Authorization: Bearer abc.def"), "Authorization: Bearer ***");
    EXPECT_EQ(logging::redact("key dcv_AbCdEf0123456789xyz created"), "key dcv_*** created");
    EXPECT_EQ(logging::redact("GET /x?token=s3cr3t&y=1"), "GET /x?token=***&y=1");
    EXPECT_EQ(logging::redact("https://user:pw@host/p"), "https://user:***@host/p");
    EXPECT_EQ(logging::redact("plain message"), "plain message");
}

TEST(Logging, JsonLinesFormatterRedacts) {
    std::ostringstream out;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    sink->set_formatter(logging::make_formatter(logging::Format::Json, "test"));
    spdlog::logger logger("t", sink);
    logger.info("claimed job {} with Bearer {}", "J1", "dcv_secretsecretsecret");
    auto line = out.str();
    ASSERT_FALSE(line.empty());
    EXPECT_EQ(line.back(), '\n');
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["level"], "info");
    EXPECT_EQ(j["logger"], "test");
    EXPECT_EQ(j["msg"], "claimed job J1 with Bearer ***");
    EXPECT_TRUE(parse_rfc3339(j["ts"].get<std::string>()).has_value());
}

// A forged line: a request path decoded from "%0a" carries a newline and a fake record after it.
TEST(Logging, ControlCharactersCannotForgeALine) {
    const std::string path =
        "/api/v1/jobs/x\n2026-01-01T00:00:00Z info [distconv-dispatch] admin key created\r\x1b[2J";
    for (auto format : {logging::Format::Text, logging::Format::Json}) {
        std::ostringstream out;
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
        sink->set_formatter(logging::make_formatter(format, "test"));
        spdlog::logger logger("t", sink);
        logging::set_context("path", path);
        logger.info("GET {} -> 404", path);
        logging::clear_context();
        const auto text = out.str();
        ASSERT_FALSE(text.empty());
        EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;  // one record, one line
        EXPECT_EQ(text.find('\r'), std::string::npos) << text;
        EXPECT_EQ(text.find('\x1b'), std::string::npos) << text;
        if (format == logging::Format::Json) {
            auto j = nlohmann::json::parse(text);
            EXPECT_EQ(j["msg"], "GET " + path + " -> 404");  // the JSON value keeps the text, escaped
            EXPECT_EQ(j["path"], path);
        } else {
            EXPECT_NE(text.find("x\\n2026-01-01"), std::string::npos) << text;
            EXPECT_NE(text.find("\\r\\x1b[2J"), std::string::npos) << text;
        }
    }
    EXPECT_EQ(logging::escape_control("a\tb\x01"
                                      "c\x7f"),
              "a\\tb\\x01c\\x7f");
    EXPECT_EQ(logging::escape_control("plain text / ok"), "plain text / ok");
}

TEST(Logging, LevelAndFormatParsing) {
    EXPECT_TRUE(logging::parse_level("debug").ok());
    EXPECT_EQ(logging::parse_level("loud").error().details["field"], "log-level");
    EXPECT_EQ(*logging::parse_format("json"), logging::Format::Json);
    EXPECT_FALSE(logging::parse_format("xml").ok());
}

#include "common/process.hpp"

TEST(Process, CapturesOutputAndExitCode) {
    auto r = process::run({"sh", "-c", "echo out; echo err >&2; exit 3"});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->exit_code, 3);
    EXPECT_EQ(r->out, "out\n");
    EXPECT_EQ(r->err, "err\n");
    EXPECT_FALSE(r->timed_out);
}

TEST(Process, TimeoutKills) {
    auto r = process::run({"sleep", "30"}, {std::chrono::milliseconds(100), 1024});
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->timed_out);
    EXPECT_EQ(r->exit_code, 128 + 9);
}

TEST(Process, MissingProgramIsAnError) {
    auto r = process::run({"/nonexistent/program"});
    // posix_spawnp reports a missing program either as an error or as exit code 127.
    if (r.ok()) {
        EXPECT_EQ(r->exit_code, 127);
    } else {
        EXPECT_EQ(r.error().code, ErrorCode::Unavailable);
    }
}

// The child reads its own nice value (field 19 of /proc/self/stat) until the parent has set it, at
// most about 2 s, and prints it.
TEST(Process, ChildNiceIsBelowTheParents) {
    const std::string script =
        "for i in $(seq 40); do n=$(cut -d' ' -f19 /proc/$$/stat); [ \"$n\" != \"$1\" ] && break; "
        "sleep 0.05; done; echo $n";
    auto own = [] {
        std::ifstream in("/proc/self/stat");
        std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::istringstream fields(stat.substr(stat.rfind(')') + 2));
        std::string f;
        for (int i = 3; i <= 19; ++i) fields >> f;  // fields after the command name start at 3
        return std::stoi(f);
    }();
    process::set_child_nice(7);
    auto r = process::run({"sh", "-c", script, "sh", std::to_string(own)});
    process::set_child_nice(0);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->out, std::to_string(std::min(19, own + 7)) + "\n");
    auto same = process::run({"sh", "-c", "cut -d' ' -f19 /proc/$$/stat"});
    ASSERT_TRUE(same.ok());
    EXPECT_EQ(same->out, std::to_string(own) + "\n") << "0: the parent's own priority";
}

TEST(Process, TailLines) {
    EXPECT_EQ(process::tail_lines("a\nb\n\nc\nd\n", 2), "c\nd");
    EXPECT_EQ(process::tail_lines("", 3), "");
}
