// What the engine refuses to act on (assignment_check.hpp), field by field.
#include "transcoding_engine/assignment_check.hpp"
#include "protocol/engines.hpp"

#include <gtest/gtest.h>

#include <functional>

using namespace distconv;
using namespace distconv::engine;

namespace {

const std::string k_server = "https://dispatch.example:8443";

protocol::Assignment valid(protocol::TransferMode mode = protocol::TransferMode::File) {
    protocol::Assignment a;
    a.assignment_id = "01HQ3N0B5C7E9G1J3M5N7Q9S1T";
    a.job_id = "01HQ3K6Z8X5Y2C9V7B4N1M0P8R";
    a.fencing_token = 2;
    a.source_format = "matroska";
    a.transfer_mode = mode;
    a.ffmpeg_argv = protocol::assignment_argv(a.options, mode, a.source_format).value();
    a.source_url = k_server + "/api/v1/assignments/" + a.assignment_id + "/source";
    a.source_size = 1000;
    a.output_container = "mp4";
    a.credential = "dca1." + a.assignment_id + ".2.1800000000000.abcdef";
    return a;
}

void expect_refused(const protocol::Assignment& a, const std::string& field) {
    auto st = check_assignment(a, k_server);
    ASSERT_FALSE(st.ok()) << field;
    EXPECT_EQ(st.error().details["field"], field);
    EXPECT_EQ(st.error().message.rfind("assignment refused: " + field, 0), 0u) << st.error().message;
}

}  // namespace

TEST(AssignmentCheck, AValidAssignmentPassesInBothModesAndWithARelativeSourceUrl) {
    EXPECT_TRUE(check_assignment(valid(), k_server).ok());
    EXPECT_TRUE(check_assignment(valid(protocol::TransferMode::Stream), k_server).ok());
    auto a = valid();
    a.source_url = "/api/v1/assignments/" + a.assignment_id + "/source";
    EXPECT_TRUE(check_assignment(a, k_server).ok());
    // Behind a TLS-terminating proxy the server sees http; the host and port are what count.
    a.source_url = "http://DISPATCH.example:8443/api/v1/assignments/" + a.assignment_id + "/source";
    EXPECT_TRUE(check_assignment(a, k_server).ok());
    a.credential.clear();  // a server that issues none: the engine key is used
    EXPECT_TRUE(check_assignment(a, k_server).ok());
}

TEST(AssignmentCheck, IdsThatCouldNameAnotherPathAreRefused) {
    for (const std::string& id :
         std::vector<std::string>{"../../victim", "..", "/etc", "01HQ3N0B5C7E9G1J3M5N7Q9S1/", "",
                                  "01HQ3N0B5C7E9G1J3M5N7Q9S1TX", "01HQ3N0B5C7E9G1J3M5N7Q9S1%"}) {
        auto a = valid();
        a.assignment_id = id;
        expect_refused(a, "assignment_id");
        a = valid();
        a.job_id = id;
        expect_refused(a, "job_id");
    }
}

TEST(AssignmentCheck, TheSourceMustBeThisAssignmentsOnTheConfiguredServer) {
    const std::string path = "/api/v1/assignments/01HQ3N0B5C7E9G1J3M5N7Q9S1T/source";
    for (const std::string& url : std::vector<std::string>{
             "https://attacker.example:8443" + path, "https://dispatch.example:8444" + path,
             "https://dispatch.example" + path, "https://user@dispatch.example:8443" + path,
             "https://dispatch.example:8443@attacker.example" + path,
             "https://dispatch.example:8443/api/v1/assignments/01HQ3K6Z8X5Y2C9V7B4N1M0P8R/source",
             "https://dispatch.example:8443" + path + "?x=1", "file:///etc/passwd", "/etc/passwd",
             "ftp://dispatch.example:8443" + path, ""}) {
        auto a = valid();
        a.source_url = url;
        expect_refused(a, "source_url");
    }
}

TEST(AssignmentCheck, TheArgvMustBeWhatTheEngineBuildsItself) {
    using Edit = std::function<void(std::vector<std::string>&)>;
    const std::vector<std::pair<std::string, Edit>> edits = {
        {"extra input",
         [](auto& v) {
             v.insert(v.begin(), {"-i", "/etc/passwd"});
         }},
        {"output elsewhere", [](auto& v) { v.back() = "/tmp/evil.mp4"; }},
        {"lavfi input",
         [](auto& v) {
             v.insert(v.begin(), {"-f", "lavfi", "-i", "testsrc"});
         }},
        {"no protocol whitelist",
         [](auto& v) {
             auto it = std::find(v.begin(), v.end(), "-protocol_whitelist");
             v.erase(it, it + 2);
         }},
        {"wider protocol whitelist",
         [](auto& v) {
             *(std::find(v.begin(), v.end(), "-protocol_whitelist") + 1) = "file,http,https,tcp,tls";
         }},
        {"another demuxer",
         [](auto& v) { *(std::find(v.begin(), v.end(), "-format_whitelist") + 1) = "hls"; }},
        {"a filter",
         [](auto& v) {
             v.insert(v.end() - 3, {"-vf", "movie=/etc/passwd"});
         }},
        {"empty", [](auto& v) { v.clear(); }},
    };
    for (const auto& [what, edit] : edits) {
        auto a = valid();
        edit(a.ffmpeg_argv);
        SCOPED_TRACE(what);
        expect_refused(a, "ffmpeg_argv");
    }
    // The stream-mode argv does not pass for a file-mode assignment (the protocols differ).
    auto a = valid();
    a.ffmpeg_argv = valid(protocol::TransferMode::Stream).ffmpeg_argv;
    expect_refused(a, "ffmpeg_argv");
}

TEST(AssignmentCheck, FormatContainerOptionsAndCredentialAreChecked) {
    for (const std::string& f : std::vector<std::string>{"hls", "concat", "", "mov,mp4", "lavfi"}) {
        auto a = valid();
        a.source_format = f;
        expect_refused(a, "source_format");
    }
    auto a = valid();
    a.output_container = "exe";
    expect_refused(a, "output_container");
    a = valid();
    a.output_container = "matroska";  // known, but not the job's
    expect_refused(a, "output_container");
    a = valid();
    a.options.extra_args = std::vector<std::string>{"-i", "/etc/passwd"};
    expect_refused(a, "options");
    for (const std::string& c : std::vector<std::string>{"dca1.x\r\nX-Evil: 1", "has space",
                                                         std::string(600, 'a'), std::string("nul\0x", 5)}) {
        a = valid();
        a.credential = c;
        expect_refused(a, "credential");
    }
    a = valid();
    a.fencing_token = 0;
    expect_refused(a, "fencing_token");
}

TEST(AssignmentCheck, RefusalsNeverCarryControlCharactersIntoLogsOrReports) {
    auto a = valid();
    a.source_format = "x\n2026-01-01 info [distconv-engine] FORGED";
    auto st = check_assignment(a, k_server);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().message.find('\n'), std::string::npos) << st.error().message;
    EXPECT_EQ(printable("01J\r\nX"), "01J\\x0d\\x0aX");
    EXPECT_EQ(printable(std::string(100, 'a')), std::string(64, 'a') + "...");
}
