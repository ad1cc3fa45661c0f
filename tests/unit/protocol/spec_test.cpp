// Keeps protocol/openapi.yaml and the code in step: every error code of common/error.hpp is in the
// spec's ErrorCode enum with its HTTP status, and every endpoint the programs use is in the spec.
#include "common/error.hpp"
#include "protocol/job_state.hpp"

#include "tests/support/test_support.hpp"

#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <utility>

namespace distconv::protocol {
namespace {

std::string spec_text() {
    return test::read_file(std::string(DISTCONV_SOURCE_DIR) + "/protocol/openapi.yaml");
}

// The lines of the `components.schemas.<name>` block (indented 4 spaces under `schemas:`).
std::vector<std::string> schema_block(const std::string& spec, const std::string& name) {
    std::istringstream in(spec);
    std::string line;
    std::vector<std::string> out;
    bool inside = false;
    while (std::getline(in, line)) {
        if (line == "    " + name + ":") {
            inside = true;
            continue;
        }
        if (inside) {
            if (line.rfind("    ", 0) == 0 && line.size() > 4 && line[4] != ' ') break;  // next schema
            out.push_back(line);
        }
    }
    return out;
}

constexpr int k_error_code_count = static_cast<int>(ErrorCode::InsufficientStorage) + 1;

TEST(OpenApiSpec, ErrorCodeEnumMatchesCommonErrorExactly) {
    const auto block = schema_block(spec_text(), "ErrorCode");
    ASSERT_FALSE(block.empty()) << "no ErrorCode schema in openapi.yaml";
    // "        - INVALID_ARGUMENT       # 400"
    const std::regex item(R"(^\s+- ([A-Z_]+)\s*#\s*(\d{3})\s*$)");
    std::map<std::string, int> in_spec;
    for (const auto& line : block) {
        std::smatch m;
        if (std::regex_match(line, m, item)) in_spec[m[1]] = std::stoi(m[2]);
    }
    std::set<std::string> in_code;
    for (int i = 0; i < k_error_code_count; ++i) {
        const auto code = static_cast<ErrorCode>(i);
        const std::string name(error_code_name(code));
        in_code.insert(name);
        ASSERT_TRUE(in_spec.count(name)) << name << " is missing from the ErrorCode enum in openapi.yaml";
        EXPECT_EQ(in_spec[name], http_status(code))
            << name << ": the spec's comment names another HTTP status";
    }
    for (const auto& [name, status] : in_spec)
        EXPECT_TRUE(in_code.count(name))
            << name << " (" << status << ") is in the spec but not in common/error.hpp";
}

TEST(OpenApiSpec, JobStateEnumMatchesTheStateMachine) {
    const auto block = schema_block(spec_text(), "JobState");
    std::string enum_line;
    for (const auto& line : block)
        if (line.find("enum:") != std::string::npos) enum_line = line;
    ASSERT_FALSE(enum_line.empty());
    for (auto s : k_all_job_states)
        EXPECT_NE(enum_line.find(std::string(to_string(s))), std::string::npos) << to_string(s);
}

// The endpoints the dispatch server, the engine and the CLI rely on.
const std::vector<std::pair<std::string, std::string>>& k_endpoints() {
    static const std::vector<std::pair<std::string, std::string>> endpoints{
        {"post", "/jobs"},
        {"get", "/jobs"},
        {"get", "/jobs/{job_id}"},
        {"head", "/jobs/{job_id}"},
        {"delete", "/jobs/{job_id}"},
        {"get", "/jobs/{job_id}/status"},
        {"get", "/jobs/{job_id}/events"},
        {"post", "/jobs/{job_id}/retry"},
        {"put", "/jobs/{job_id}/source"},
        {"head", "/jobs/{job_id}/source"},
        {"get", "/jobs/{job_id}/result"},
        {"head", "/jobs/{job_id}/result"},
        {"get", "/presets"},
        {"get", "/pools"},
        {"get", "/engines"},
        {"post", "/engines"},
        {"post", "/engines/{engine_id}/heartbeat"},
        {"post", "/engines/{engine_id}/claim"},
        {"post", "/engines/{engine_id}/drain"},
        {"post", "/engines/{engine_id}/undrain"},
        {"get", "/assignments/{assignment_id}/source"},
        {"post", "/assignments/{assignment_id}/progress"},
        {"put", "/assignments/{assignment_id}/output"},
        {"head", "/assignments/{assignment_id}/output"},
        {"post", "/assignments/{assignment_id}/complete"},
        {"post", "/assignments/{assignment_id}/fail"},
        {"post", "/keys"},
        {"get", "/keys"},
        {"delete", "/keys/{key_id}"},
        {"get", "/events"},
        {"get", "/overview"},
        {"post", "/sessions"},
        {"get", "/sessions/current"},
        {"delete", "/sessions/current"},
        {"get", "/healthz"},
        {"get", "/readyz"},
        {"get", "/metrics"},
    };
    return endpoints;
}

TEST(OpenApiSpec, EveryEndpointIsInTheSpec) {
    // Path keys sit at two spaces under `paths:`, methods at four under their path.
    std::istringstream in(spec_text());
    std::string line;
    std::string path;
    bool in_paths = false;
    std::set<std::pair<std::string, std::string>> found;
    const std::regex path_re(R"(^  (/[^:]*):\s*$)");
    const std::regex method_re(R"(^    (get|put|post|delete|head|patch|options):\s*$)");
    while (std::getline(in, line)) {
        if (line == "paths:") {
            in_paths = true;
            continue;
        }
        if (!in_paths) continue;
        if (!line.empty() && line[0] != ' ' && line[0] != '#') break;  // components:
        std::smatch m;
        if (std::regex_match(line, m, path_re))
            path = m[1];
        else if (std::regex_match(line, m, method_re))
            found.insert({m[1], path});
    }
    ASSERT_GT(found.size(), 20u);
    for (const auto& ep : k_endpoints())
        EXPECT_TRUE(found.count(ep)) << ep.first << " " << ep.second << " is not in openapi.yaml";
}

TEST(OpenApiSpec, ServedUnderApiV1AndErrorsUseOneEnvelope) {
    const auto spec = spec_text();
    EXPECT_NE(spec.find("  - url: /api/v1\n"), std::string::npos);
    const auto error = schema_block(spec, "Error");
    std::string joined;
    for (const auto& l : error) joined += l + "\n";
    for (const char* field : {"code:", "message:", "details:", "retryable:"})
        EXPECT_NE(joined.find(field), std::string::npos) << field;
    EXPECT_NE(joined.find("required: [code, message, details, retryable]"), std::string::npos);
}

}  // namespace
}  // namespace distconv::protocol
