// Every curl example in README.md and docs/*.md runs, as written, with bash against a real
// distconv-dispatch (plain HTTP for http:// origins, HTTPS with a gen-certs.sh CA for https:// ones)
// and answers what it documents: the status its comment names ("-> 202", "(206 ...)"), else a 2xx.
//
// How: each curl command of a shell block is one example. The test finds the fixture for its method
// and URL path (k_fixtures), which makes the state it needs (a job that is queued, failed, completed,
// half uploaded, an engine) and sets $JOB; then it runs the doc's own earlier assignments the command
// needs (API=..., AUTH=..., OFF=$(curl ...)) and the command itself, in a directory holding the files
// the docs name (in.mp4, big.mkv, ca.crt), under `set -euo pipefail`, with $KEY and $ADMIN_KEY set.
// curl on PATH is curl_wrapper.sh: the real curl with --max-time, the documented origins pointed at
// the test's servers, and each answer's status recorded. A new example without a fixture fails the
// test, naming the example, so the docs stay tested.

#include "common/hash.hpp"
#include "tests/integration/docs_examples/doc_examples.hpp"
#include "tests/integration/docs_examples/live_dispatch.hpp"
#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

namespace distconv::docs {
namespace {

namespace stdfs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr int k_curl_max_seconds = 10;  // one curl call; a hang until the server's read timeout (60 s) fails
constexpr auto k_example_deadline = 30s;  // one example, its setup lines included
const std::string k_stderr_tail = "[libx264 @ 0x5555] broken input frame\nConversion failed!";

// --- the examples ---------------------------------------------------------------------------------

std::vector<std::string> doc_files() {
    std::vector<std::string> files{"README.md"};
    std::vector<std::string> docs;
    for (const auto& entry : stdfs::directory_iterator(stdfs::path(DISTCONV_SOURCE_DIR) / "docs"))
        if (entry.path().extension() == ".md") docs.push_back("docs/" + entry.path().filename().string());
    std::sort(docs.begin(), docs.end());
    files.insert(files.end(), docs.begin(), docs.end());
    return files;
}

std::map<std::string, std::vector<ShellLine>> all_shell_lines() {
    std::map<std::string, std::vector<ShellLine>> by_file;
    for (const auto& file : doc_files())
        by_file[file] = shell_lines(file, test::read_file(stdfs::path(DISTCONV_SOURCE_DIR) / file));
    return by_file;
}

// --- what a run did -------------------------------------------------------------------------------

struct Call {
    int exit_code = -1;
    int status = 0;  // the last HTTP status line of the answer; 0 when none came
    std::string phase;
    std::string args;
};

struct Run {
    Finished finished;
    std::string out, err;
    std::vector<Call> calls;
    std::map<std::string, std::string> vars;  // what the example assigned
    stdfs::path cwd;
};

// What a fixture made: the example's environment ($JOB) and what its check compares with.
struct Made {
    std::map<std::string, std::string> env;
    std::string job, engine, output;
    uint64_t offset = 0;
};

// The files the docs' examples name, and the servers they talk to.
struct World {
    stdfs::path clip_mp4, clip_mkv, ca_crt;
    std::string mkv_bytes;
};

struct Fixture {
    std::string method;
    std::string path;  // the example's URL path, its doc variables ($JOB) as written
    std::string also;  // text the example must contain too ("" = any): two examples on one route
    std::string makes;
    std::function<Made(World&, LiveDispatch&)> prepare;
    std::function<void(const Run&, LiveDispatch&, const Made&)> check;
};

json out_json(const Run& run) {
    auto j = json::parse(run.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "stdout is not JSON: " << run.out;
    return j.is_discarded() ? json() : j;
}

std::string var(const Run& run, const std::string& name) {
    auto it = run.vars.find(name);
    return it == run.vars.end() ? "" : it->second;
}

Made with_job(const std::string& id) {
    Made m;
    m.job = id;
    m.env["JOB"] = id;
    return m;
}

std::string megabyte_and_a_half() {
    std::string s(1536 * 1024, '\0');
    uint32_t x = 2463534242u;
    for (auto& c : s) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c = static_cast<char>(x);
    }
    return s;
}

// A declared big.mkv job, its first half uploaded when `half`.
Made declared(World& w, LiveDispatch& s, bool half) {
    auto m = with_job(s.declare(w.mkv_bytes.size(), sha256_hex(w.mkv_bytes), "big.mkv"));
    if (half) {
        m.offset = w.mkv_bytes.size() / 2;
        s.upload_source(m.job, w.mkv_bytes.substr(0, m.offset), 0, w.mkv_bytes.size());
    }
    return m;
}

Made completed(World& w, LiveDispatch& s) {
    std::string output = megabyte_and_a_half();
    auto m = with_job(s.completed_job(w.clip_mp4, output));
    m.output = output;
    return m;
}

// The fixtures, by the method and URL path of the examples; the first that fits is used.
const std::vector<Fixture>& fixtures() {
    static const std::vector<Fixture> k_fixtures = {
        {"GET", "/healthz", "", "nothing", [](World&, LiveDispatch&) { return Made{}; },
         [](const Run& run, LiveDispatch&, const Made&) {
             EXPECT_EQ(out_json(run).value("status", ""), "ok");
         }},
        {"POST", "/api/v1/jobs", "-F", "nothing (the example uploads in.mp4)",
         [](World&, LiveDispatch&) { return Made{}; },
         [](const Run& run, LiveDispatch& s, const Made&) {
             // Either the example keeps the id ($(... | jq -r .job_id)) or it prints the resource.
             std::string id = run.vars.count("JOB") ? var(run, "JOB") : out_json(run).value("job_id", "");
             ASSERT_FALSE(id.empty() || id == "null") << run.out;
             EXPECT_EQ(s.state(id), "queued");
             EXPECT_EQ(s.job(id)["source"].value("filename", ""), "in.mp4");
         }},
        {"POST", "/api/v1/jobs", "application/json", "nothing (the example declares big.mkv)",
         [](World&, LiveDispatch&) { return Made{}; },
         [](const Run& run, LiveDispatch& s, const Made&) {
             std::string id = var(run, "JOB");
             ASSERT_FALSE(id.empty() || id == "null") << run.out;
             auto job = s.job(id);
             EXPECT_EQ(job.value("state", ""), "awaiting_upload");
             EXPECT_EQ(job["source"].value("filename", ""), "big.mkv");
         }},
        {"GET", "/api/v1/jobs", "X-Request-Id", "a queued job",
         [](World& w, LiveDispatch& s) { return with_job(s.submit(w.clip_mp4)); },
         [](const Run& run, LiveDispatch&, const Made&) {
             std::string out = run.out;
             std::transform(out.begin(), out.end(), out.begin(),
                            [](unsigned char c) { return std::tolower(c); });
             EXPECT_NE(out.find("x-request-id: ticket-4711"), std::string::npos) << run.out;
         }},
        {"GET", "/api/v1/jobs", "", "a queued job",
         [](World& w, LiveDispatch& s) { return with_job(s.submit(w.clip_mp4)); },
         [](const Run& run, LiveDispatch&, const Made& m) {
             bool listed = false;
             auto list = out_json(run);
             for (const auto& item : list["items"]) listed = listed || item.value("job_id", "") == m.job;
             EXPECT_TRUE(listed) << m.job << " is not in " << run.out;
         }},
        {"GET", "/api/v1/jobs/$JOB/status", "", "a queued job",
         [](World& w, LiveDispatch& s) { return with_job(s.submit(w.clip_mp4)); },
         [](const Run& run, LiveDispatch&, const Made& m) {
             auto j = out_json(run);
             EXPECT_EQ(j.value("job_id", ""), m.job);
             EXPECT_EQ(j.value("state", ""), "queued");
         }},
        {"GET", "/api/v1/jobs/$JOB", "failure_reason", "a job ffmpeg failed",
         [](World& w, LiveDispatch& s) { return with_job(s.failed_job(w.clip_mp4, k_stderr_tail)); },
         [](const Run& run, LiveDispatch&, const Made&) {
             EXPECT_NE(run.out.find("Conversion failed!"), std::string::npos) << run.out;
         }},
        {"GET", "/api/v1/jobs/$JOB", "", "a queued job",
         [](World& w, LiveDispatch& s) { return with_job(s.submit(w.clip_mp4)); },
         [](const Run& run, LiveDispatch&, const Made& m) {
             EXPECT_EQ(out_json(run).value("job_id", ""), m.job);
         }},
        {"GET", "/api/v1/jobs/$JOB/events", "", "a completed job (its stream ends at once)", completed,
         [](const Run& run, LiveDispatch&, const Made&) {
             EXPECT_NE(run.out.find("event: state"), std::string::npos) << run.out;
             EXPECT_NE(run.out.rfind("\"state\":\"completed\""), std::string::npos) << run.out;
         }},
        {"GET", "/api/v1/jobs/$JOB/result", "Range", "a completed job with a 1.5 MiB output", completed,
         [](const Run& run, LiveDispatch&, const Made& m) {
             EXPECT_TRUE(test::read_file(run.cwd / "head.bin") == m.output.substr(0, 1048576))
                 << "head.bin is not the first MiB of the output";
         }},
        {"GET", "/api/v1/jobs/$JOB/result", "", "a completed job with a 1.5 MiB output", completed,
         [](const Run& run, LiveDispatch&, const Made& m) {
             EXPECT_TRUE(test::read_file(run.cwd / "out.mp4") == m.output) << "out.mp4 is not the output";
         }},
        {"DELETE", "/api/v1/jobs/$JOB", "", "a queued job",
         [](World& w, LiveDispatch& s) { return with_job(s.submit(w.clip_mp4)); },
         [](const Run& run, LiveDispatch& s, const Made& m) {
             EXPECT_EQ(out_json(run).value("state", ""), "canceled");
             EXPECT_EQ(s.state(m.job), "canceled");
         }},
        {"POST", "/api/v1/jobs/$JOB/retry", "", "a job ffmpeg failed",
         [](World& w, LiveDispatch& s) { return with_job(s.failed_job(w.clip_mp4, k_stderr_tail)); },
         [](const Run& run, LiveDispatch& s, const Made& m) {
             EXPECT_EQ(out_json(run).value("state", ""), "queued");
             EXPECT_EQ(s.state(m.job), "queued");
         }},
        {"HEAD", "/api/v1/jobs/$JOB/source", "", "a declared big.mkv job with its first half uploaded",
         [](World& w, LiveDispatch& s) { return declared(w, s, true); },
         [](const Run& run, LiveDispatch&, const Made& m) {
             EXPECT_EQ(var(run, "OFF"), std::to_string(m.offset));
         }},
        {"PUT", "/api/v1/jobs/$JOB/source", "Content-Range",
         "a declared big.mkv job with its first half uploaded",
         [](World& w, LiveDispatch& s) { return declared(w, s, true); },
         [](const Run&, LiveDispatch& s, const Made& m) { EXPECT_EQ(s.state(m.job), "queued"); }},
        {"PUT", "/api/v1/jobs/$JOB/source", "", "a declared big.mkv job, nothing uploaded",
         [](World& w, LiveDispatch& s) { return declared(w, s, false); },
         [](const Run&, LiveDispatch& s, const Made& m) { EXPECT_EQ(s.state(m.job), "queued"); }},
        {"POST", "/api/v1/keys", "", "nothing", [](World&, LiveDispatch&) { return Made{}; },
         [](const Run& run, LiveDispatch& s, const Made&) {
             auto j = out_json(run);
             EXPECT_EQ(j.value("name", ""), "alice");
             EXPECT_EQ(j.value("role", ""), "user");
             EXPECT_TRUE(s.key_works(j.value("key", ""))) << "the new key does not work: " << run.out;
         }},
        {"GET", "/api/v1/engines", "", "a registered engine",
         [](World&, LiveDispatch& s) {
             Made m;
             m.engine = s.engine_id();
             return m;
         },
         [](const Run& run, LiveDispatch&, const Made& m) {
             bool listed = false;
             auto list = out_json(run);
             for (const auto& e : list["items"]) listed = listed || e.value("engine_id", "") == m.engine;
             EXPECT_TRUE(listed) << run.out;
         }},
    };
    return k_fixtures;
}

// --- running one example --------------------------------------------------------------------------

struct Harness {
    test::TempDir dir;
    World world;
    std::unique_ptr<LiveDispatch> plain, secure;
    std::map<std::string, LiveDispatch*> origins;  // the origins the docs use -> the server behind them
    stdfs::path bin;
    std::string real_curl;
    int runs = 0;

