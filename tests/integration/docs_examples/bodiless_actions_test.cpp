// Every action of protocol/openapi.yaml that takes no body (retry, cancel, drain, undrain, benchmark,
// key revoke) answers at once against the real distconv-dispatch however curl frames the empty body:
// none at all (`curl -X POST`: no Content-Length, which the server once read as "until the client
// closes" and so hung until its 60 s read timeout), `-d ''`, `-H 'Content-Length: 0'`; and the
// connection then serves the next request. A chunked empty body is refused at once: the server takes
// chunked bodies on the upload routes only (400 INVALID_ARGUMENT on field Content-Length, connection
// closed), and the action does not happen.

#include "tests/integration/docs_examples/live_dispatch.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <regex>
#include <set>
#include <sstream>

namespace distconv::docs {
namespace {

namespace stdfs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr auto k_at_once = 5s;  // a bodiless action takes milliseconds; a hang is curl's --max-time
constexpr int k_curl_max_seconds = 10;

// "POST /jobs/{job_id}/retry" for each POST, PUT, PATCH and DELETE of the spec without a requestBody.
// The spec is written two spaces per level: paths at 2, methods at 4, their fields at 6.
std::set<std::string> bodiless_operations(const std::string& yaml) {
    static const std::regex path_re(R"(^  (/[^:]*):\s*$)");
    static const std::regex method_re(R"(^    (post|put|patch|delete):\s*$)");
    std::set<std::string> out;
    std::istringstream in(yaml);
    std::string line, path, op;
    bool body = false, in_paths = false;
    auto close = [&] {
        if (!op.empty() && !body) out.insert(op);
        op.clear();
    };
    while (std::getline(in, line)) {
        if (line.empty() || line.find_first_not_of(' ') == std::string::npos) continue;
        size_t indent = line.find_first_not_of(' ');
        if (indent == 0) {
            close();
            in_paths = line.rfind("paths:", 0) == 0;
            continue;
        }
        if (!in_paths) continue;
        std::smatch m;
        if (indent <= 4) close();
        if (std::regex_match(line, m, path_re)) {
            path = m[1].str();
        } else if (std::regex_match(line, m, method_re)) {
            std::string method = m[1].str();
            for (auto& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            op = method + " " + path;
            body = false;
        } else if (!op.empty() && indent == 6 && line.compare(6, 12, "requestBody:") == 0) {
            body = true;
        }
    }
    close();
    return out;
}

// One bodiless action: how to make a fresh target for it, and whether it took effect.
struct Target {
    std::string path;  // under /api/v1
    std::string id;
    std::string key;  // a key the action revokes
};
struct Action {
    std::string operation;  // as the spec names it
    bool admin = false;
    int status = 0;  // the documented answer; 0: any 2xx
    std::function<Target(LiveDispatch&)> prepare;
    std::function<bool(LiveDispatch&, const Target&)> happened;  // empty: nothing to see but the answer
};

std::vector<Action> actions(const stdfs::path& clip) {
    return {
        {"POST /jobs/{job_id}/retry", false, 202,
         [clip](LiveDispatch& s) {
             auto id = s.submit(clip);
             s.cancel(id);
             return Target{"/jobs/" + id + "/retry", id, ""};
         },
         [](LiveDispatch& s, const Target& t) { return s.state(t.id) == "queued"; }},
        {"DELETE /jobs/{job_id}", false, 202,
         [clip](LiveDispatch& s) {
             auto id = s.submit(clip);
             return Target{"/jobs/" + id, id, ""};
         },
         [](LiveDispatch& s, const Target& t) { return s.state(t.id) == "canceled"; }},
        {"POST /engines/{engine_id}/drain", true, 200,
         [](LiveDispatch& s) {
             s.set_drain(s.engine_id(), false);
             return Target{"/engines/" + s.engine_id() + "/drain", s.engine_id(), ""};
         },
         [](LiveDispatch& s, const Target& t) {
             return s.engine_info(t.id).value("drain_requested", false);
         }},
        {"POST /engines/{engine_id}/undrain", true, 200,
         [](LiveDispatch& s) {
             s.set_drain(s.engine_id(), true);
             return Target{"/engines/" + s.engine_id() + "/undrain", s.engine_id(), ""};
         },
         [](LiveDispatch& s, const Target& t) {
             return !s.engine_info(t.id).value("drain_requested", true);
         }},
        {"POST /engines/{engine_id}/benchmark", true, 202,
         [](LiveDispatch& s) {
             s.heartbeat();  // takes any earlier request
             return Target{"/engines/" + s.engine_id() + "/benchmark", s.engine_id(), ""};
         },
         [](LiveDispatch& s, const Target&) { return s.heartbeat().value("rerun_benchmark", false); }},
        // The spec says 204; the server answers 200 with the revoked key. Either is an answer at once.
        {"DELETE /keys/{key_id}", true, 0,
         [](LiveDispatch& s) {
             static int n = 0;
             auto [id, key] = s.create_user_key("revoke-me-" + std::to_string(++n));
             return Target{"/keys/" + id, id, key};
         },
         [](LiveDispatch& s, const Target& t) { return !s.key_works(t.key); }},
        // Sign-out without a session cookie only clears the cookie: the answer is all there is to see.
        {"DELETE /sessions/current", false, 204,
         [](LiveDispatch&) {
             return Target{"/sessions/current", "", ""};
         },
         nullptr},
    };
}

struct Framing {
    std::string name;
    std::vector<std::string> args;
    bool refused = false;  // chunked: 400 on a route that is no upload
};

std::vector<Framing> framings(const std::string& method) {
    std::vector<std::string> data_empty = method == "POST" ? std::vector<std::string>{"-d", ""}
                                                           : std::vector<std::string>{"-X", method, "-d", ""};
    return {
        {"no body (curl -X " + method + ")", {"-X", method}, false},
        {"-d ''", data_empty, false},
        {"-H 'Content-Length: 0'", {"-X", method, "-H", "Content-Length: 0"}, false},
        {"-H 'Transfer-Encoding: chunked', nothing sent",
         {"-X", method, "-H", "Transfer-Encoding: chunked"},
         true},
        {"-H 'Transfer-Encoding: chunked' -d '' (the empty last chunk)",
         {"-X", method, "-H", "Transfer-Encoding: chunked", "-d", ""},
         true},
    };
}

TEST(BodilessActions, AnswerAtOnceHoweverCurlFramesTheEmptyBody) {
    test::TempDir dir;
    std::string curl = find_program("curl");
    ASSERT_FALSE(curl.empty()) << "curl is not installed";
    auto clip = dir / "clip.mp4";
    ASSERT_TRUE(test::make_test_clip(clip, 1.0, 160, 120));
    LiveDispatch server(dir.path(), "dispatch");

    // The table covers exactly the spec's bodiless operations, so a new one is checked too.
    auto spec =
        bodiless_operations(test::read_file(stdfs::path(DISTCONV_SOURCE_DIR) / "protocol/openapi.yaml"));
    std::set<std::string> covered;
    for (const auto& a : actions(clip)) covered.insert(a.operation);
    for (const auto& op : spec)
        EXPECT_TRUE(covered.count(op))
            << "protocol/openapi.yaml has `" << op
            << "` without a request body, which this test does not check: add it to "
               "actions()";
    for (const auto& op : covered)
        EXPECT_TRUE(spec.count(op)) << "`" << op
                                    << "` is no bodiless operation of protocol/openapi.yaml any more";

    int calls = 0;
    for (const auto& action : actions(clip)) {
        std::string method = action.operation.substr(0, action.operation.find(' '));
        for (const auto& framing : framings(method)) {
            SCOPED_TRACE(action.operation + " framed as " + framing.name);
            Target target;
            try {
                target = action.prepare(server);
            } catch (const std::exception& e) {
                ADD_FAILURE() << "preparing the target failed: " << e.what();
                continue;
            }
            auto here = dir / ("call-" + std::to_string(++calls));
            stdfs::create_directories(here);
            std::string base = "http://127.0.0.1:" + std::to_string(server.port());
            std::vector<std::string> argv{
                curl,
                "-q",
                "-sS",
                "--noproxy",
                "*",
                "--max-time",
                std::to_string(k_curl_max_seconds),
                "-o",
                (here / "body").string(),
                "-D",
                (here / "headers").string(),
                "-w",
                "%{http_code} %{num_connects}\\n",
                "-H",
                "Authorization: Bearer " + (action.admin ? server.admin_key() : server.user_key())};
            argv.insert(argv.end(), framing.args.begin(), framing.args.end());
            argv.push_back(base + "/api/v1" + target.path);
            if (!framing.refused)  // the same connection then serves the next request
                argv.insert(argv.end(), {"--next", "-sS", "-o", "/dev/null", "-w",
                                         "%{http_code} %{num_connects}\\n", base + "/healthz"});
            auto f = run_bounded(argv, {"PATH=/usr/bin:/bin", "HOME=" + here.string()}, here, here / "stdout",
                                 here / "stderr", 30s);
            std::string out = test::read_file(here / "stdout");
            std::string headers = test::read_file(here / "headers");
            std::string body = test::read_file(here / "body");
            std::string what = "curl exit " + std::to_string(f.exit_code) + " after " +
                               std::to_string(f.took.count()) + " ms; -w: " + out + "; headers: " + headers +
                               "body: " + body + "; stderr: " + test::read_file(here / "stderr");
            ASSERT_FALSE(f.timed_out) << what;
            EXPECT_NE(f.exit_code, 28)
                << "no answer within " << k_curl_max_seconds << " s: the server waits for a body\n"
                << what;
            EXPECT_EQ(f.exit_code, 0) << what;
            EXPECT_LT(f.took, k_at_once) << what;
            std::istringstream lines(out);
            int status = 0, connects = -1, next_status = 0, next_connects = -1;
            lines >> status >> connects >> next_status >> next_connects;
            bool happened = false;
            try {
                happened = !action.happened || action.happened(server, target);
            } catch (const std::exception& e) {
                ADD_FAILURE() << "reading the outcome failed: " << e.what();
            }
            if (framing.refused) {
                EXPECT_EQ(status, 400) << what;
                auto j = json::parse(body, nullptr, false);
                ASSERT_TRUE(j.is_object() && j.contains("error")) << what;
                EXPECT_EQ(j["error"].value("code", ""), "INVALID_ARGUMENT") << what;
                EXPECT_EQ(j["error"]["details"].value("field", ""), "Content-Length") << what;
                EXPECT_TRUE(std::regex_search(headers, std::regex("connection: *close", std::regex::icase)))
                    << what;
                EXPECT_FALSE(action.happened && happened) << "a refused request must not act";
                continue;
            }
            if (action.status)
                EXPECT_EQ(status, action.status) << what;
            else
                EXPECT_TRUE(status >= 200 && status < 300) << what;
            EXPECT_TRUE(happened) << "the action answered but did not take effect\n" << what;
            EXPECT_EQ(next_status, 200) << "the next request on the connection\n" << what;
            EXPECT_EQ(next_connects, 0) << "the connection was not kept for the next request\n" << what;
        }
    }
}

TEST(BodilessActions, SpecScanFindsOperationsWithoutARequestBody) {
    std::string yaml =
        "openapi: 3.1.0\n"
        "paths:\n"
        "  /a/{id}/go:\n"
        "    parameters:\n"
        "      - $ref: '#/x'\n"
        "    post:\n"
        "      summary: no body\n"
        "      responses:\n"
        "        '200': {description: ok}\n"
        "  /b:\n"
        "    post:\n"
        "      requestBody:\n"
        "        required: true\n"
        "    delete:\n"
        "      summary: gone\n"
        "    get:\n"
        "      summary: read\n"
        "components:\n"
        "  x:\n"
        "    post:\n";
    EXPECT_EQ(bodiless_operations(yaml), (std::set<std::string>{"POST /a/{id}/go", "DELETE /b"}));
}

}  // namespace
}  // namespace distconv::docs
