// The WebDriver client itself against a page of its own (a data: URL): find, type, click, read,
// scripts, file inputs, screenshots, window size, error messages, and no process left behind.

#include "tests/integration/browser/webdriver.hpp"

#include <gtest/gtest.h>

#include <signal.h>

using namespace distconv;
using namespace distconv::browser;
using namespace std::chrono_literals;

namespace {

const char* k_page = R"(data:text/html,<!doctype html><title>smoke</title>
<form id="f"><input id="name"><input id="file" type="file"><button id="go" type="button">go</button></form>
<p id="out" data-x="1">before</p>
<script>
document.getElementById('go').addEventListener('click', () => {
  setTimeout(() => {
    const p = document.createElement('p');
    p.id = 'late';
    p.textContent = 'hello ' + document.getElementById('name').value;
    document.body.append(p);
  }, 300);
});
</script>)";

bool process_gone(pid_t pid) {
    // Gone, or a zombie waiting for init to reap it.
    return kill(pid, 0) != 0 ||
           test::read_file("/proc/" + std::to_string(pid) + "/stat").find(") Z") != std::string::npos;
}

}  // namespace

TEST(WebDriverClient, DrivesAPageAndLeavesNoProcessBehind) {
    if (auto missing = browser_missing()) GTEST_SKIP() << *missing;
    test::TempDir dir;
    pid_t driver = -1;
    std::vector<pid_t> browsers;
    {
        WebDriver wd(dir.path());
        driver = wd.driver_pid();
        wd.navigate(k_page);
        EXPECT_EQ(wd.title(), "smoke");
        EXPECT_EQ(wd.text("#out"), "before");
        EXPECT_EQ(wd.attribute(wd.find("#out"), "data-x"), "1");
        EXPECT_EQ(wd.attribute(wd.find("#out"), "data-none"), std::nullopt);

        wd.send_keys(wd.find("#name"), "world");
        wd.click("#go");
        auto late = wd.wait_for("#late", 5s);
        EXPECT_EQ(wd.text(late), "hello world");

        // A file input takes an absolute path as its keys.
        test::write_file(dir / "upload.txt", "12345");
        wd.send_keys(wd.find("#file"), (dir / "upload.txt").string());
        auto file = wd.execute_script(
            "const f = document.getElementById('file').files[0];"
            "return [f.name, f.size];");
        EXPECT_EQ(file, (nlohmann::json{"upload.txt", 5}));
        EXPECT_EQ(wd.execute_script("return arguments[0] + arguments[1];", {2, 3}), 5);
        EXPECT_EQ(wd.execute_async_script("const done = arguments[0]; setTimeout(() => done('later'), 50);"),
                  "later");
        EXPECT_NE(wd.page_source().find("id=\"late\""), std::string::npos);

        wd.execute_script("console.error('logged from the page');");
        EXPECT_NE(wd.browser_log().dump().find("logged from the page"), std::string::npos);
        EXPECT_EQ(wd.alert_text(), std::nullopt);

        wd.set_window_size(390, 844);
        EXPECT_TRUE(wd.wait_until([&] { return wd.execute_script("return window.innerWidth;") == 390; }));

        wd.screenshot(dir / "smoke.png");
        EXPECT_EQ(test::read_file(dir / "smoke.png").substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));

        // A failed command names itself and chromedriver's answer.
        try {
            wd.find("#nothing-here");
            ADD_FAILURE() << "found an element that does not exist";
        } catch (const WebDriverError& e) {
            EXPECT_EQ(e.error(), "no such element");
            EXPECT_NE(std::string(e.what()).find("/element"), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("#nothing-here"), std::string::npos) << e.what();
        }
        EXPECT_THROW(wd.wait_for("#nothing-here", 200ms), WebDriverError);
        browsers = e2e::children_of(driver);
        EXPECT_FALSE(browsers.empty()) << "chromium runs as chromedriver's child";
    }
    EXPECT_TRUE(test::wait_until([&] { return process_gone(driver); }, 5s));
    for (pid_t pid : browsers) EXPECT_TRUE(test::wait_until([&] { return process_gone(pid); }, 5s)) << pid;
}

TEST(WebDriverClient, Base64BothWays) {
    EXPECT_EQ(base64_decode("aGVsbG8="), "hello");
    EXPECT_EQ(base64_decode("aGVsbG8hIQ=="), "hello!!");
    EXPECT_EQ(base64_decode("YWJj\nZGVm"), "abcdef");
    for (const std::string& s : {std::string(), std::string("h"), std::string("he"), std::string("hel"),
                                 std::string("hello"), std::string("\0\xff\x10", 3)})
        EXPECT_EQ(base64_decode(base64_encode(s)), s);
    EXPECT_EQ(base64_encode("hello"), "aGVsbG8=");
}