    std::string connect_to() const {
        std::string out;
        for (const auto& [origin, server] : origins) {
            auto host_port = origin.substr(origin.find("://") + 3);
            out += (out.empty() ? "" : " ") + host_port + ":127.0.0.1:" + std::to_string(server->port());
        }
        return out;
    }

    // The earlier lines of the example's file that assign what it reads, and what they read in turn,
    // in doc order; names the fixture provides are not assigned again. Missing names go to *unset.
    std::vector<ShellLine> setup_for(const ShellLine& example, const std::vector<ShellLine>& file_lines,
                                     const std::set<std::string>& provided, std::set<std::string>* unset) {
        std::map<int, ShellLine> chosen;
        auto read = referenced_names(example.text);
        std::vector<std::string> wanted(read.begin(), read.end());
        std::set<std::string> seen;
        while (!wanted.empty()) {
            std::string name = wanted.back();
            wanted.pop_back();
            if (provided.count(name) || !seen.insert(name).second) continue;
            const ShellLine* last = nullptr;
            for (const auto& l : file_lines) {
                if (l.line >= example.line) break;
                auto names = assigned_names(l.text);
                if (std::find(names.begin(), names.end(), name) != names.end()) last = &l;
            }
            if (!last) {
                unset->insert(name);
                continue;
            }
            chosen.emplace(last->line, *last);
            for (const auto& n : referenced_names(last->text)) wanted.push_back(n);
        }
        std::vector<ShellLine> out;
        for (auto& [line, l] : chosen) out.push_back(l);
        return out;
    }

