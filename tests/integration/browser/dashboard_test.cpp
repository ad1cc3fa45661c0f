// The dashboard in headless Chromium against the real dispatch server and a real engine: sign in
// and out, submit a clip through the file input and download what it became, cancel a running job,
// retry a failed one. Every page visited is screenshotted into the test's temp dir.

#include "tests/integration/browser/dashboard_support.hpp"

#include <algorithm>

using namespace distconv;
using namespace distconv::browser;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

int percent(WebDriver& wd, const std::string& bar_css) {
    auto v = wd.attribute(wd.find(bar_css), "aria-valuenow");
    return v ? std::stoi(*v) : -1;
}

// A fast-start MP4 whose index ffprobe reads but whose media ffmpeg cannot decode: every byte of
// the mdat payload flipped. The job fails as permanent on its first attempt.
bool make_undecodable_clip(const std::filesystem::path& dir, const std::filesystem::path& out) {
    const auto good = dir / "good.mp4";
    if (!test::make_test_clip(good, 1.0, 160, 120)) return false;
    const auto faststart = dir / "faststart.mp4";
    if (test::run_command({"ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", good.string(), "-c",
                           "copy", "-movflags", "+faststart", faststart.string()}) != 0)
        return false;
    std::string bytes = test::read_file(faststart);
    const auto mdat = bytes.find("mdat");
    if (mdat == std::string::npos) return false;
    std::transform(bytes.begin() + static_cast<std::ptrdiff_t>(mdat) + 4, bytes.end(),
                   bytes.begin() + static_cast<std::ptrdiff_t>(mdat) + 4, [](char c) { return c ^ 0x5a; });
    test::write_file(out, bytes);
    return true;
}

}  // namespace

TEST_F(DashboardTest, SignInWithTheAdminKeyThenSignOut) {
    wd().navigate(url() + "/");
    wd().wait_for("form#signin");
    shot("signin");

    // A wrong key stays on the sign-in form with the server's message.
    wd().send_keys(wd().find("input#signin-key"), "dcv_not-a-real-key");
    wd().click("button#signin-submit");
    std::string error;
    EXPECT_TRUE(wd().wait_until([&] {
        error = wd().text(wd().find("#signin-error"));
        return !error.empty();
    })) << "no #signin-error after a wrong key";
    shot("signin-error");
    EXPECT_TRUE(session_cookie().empty());

    wd().clear(wd().find("input#signin-key"));
    wd().send_keys(wd().find("input#signin-key"), admin_key());
    wd().click("button#signin-submit");
    wd().wait_for("section#page-overview", 15s);
    EXPECT_TRUE(wd().wait_until([&] { return wd().text("#whoami").find("admin") != std::string::npos; }))
        << wd().text("#whoami");
    EXPECT_NE(wd().text("#whoami").find("root"), std::string::npos) << "the key's name";
    EXPECT_TRUE(wd().wait_until([&] { return wd().text("#ov-queued") == "0"; })) << wd().text("#ov-queued");
    shot("overview");

    // The session cookie: HttpOnly (no script reads it), SameSite=Strict, not Secure on plain HTTP.
    auto cookie = wd().cookie("distconv_session");
    ASSERT_TRUE(cookie) << wd().get_cookies().dump();
    EXPECT_EQ(cookie->value("httpOnly", false), true) << cookie->dump();
    EXPECT_EQ(cookie->value("sameSite", ""), "Strict") << cookie->dump();
    EXPECT_EQ(cookie->value("secure", true), false) << "plain HTTP: " << cookie->dump();
    EXPECT_EQ(wd().execute_script("return document.cookie;").get<std::string>().find("distconv_session"),
              std::string::npos);
    // The key is exchanged, never kept in the page's storage.
    auto storage =
        wd().execute_script("return JSON.stringify(localStorage) + JSON.stringify(sessionStorage);")
            .get<std::string>();
    EXPECT_EQ(storage.find(admin_key()), std::string::npos) << storage;
    const std::string cookie_value = cookie->value("value", "");
    EXPECT_EQ(api("GET", "/sessions/current", {{"Cookie", "distconv_session=" + cookie_value}}).status, 200);

    // A reload keeps the session.
    wd().navigate(url() + "/#/overview");
    wd().wait_for("section#page-overview", 15s);

    wd().click("button#signout");
    wd().wait_for("form#signin");
    shot("signed-out");
    EXPECT_FALSE(wd().displayed(wd().find("#app")));
    EXPECT_EQ(api("GET", "/sessions/current", {{"Cookie", "distconv_session=" + cookie_value}}).status, 401)
        << "sign-out ends the session on the server";
    wd().navigate(url() + "/#/jobs");
    wd().wait_for("form#signin");
}

