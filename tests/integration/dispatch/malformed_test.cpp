// Malformed requests: each answers the expected 4xx with the error envelope, the server stays up,
// and nothing stored changes (jobs, events and pool files are the same before and after).

#include "tests/integration/dispatch/server_fixture.hpp"
#include "tests/support/must.hpp"

#include <gtest/gtest.h>

namespace distconv::itest {
namespace {

using distconv::test::must;

using dispatch::Role;

struct Bad {
    std::string name;
    std::string method;
    std::string path;
    std::string body;
    std::string content_type;
    http::HeaderList headers;
    long status;
    std::string code;
};

TEST(MalformedTest, FourxxWithEnvelopeAndNothingChanges) {
    ASSERT_FALSE(small_clip_bytes().empty());
    test::TempDir dir;
    InProcessServer server(dir / "data");
    std::string key = server.key("alice", Role::User);
    std::string admin_key = server.key("root", Role::Admin);
    auto c = server.client(key);
    auto admin = server.client(admin_key);
    std::string queued = body_json(submit_multipart(c, small_clip_bytes(), json::object()))["job_id"];
    auto awaiting_r = call(c, "POST", "/jobs", json{{"source", {{"size", 1000}}}}.dump(), "application/json");
    std::string awaiting = body_json(awaiting_r)["job_id"];
    ASSERT_FALSE(queued.empty());
    ASSERT_FALSE(awaiting.empty());

    // The rescue loop explains, once, why the queued job waits (no engine yet); let that settle first
    // so the snapshots compare only what the malformed requests could have changed.
    ASSERT_TRUE(test::wait_until(
        [&] {
            auto j = body_json(call(admin, "GET", "/jobs/" + queued));
            return j.value("message", "").rfind("waiting: no online engine", 0) == 0;
        },
        std::chrono::seconds(10)));
    auto snapshot = [&] {
        std::string s = call(admin, "GET", "/jobs?all=true&limit=500").body;
        for (const auto& id : {queued, awaiting}) {
            s += call(admin, "GET", "/jobs/" + id).body;
            s += " events:" + std::to_string(must(server.store().job_events(id)).size());
        }
        for (const auto& f : files_under(server.config().pools.front().root)) s += "\n" + f;
        s += call(admin, "GET", "/keys").body;
        return s;
    };
    std::string before = snapshot();

    const std::string J = "application/json";
    const std::string M = multipart_type();
    std::string big_json = "{\"output_filename\": \"" + std::string(1100 * 1024, 'a') + "\"}";
    std::string src = "/jobs/" + awaiting + "/source";
    auto part = [](std::string name, std::string content, std::string filename = "") {
        return Part{std::move(name), std::move(content), std::move(filename)};
    };
    std::vector<Bad> cases = {
        {"not JSON", "POST", "/jobs", "{\"source\": ", J, {}, 400, "INVALID_ARGUMENT"},
        {"JSON array", "POST", "/jobs", "[1, 2]", J, {}, 400, "INVALID_ARGUMENT"},
        {"priority wrong type",
         "POST",
         "/jobs",
         R"({"priority": "high", "source": {"size": 10}})",
         J,
         {},
         400,
         "INVALID_ARGUMENT"},
        {"priority out of range",
         "POST",
         "/jobs",
         R"({"priority": 1000, "source": {"size": 10}})",
         J,
         {},
         400,
         "INVALID_ARGUMENT"},
        {"unknown field",
         "POST",
         "/jobs",
         R"({"colour": "red", "source": {"size": 10}})",
         J,
         {},
         400,
         "INVALID_ARGUMENT"},
        {"unknown video field",
         "POST",
         "/jobs",
         R"({"video": {"sharpness": 3}, "source": {"size": 10}})",
         J,
         {},
         400,
         "INVALID_ARGUMENT"},
        {"crf wrong type",
         "POST",
         "/jobs",
         R"({"video": {"crf": "x"}, "source": {"size": 10}})",
         J,
         {},
         400,
         "INVALID_ARGUMENT"},
        {"negative size", "POST", "/jobs", R"({"source": {"size": -5}})", J, {}, 400, "INVALID_ARGUMENT"},
        {"bad sha256",
         "POST",
         "/jobs",
         R"({"source": {"size": 10, "sha256": "xyz"}})",
         J,
         {},
         400,
         "INVALID_ARGUMENT"},
        {"path in output_filename",
         "POST",
         "/jobs",
         R"({"output_filename": "../x.mp4", "source": {"size": 10}})",
         J,
         {},
         400,
         "INVALID_ARGUMENT"},
        {"file: source_url",
         "POST",
         "/jobs",
         R"({"source_url": "file:///etc/passwd"})",
         J,
         {},
         400,
         "INVALID_ARGUMENT"},
        {"source_url host not allowed",
         "POST",
         "/jobs",
         R"({"source_url": "http://example.com/a.mp4"})",
         J,
         {},
         403,
         "FORBIDDEN"},
        {"encoders wrong type",
         "POST",
         "/jobs",
         R"({"requirements": {"encoders": "libx265"}, "source": {"size": 10}})",
         J,
         {},
         400,
         "INVALID_ARGUMENT"},
        {"oversized JSON body", "POST", "/jobs", big_json, J, {}, 413, "FILE_TOO_LARGE"},
        {"wrong content type", "POST", "/jobs", "hello", "text/plain", {}, 415, "UNSUPPORTED_MEDIA_TYPE"},
        {"bad Idempotency-Key",
         "POST",
         "/jobs",
         R"({"source": {"size": 10}})",
         J,
         {{"Idempotency-Key", std::string(300, 'k')}},
         400,
         "INVALID_ARGUMENT"},
        {"multipart without file",
         "POST",
         "/jobs",
         multipart_body({part("job", "{}")}),
         M,
         {},
         400,
         "INVALID_ARGUMENT"},
        {"multipart without job",
         "POST",
         "/jobs",
         multipart_body({part("file", small_clip_bytes(), "a.mp4")}),
         M,
         {},
         400,
         "INVALID_ARGUMENT"},
        {"multipart unknown part",
         "POST",
         "/jobs",
         multipart_body({part("job", "{}"), part("extra", "x"), part("file", small_clip_bytes(), "a.mp4")}),
         M,
         {},
         400,
         "INVALID_ARGUMENT"},
        {"multipart job not JSON",
         "POST",
         "/jobs",
         multipart_body({part("job", "{nope"), part("file", small_clip_bytes(), "a.mp4")}),
         M,
         {},
         400,
         "INVALID_ARGUMENT"},
        {"multipart job unknown field",
         "POST",
         "/jobs",
         multipart_body({part("job", R"({"colour":1})"), part("file", small_clip_bytes(), "a.mp4")}),
         M,
         {},
         400,
         "INVALID_ARGUMENT"},
        {"multipart file not media",
         "POST",
         "/jobs",
         multipart_body({part("job", "{}"), part("file", std::string(5000, 'z'), "a.mp4")}),
         M,
         {},
         415,
         "UNSUPPORTED_MEDIA_TYPE"},
        {"multipart cut off",
         "POST",
         "/jobs",
         multipart_body({part("job", "{}"), part("file", "abc", "a.mp4")}).substr(0, 150),
         M,
         {},
         400,
         "INVALID_ARGUMENT"},
        {"limit zero", "GET", "/jobs?limit=0", "", "", {}, 400, "INVALID_ARGUMENT"},
        {"limit not a number", "GET", "/jobs?limit=ten", "", "", {}, 400, "INVALID_ARGUMENT"},
        {"limit too big", "GET", "/jobs?limit=100000", "", "", {}, 400, "INVALID_ARGUMENT"},
        {"bad cursor", "GET", "/jobs?cursor=not-a-cursor", "", "", {}, 400, "INVALID_ARGUMENT"},
        {"bad state filter", "GET", "/jobs?state=sleeping", "", "", {}, 400, "INVALID_ARGUMENT"},
        {"reversed Content-Range",
         "PUT",
         src,
         "0123456789",
         "application/octet-stream",
         {{"Content-Range", "bytes 9-0/1000"}},
         400,
         "INVALID_ARGUMENT"},
        {"garbage Content-Range",
         "PUT",
         src,
         "0123456789",
         "application/octet-stream",
         {{"Content-Range", "lots"}},
         400,
         "INVALID_ARGUMENT"},
        {"Content-Range vs length",
         "PUT",
         src,
         "0123456789",
         "application/octet-stream",
         {{"Content-Range", "bytes 0-19/1000"}},
         400,
         "INVALID_ARGUMENT"},
        {"Content-Range total vs size",
         "PUT",
         src,
         "0123456789",
         "application/octet-stream",
         {{"Content-Range", "bytes 0-9/2000"}},
         400,
         "INVALID_ARGUMENT"},
        {"upload past declared size",
         "PUT",
         src,
         std::string(2000, 'x'),
         "application/octet-stream",
         {},
         400,
         "INVALID_ARGUMENT"},
        {"upload at wrong offset",
         "PUT",
         src,
         "0123456789",
         "application/octet-stream",
         {{"Content-Range", "bytes 10-19/1000"}},
         409,
         "CONFLICT"},
        {"upload to a queued job",
         "PUT",
         "/jobs/" + queued + "/source",
         "0123456789",
         "application/octet-stream",
         {},
         409,
         "CONFLICT"},
        {"retry a queued job", "POST", "/jobs/" + queued + "/retry", "", "", {}, 409, "CONFLICT"},
        {"unparsable Range",
         "GET",
         "/jobs/" + queued + "/result",
         "",
         "",
         {{"Range", "bytes=x-y"}},
         416,
         "RANGE_NOT_SATISFIABLE"},
        {"result not ready",
         "GET",
         "/jobs/" + queued + "/result",
         "",
         "",
         {{"Range", "bytes=0-10"}},
         409,
         "JOB_NOT_READY"},
        {"unknown job", "GET", "/jobs/01J00000000000000000000000", "", "", {}, 404, "JOB_NOT_FOUND"},
        {"bad job id", "GET", "/jobs/bad!id", "", "", {}, 404, "NOT_FOUND"},
        {"unknown route", "GET", "/nothing-here", "", "", {}, 404, "NOT_FOUND"},
        {"wrong method on /jobs", "PATCH", "/jobs", "{}", J, {}, 405, "METHOD_NOT_ALLOWED"},
        {"wrong method on a job", "PUT", "/jobs/" + queued, "{}", J, {}, 405, "METHOD_NOT_ALLOWED"},
        {"wrong method on presets", "DELETE", "/presets", "", "", {}, 405, "METHOD_NOT_ALLOWED"},
        {"oversized body on retry",
         "POST",
         "/jobs/" + queued + "/retry",
         std::string(2 << 20, 'x'),
         J,
         {},
         413,
         "FILE_TOO_LARGE"},
    };
    int n = 0;
    for (const auto& b : cases) {
        SCOPED_TRACE(b.name);
        auto& client = b.path.rfind("/keys", 0) == 0 ? admin : c;
        auto r = call(client, b.method, b.path, b.body, b.content_type, b.headers);
        EXPECT_EQ(r.status, b.status) << r.body;
        EXPECT_EQ(error_code(r), b.code) << r.body;
        auto j = body_json(r);
        EXPECT_TRUE(j["error"].contains("message")) << r.body;
        if (b.status == 405) {
            EXPECT_TRUE(r.header("Allow").has_value());
        }
        // The same client (and so a reused connection) still works.
        EXPECT_EQ(call(c, "GET", "/jobs?limit=1").status, 200);
        ++n;
    }
    // Admin-only malformed requests.
    auto bad_key = call(admin, "POST", "/keys", "{\"name\": \"x\", \"role\": \"root\"}", J);
    EXPECT_EQ(bad_key.status, 400);
    EXPECT_EQ(error_code(bad_key), "INVALID_ARGUMENT");
    auto bad_key_json = call(admin, "POST", "/keys", "{\"name\": ", J);
    EXPECT_EQ(bad_key_json.status, 400);
    auto revoke_missing = call(admin, "DELETE", "/keys/nobody");
    EXPECT_EQ(revoke_missing.status, 404);
    n += 3;

    // Oversized headers and a broken request line, on raw sockets.
    {
        RawConnection raw(server.port());
        raw.send_all("GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'h') +
                     "\r\nConnection: close\r\n\r\n");
        raw.read_until("}}");  // the end of the error envelope
        EXPECT_TRUE(raw.status() >= 400 && raw.status() < 500) << raw.received().substr(0, 200);
        ++n;
    }
    {
        RawConnection raw(server.port());
        raw.send_all("BLAH\r\n\r\n");
        raw.read_until("}}");
        EXPECT_EQ(raw.status(), 400) << raw.received().substr(0, 200);
        EXPECT_NE(raw.body().find("\"error\""), std::string::npos) << raw.received();
        ++n;
    }
    {
        // A body-less POST with chunked encoding where a JSON body is expected.
        RawConnection raw(server.port());
        raw.send_all("POST /api/v1/jobs/" + queued + "/retry HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                     key +
                     "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        raw.read_until("}}");
        EXPECT_NE(raw.received().find("Connection: close"), std::string::npos) << raw.received();
        EXPECT_EQ(raw.status(), 400) << raw.received().substr(0, 300);
        EXPECT_NE(raw.body().find("INVALID_ARGUMENT"), std::string::npos) << raw.received();
        ++n;
    }
    EXPECT_GE(n, 25);
    auto health = call(c, "GET", "http://127.0.0.1:" + std::to_string(server.port()) + "/healthz");
    EXPECT_EQ(health.status, 200);
    EXPECT_EQ(snapshot(), before);
}

}  // namespace
}  // namespace distconv::itest
