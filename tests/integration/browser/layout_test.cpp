// The dashboard's layout in headless Chromium: on a phone-width screen (390x844) the document never
// scrolls sideways (wide tables scroll inside their own container), and the theme follows the
// system's light or dark setting.

#include "tests/integration/browser/dashboard_support.hpp"

using namespace distconv;
using namespace distconv::browser;
using namespace std::chrono_literals;

namespace {

// The elements that stick out past the viewport's right edge without a scrolling or clipping
// ancestor to hold them: what makes the document scroll sideways. (An absolutely positioned element
// escapes a scroller that is not its containing block, so it counts whatever its ancestors.)
const char* k_overflowing = R"(
    const w = window.innerWidth, out = [];
    const clipped = (e) => {
        if (['absolute', 'fixed'].includes(getComputedStyle(e).position)) return false;
        for (let p = e.parentElement; p && p !== document.body; p = p.parentElement)
            if (['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(p).overflowX)) return true;
        return false;
    };
    for (const e of document.querySelectorAll('body *')) {
        const r = e.getBoundingClientRect();
        if (r.width && r.right > w + 1 && !clipped(e))
            out.push(`${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}${e.className ? '.' + String(e.className).split(' ').join('.') : ''} right=${Math.round(r.right)}`);
    }
    return out.slice(0, 8).join(', ');
)";

}  // namespace

// A phone-width browser (390x844 CSS pixels) and a few jobs with long names.
class PhoneTest : public DashboardTest {
  protected:
    void SetUp() override {
        DashboardTest::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        ASSERT_TRUE(test::make_test_clip(dir() / "in.mp4", 1.0, 160, 120));
        std::string answer;
        for (int i = 0; i < 3; ++i) {
            const auto name =
                "a-rather-long-output-file-name-on-a-phone-screen-" + std::to_string(i) + ".mp4";
            m_jobs.push_back(cluster().submit(dir() / "in.mp4", {{"output_filename", name}}, &answer));
            ASSERT_FALSE(m_jobs.back().empty()) << answer;
        }
        wd().set_window_size(390, 844);
        ASSERT_TRUE(wd().wait_until([&] { return wd().execute_script("return window.innerWidth;") == 390; }))
            << wd().execute_script("return window.innerWidth;");
    }

    // Tables may scroll inside their container; the document itself must not scroll sideways.
    void expect_no_sideways_scroll(const std::string& where) {
        auto widths =
            wd().execute_script("return [document.documentElement.scrollWidth, window.innerWidth];");
        EXPECT_LE(widths[0].get<int>(), widths[1].get<int>() + 1)
            << where << " overflows [document scrollWidth, innerWidth]: " << widths.dump()
            << "; sticking out: " << wd().execute_script(k_overflowing).get<std::string>();
    }

    std::vector<std::string> m_jobs;  // the user's, queued (no engine)
};

TEST_F(PhoneTest, TheJobsPageFitsAPhoneWidthScreen) {
    sign_in(user_key());
    go("#/jobs", "page-jobs");
    for (const auto& id : m_jobs) wd().wait_for(row(id), 15s);
    expect_no_sideways_scroll("#/jobs");
    open_job(m_jobs[0]);
    shot("phone-job-detail");
    expect_no_sideways_scroll("#/jobs with the job detail open");
}

TEST_F(PhoneTest, TheOtherPagesFitAPhoneWidthScreen) {
    start_engine("engine1");
    stop_engine("engine1");  // listed, but takes none of the jobs
    sign_in(admin_key());
    const std::vector<std::pair<std::string, std::string>> pages = {{"#/all-jobs", "page-jobs"},
                                                                    {"#/overview", "page-overview"},
                                                                    {"#/submit", "page-submit"},
                                                                    {"#/engines", "page-engines"},
                                                                    {"#/admin", "page-admin"}};
    for (const auto& [hash, section] : pages) {
        go(hash, section);
        if (hash == "#/all-jobs") wd().wait_for(row(m_jobs[0]), 15s);
        if (hash == "#/engines") wd().wait_for("table#engines-table tr[data-engine-id]", 15s);
        if (hash == "#/admin") wd().wait_for("table#keys-table tr[data-key-id]", 15s);
        expect_no_sideways_scroll(hash);
    }
}

namespace {

// The page's background as [r, g, b].
std::vector<int> background(WebDriver& wd) {
    return wd
        .execute_script(
            "const c = getComputedStyle(document.body).backgroundColor.match(/\\d+/g).map(Number);"
            "return c.slice(0, 3);")
        .get<std::vector<int>>();
}

int brightness(const std::vector<int>& rgb) {
    return (rgb[0] * 299 + rgb[1] * 587 + rgb[2] * 114) / 1000;
}

}  // namespace

TEST_F(DashboardTest, TheThemeFollowsTheSystemsLightOrDarkSetting) {
    auto scheme = [&](const char* value) {
        wd().execute_cdp("Emulation.setEmulatedMedia",
                         {{"features", {{{"name", "prefers-color-scheme"}, {"value", value}}}}});
    };
    scheme("light");
    sign_in(user_key());
    const auto light = background(wd());
    scheme("dark");
    EXPECT_TRUE(wd().wait_until([&] { return background(wd()) != light; }))
        << "the page did not change with the system's scheme";
    shot("dark-overview");
    const auto dark = background(wd());
    EXPECT_GT(brightness(light), 128) << testing::PrintToString(light);
    EXPECT_LT(brightness(dark), 128) << testing::PrintToString(dark);
    go("#/jobs", "page-jobs");
}