TEST_F(DashboardTest, SubmitAClipWatchItCompleteAndDownloadTheResult) {
    start_engine("engine1");
    const auto clip = dir() / "clip.mp4";
    ASSERT_TRUE(test::make_test_clip(clip, 2.0, 320, 240));
    sign_in(admin_key());

    go("#/submit", "page-submit");
    wd().send_keys(wd().find("input#submit-files"), clip.string());
    const std::string item = upload_item("clip.mp4");
    wd().wait_for(item);
    ASSERT_TRUE(wd().wait_until([&] {
        return !wd().attribute(wd().find("button#submit-start"), "disabled");
    })) << "button#submit-start stays disabled with a file chosen";
    wd().click("button#submit-start");
    const auto job_id = wait_uploaded("clip.mp4");
    ASSERT_FALSE(job_id.empty());
    EXPECT_EQ(percent(wd(), item + " .upload-progress"), 100);
    shot("uploaded");

    go("#/jobs", "page-jobs");
    wd().wait_for(row(job_id), 15s);
    const std::string bar = row(job_id) + " .job-progress";
    EXPECT_EQ(wd().attribute(wd().find(bar), "role"), "progressbar");
    ASSERT_TRUE(wait_row_state(job_id, "completed", 60s))
        << "row state " << wd().attribute(wd().find(row(job_id)), "data-state").value_or("?") << "; job "
        << cluster().job(job_id).dump();
    EXPECT_TRUE(wd().wait_until([&] { return percent(wd(), bar) == 100; })) << percent(wd(), bar);
    EXPECT_EQ(wd().text(row(job_id) + " td.job-state"), "completed");
    shot("completed");

    open_job(job_id);
    EXPECT_TRUE(wd().wait_until([&] { return wd().text("#job-detail-state") == "completed"; }))
        << wd().text("#job-detail-state");
    EXPECT_NE(wd().text("pre#job-command").find("ffmpeg"), std::string::npos) << wd().text("pre#job-command");
    auto download = wd().wait_for("a#job-download");
    const auto href = wd().attribute(download, "href").value_or("");
    const std::string path = "/api/v1/jobs/" + job_id + "/result";
    EXPECT_TRUE(href == path || href == url() + path) << href;
    shot("detail");

    // What the link fetches, with the browser's own cookie.
    auto result =
        api("GET", "/jobs/" + job_id + "/result", {{"Cookie", "distconv_session=" + session_cookie()}});
    ASSERT_EQ(result.status, 200) << result.body.substr(0, 300);
    const auto out = dir() / "downloaded.mp4";
    test::write_file(out, result.body);
    auto probe = e2e::ffprobe(out);
    ASSERT_TRUE(probe) << "ffprobe cannot read the download";
    ASSERT_TRUE(probe->duration);
    EXPECT_NEAR(*probe->duration, 2.0, 0.2);
    auto video = e2e::video_duration(out);
    ASSERT_TRUE(video) << "no video stream in the result";
    EXPECT_NEAR(*video, 2.0, 0.1);
}