    Run run(const ShellLine& example, const std::vector<ShellLine>& setup,
            const std::map<std::string, std::string>& vars) {
        auto here = dir / ("run-" + std::to_string(++runs) + "-" + stdfs::path(example.file).stem().string() +
                           "-" + std::to_string(example.line));
        Run r;
        r.cwd = here / "cwd";
        stdfs::create_directories(r.cwd);
        stdfs::create_directories(here / "curl-log");
        stdfs::create_directories(here / "vars");
        stdfs::create_directories(here / "home");
        stdfs::copy_file(world.clip_mp4, r.cwd / "in.mp4");
        stdfs::copy_file(world.clip_mkv, r.cwd / "big.mkv");
        stdfs::copy_file(world.ca_crt, r.cwd / "ca.crt");

        std::string script = "set -euo pipefail\nexport DCV_CURL_PHASE=setup\n";
        for (const auto& l : setup) script += l.raw + "\n";
        script += "export DCV_CURL_PHASE=example\n" + example.raw + "\n";
        for (const auto& name : assigned_names(example.text))
            script += "printf '%s' \"${" + name + "-}\" > \"$DCV_VARS/" + name + "\"\n";
        test::write_file(here / "script.sh", script);

        std::vector<std::string> env{"PATH=" + bin.string() + ":/usr/local/bin:/usr/bin:/bin",
                                     "HOME=" + (here / "home").string(),
                                     "TMPDIR=" + (here / "home").string(),
                                     "LC_ALL=C.UTF-8",
                                     "DCV_REAL_CURL=" + real_curl,
                                     "DCV_MAX_TIME=" + std::to_string(k_curl_max_seconds),
                                     "DCV_CONNECT_TO=" + connect_to(),
                                     "DCV_CURL_LOG=" + (here / "curl-log").string(),
                                     "DCV_VARS=" + (here / "vars").string()};
        for (const auto& [k, v] : vars) env.push_back(k + "=" + v);
        r.finished = run_bounded({"/bin/bash", "--noprofile", "--norc", (here / "script.sh").string()}, env,
                                 r.cwd, here / "stdout", here / "stderr", k_example_deadline);
        r.out = test::read_file(here / "stdout");
        r.err = test::read_file(here / "stderr");
        std::istringstream calls(test::read_file(here / "curl-log" / "calls"));
        std::string line;
        while (std::getline(calls, line)) {
            std::vector<std::string> f;
            std::istringstream fields(line);
            std::string field;
            while (f.size() < 3 && std::getline(fields, field, '\t')) f.push_back(field);
            std::getline(fields, field);
            if (f.size() < 3) continue;
            Call c;
            c.exit_code = std::stoi(f[0]);
            c.phase = f[2];
            c.args = field;
            std::istringstream headers(test::read_file(f[1]));
            std::string h;
            while (std::getline(headers, h))
                if (h.rfind("HTTP/", 0) == 0 && h.find(' ') != std::string::npos)
                    c.status = std::atoi(h.c_str() + h.find(' ') + 1);
            r.calls.push_back(c);
        }
        for (const auto& name : assigned_names(example.text))
            if (stdfs::exists(here / "vars" / name)) r.vars[name] = test::read_file(here / "vars" / name);
        return r;
    }
};

std::string describe(const Run& r) {
    std::string s = "exit " + std::to_string(r.finished.exit_code) +
                    (r.finished.timed_out ? " (killed at the deadline)" : "") + " after " +
                    std::to_string(r.finished.took.count()) + " ms\n";
    for (const auto& c : r.calls)
        s += "  [" + c.phase + "] curl " + c.args + " -> HTTP " + std::to_string(c.status) + ", curl exit " +
             std::to_string(c.exit_code) + (c.exit_code == 28 ? " (timed out)" : "") + "\n";
    return s + "stdout: " + r.out.substr(0, 2000) + "\nstderr: " + r.err.substr(0, 2000);
}

TEST(DocsExamples, EveryCurlExampleRunsAsWrittenAndAnswersWhatItDocuments) {
    Harness h;
    h.real_curl = find_program("curl");
    ASSERT_FALSE(h.real_curl.empty()) << "curl is not installed";
    ASSERT_FALSE(find_program("jq").empty()) << "jq is not installed (the examples use it)";
    h.bin = h.dir / "bin";
    stdfs::create_directories(h.bin);
    stdfs::create_symlink(
        stdfs::path(DISTCONV_SOURCE_DIR) / "tests/integration/docs_examples/curl_wrapper.sh", h.bin / "curl");

    h.world.clip_mp4 = h.dir / "clip.mp4";
    h.world.clip_mkv = h.dir / "clip.mkv";
    ASSERT_TRUE(test::make_test_clip(h.world.clip_mp4, 1.0, 160, 120));
    ASSERT_TRUE(test::make_test_clip(h.world.clip_mkv, 2.0, 160, 120));
    h.world.mkv_bytes = test::read_file(h.world.clip_mkv);
    auto certs = h.dir / "certs";
    std::string gen_out;
    ASSERT_EQ(test::run_command({std::string(DISTCONV_SOURCE_DIR) + "/scripts/gen-certs.sh", certs.string(),
                                 "--host", "dispatch.example.org"},
                                &gen_out),
              0)
        << gen_out;
    h.world.ca_crt = certs / "ca.crt";
    h.plain = std::make_unique<LiveDispatch>(h.dir.path(), "plain");
    h.secure = std::make_unique<LiveDispatch>(h.dir.path(), "tls", certs);
    h.origins = {{"http://127.0.0.1:8080", h.plain.get()},
                 {"http://dispatch:8080", h.plain.get()},
                 {"https://dispatch.example.org:8080", h.secure.get()}};

    auto lines = all_shell_lines();
    std::vector<bool> used(fixtures().size(), false);
    int examples = 0;
    for (const auto& [file, file_lines] : lines) {
        std::vector<ShellLine> before;
        for (const auto& example : file_lines) {
            before.push_back(example);
            if (!runs_curl(example.text)) continue;
            ++examples;
            SCOPED_TRACE(example.where() + ": " + example.text);
            auto call = first_curl(example.text);
            auto url = call ? split_url(substitute(call->url, literal_values(before))) : std::nullopt;
            if (!url) {
                ADD_FAILURE() << example.where()
                              << ": the curl example names no http(s) URL the test can read";
                continue;
            }
            auto origin = h.origins.find(url->origin);
            if (origin == h.origins.end()) {
                ADD_FAILURE()
                    << example.where() << ": the example talks to " << url->origin
                    << ", which the test does not serve; use one of the documented origins or add it to "
                       "h.origins";
                continue;
            }
            LiveDispatch& server = *origin->second;
            size_t f = 0;
            while (f < fixtures().size() &&
                   !(fixtures()[f].method == call->method && fixtures()[f].path == url->path &&
                     example.text.find(fixtures()[f].also) != std::string::npos))
                ++f;
            if (f == fixtures().size()) {
                ADD_FAILURE() << example.where() << ": no fixture for the curl example `" << call->method
                              << " " << url->path << "`; add one to k_fixtures in " << __FILE__
                              << " (the state it needs and what its answer must show)";
                continue;
            }
            used[f] = true;
            const Fixture& fixture = fixtures()[f];
            Made made;
            try {
                made = fixture.prepare(h.world, server);
            } catch (const std::exception& e) {
                ADD_FAILURE() << example.where() << ": making " << fixture.makes << " failed: " << e.what();
                continue;
            }
            std::map<std::string, std::string> vars{{"KEY", server.user_key()},
                                                    {"ADMIN_KEY", server.admin_key()}};
            vars.insert(made.env.begin(), made.env.end());
            std::set<std::string> provided;
            for (const auto& [k, v] : vars) provided.insert(k);
            std::set<std::string> unset;
            auto setup = h.setup_for(example, file_lines, provided, &unset);
            if (!unset.empty()) {
                std::string names;
                for (const auto& n : unset) names += " $" + n;
                ADD_FAILURE() << example.where() << ": the example reads" << names
                              << ", which neither the lines before it in " << file << " nor the test set";
                continue;
            }

            auto run = h.run(example, setup, vars);
            auto documented = documented_status(example.comment);
            bool answered = true;  // as documented, so the fixture's check can read the outcome
            auto fail = [&](const std::string& why) {
                ADD_FAILURE() << example.where() << ": " << why << "\n" << describe(run);
                answered = false;
            };
            auto answer = [](const Call& c) {
                return c.status ? "HTTP " + std::to_string(c.status)
                                : "no HTTP answer (curl exit " + std::to_string(c.exit_code) + ")";
            };
            bool example_called = false;
            for (const auto& c : run.calls) {
                if (c.exit_code == 28)
                    fail("curl gave up after " + std::to_string(k_curl_max_seconds) +
                         " s: the server did not answer");
                if (c.phase == "setup") {
                    if (c.status < 200 || c.status >= 300)
                        fail("a line before it, which it needs, got " + answer(c));
                    continue;
                }
                example_called = true;
                if (documented && c.status != *documented)
                    fail("its comment documents HTTP " + std::to_string(*documented) + ", it got " +
                         answer(c));
                if (!documented && (c.status < 200 || c.status >= 300))
                    fail("expected a 2xx answer, it got " + answer(c));
            }
            if (!example_called) fail("curl never ran");
            if (run.finished.timed_out) fail("still running after the deadline");
            if ((!documented || (*documented >= 200 && *documented < 300)) && run.finished.exit_code != 0)
                fail("the example exited with " + std::to_string(run.finished.exit_code));
            std::cout << "[ example ] " << example.where() << " " << call->method << " " << url->origin
                      << url->path << ": " << (run.calls.empty() ? 0 : run.calls.back().status) << " in "
                      << run.finished.took.count() << " ms, on " << fixture.makes << "\n";
            if (!answered) continue;
            try {
                fixture.check(run, server, made);
            } catch (const std::exception& e) {
                ADD_FAILURE() << example.where() << ": checking the outcome failed: " << e.what();
            }
        }
    }
    EXPECT_GE(examples, 1) << "no curl example found in README.md or docs/*.md";
    for (size_t f = 0; f < fixtures().size(); ++f)
        EXPECT_TRUE(used[f]) << "the fixture for `" << fixtures()[f].method << " " << fixtures()[f].path
                             << "`"
                             << (fixtures()[f].also.empty() ? "" : " with `" + fixtures()[f].also + "`")
                             << " fits no example any more: remove it from k_fixtures";
    RecordProperty("curl_examples", examples);
}

// --- the extraction itself, on small documents ----------------------------------------------------

TEST(DocsExamplesExtraction, JoinsContinuationsKeepsCommentsAndSkipsOtherBlocks) {
    std::string md =
        "text `curl not-this`\n"
        "```ini\ncurl = no\n```\n"
        "```sh\n"
        "API=http://h:1/api/v1\n"
        "# Submit -> 202 and more\n"
        "JOB=$(curl -fsS -H \"$AUTH\" \\\n"
        "  -F 'job={\"a\":1}' \"$API/jobs\" | jq -r .job_id)\n"
        "curl -fsSI \"$API/jobs/$JOB/source\"\n"
        "\n"
        "# curl -fsS commented out\n"
        "tail -c +$((OFF + 1)) f | curl -T - \"$API/x\"\n"
        "```\n"
        "   ```\n   curl -X DELETE http://h:1/api/v1/jobs/$JOB\n   ```\n";
    auto lines = shell_lines("d.md", md);
    ASSERT_EQ(lines.size(), 5u);
    EXPECT_EQ(lines[0].text, "API=http://h:1/api/v1");
    EXPECT_FALSE(runs_curl(lines[0].text));
    EXPECT_EQ(lines[1].line, 8);
    EXPECT_EQ(lines[1].comment, "Submit -> 202 and more");
    EXPECT_EQ(documented_status(lines[1].comment), 202);
    EXPECT_EQ(lines[1].text,
              "JOB=$(curl -fsS -H \"$AUTH\"   -F 'job={\"a\":1}' \"$API/jobs\" | jq -r .job_id)");
    EXPECT_NE(lines[1].raw.find("\\\n"), std::string::npos);
    EXPECT_EQ(assigned_names(lines[1].text), std::vector<std::string>{"JOB"});
    EXPECT_EQ(referenced_names(lines[1].text), (std::set<std::string>{"API", "AUTH"}));
    auto submit = first_curl(lines[1].text);
    ASSERT_TRUE(submit);
    EXPECT_EQ(submit->method, "POST");
    EXPECT_EQ(substitute(submit->url, literal_values(lines)), "http://h:1/api/v1/jobs");
    EXPECT_EQ(lines[2].comment, "Submit -> 202 and more");  // the same paragraph
    EXPECT_EQ(first_curl(lines[2].text)->method, "HEAD");
    EXPECT_EQ(lines[3].comment, "curl -fsS commented out");
    EXPECT_EQ(documented_status(lines[3].comment), std::nullopt);
    EXPECT_TRUE(runs_curl(lines[3].text));
    EXPECT_EQ(referenced_names(lines[3].text), (std::set<std::string>{"API", "OFF"}));
    EXPECT_EQ(first_curl(lines[3].text)->method, "PUT");
    EXPECT_EQ(first_curl(lines[4].text)->method, "DELETE");
    auto url = split_url(first_curl(lines[4].text)->url);
    ASSERT_TRUE(url);
    EXPECT_EQ(url->origin, "http://h:1");
    EXPECT_EQ(url->path, "/api/v1/jobs/$JOB");
    EXPECT_EQ(assigned_names("SIZE=$(stat -c %s f); SHA=$(sha256sum f | cut -d' ' -f1)"),
              (std::vector<std::string>{"SIZE", "SHA"}));
    EXPECT_EQ(documented_status("An explicit range (206 Partial Content): the first MiB"), 206);
    EXPECT_EQ(first_curl("curl -fsS -H \"$AUTH\" -C - -o out.mp4 \"$API/r\"")->url, "$API/r");
}

}  // namespace
}  // namespace distconv::docs