TEST_F(DashboardTest, CancelARunningJobFromItsDetailAndFfmpegIsGone) {
    start_engine("engine1");
    sign_in(user_key());
    // Long enough and slow enough that it still runs when the button is clicked: x264 "veryslow" on
    // 20 s of 640x360 keeps one core busy for well over ten seconds (the whole encode is never waited for).
    ASSERT_TRUE(test::make_test_clip(dir() / "long.mp4", 20.0, 640, 360));
    std::string answer;
    const auto id = cluster().submit(dir() / "long.mp4",
                                     {{"output_filename", "long.mkv"},
                                      {"container", "mkv"},
                                      {"video", {{"codec", "libx264"}, {"preset", "veryslow"}}},
                                      {"audio", {{"codec", "aac"}}}},
                                     &answer);
    ASSERT_FALSE(id.empty()) << answer;
    const std::string work = cluster().work_dir("engine1").string() + "/";
    json j;
    ASSERT_TRUE(cluster().wait_job(
        id,
        [&](const json& job) {
            return job.value("state", "") == "running" && !e2e::ffmpeg_pids_mentioning(work).empty();
        },
        30s, &j))
        << j.dump();

    go("#/jobs", "page-jobs");
    wd().wait_for(row(id), 15s);
    // Live progress: the row's bar moves while ffmpeg works (pushed over the event stream).
    const std::string bar = row(id) + " .job-progress";
    EXPECT_TRUE(wd().wait_until(
        [&] {
            const int p = percent(wd(), bar);
            return p > 0 && p < 100;
        },
        15s))
        << "aria-valuenow " << percent(wd(), bar) << "; job " << cluster().job(id).dump();
    open_job(id);
    EXPECT_TRUE(wd().wait_until([&] { return wd().text("#job-detail-state") == "running"; }))
        << wd().text("#job-detail-state");
    shot("running");
    wd().click("button#job-cancel");

    ASSERT_TRUE(cluster().wait_state(id, "canceled", 15s, &j)) << j.dump();
    EXPECT_TRUE(test::wait_until([&] { return e2e::ffmpeg_pids_mentioning(work).empty(); }, 5s))
        << "ffmpeg still runs after the cancel";
    EXPECT_TRUE(wd().wait_until([&] { return wd().text("#job-detail-state") == "canceled"; }))
        << wd().text("#job-detail-state");
    EXPECT_TRUE(wait_row_state(id, "canceled", 10s));
    shot("canceled");
}

TEST_F(DashboardTest, RetryAFailedJobFromItsDetail) {
    start_engine("engine1");
    ASSERT_TRUE(make_undecodable_clip(dir(), dir() / "corrupt.mp4"));
    std::string answer;
    const auto id = cluster().submit(
        dir() / "corrupt.mp4",
        {{"preset", "h264-web"}, {"output_filename", "broken.mp4"}, {"max_attempts", 1}}, &answer);
    ASSERT_FALSE(id.empty()) << answer;
    json j;
    ASSERT_TRUE(cluster().wait_state(id, "failed", 30s, &j)) << j.dump();
    // Without an engine the retried job waits in the queue, so the page cannot miss it leaving `failed`.
    stop_engine("engine1");

    sign_in(user_key());
    // The overview lists the failure among its problems.
    EXPECT_TRUE(wd().wait_until([&] {
        return wd().text("ul#ov-problems").find("broken.mp4") != std::string::npos;
    })) << wd().text("ul#ov-problems");
    go("#/jobs", "page-jobs");
    wd().wait_for(row(id), 15s);
    EXPECT_TRUE(wait_row_state(id, "failed", 5s));
    open_job(id);
    EXPECT_TRUE(wd().wait_until([&] { return wd().text("#job-detail-state") == "failed"; }))
        << wd().text("#job-detail-state");
    EXPECT_FALSE(wd().find_all("table#job-attempts tbody tr").empty()) << "the failed attempt is listed";
    shot("failed");
    wd().click("button#job-retry");

    ASSERT_TRUE(cluster().wait_state(id, "queued", 10s, &j)) << j.dump();
    EXPECT_TRUE(wd().wait_until([&] { return wd().text("#job-detail-state") == "queued"; }))
        << wd().text("#job-detail-state");
    EXPECT_TRUE(wait_row_state(id, "queued", 10s));
    shot("retried");
}
