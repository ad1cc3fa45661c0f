#include "submission_client/dispatch_api.hpp"

#include "protocol/protocol.hpp"

#include <cstdlib>

namespace distconv::client {

using nlohmann::json;

Result<json> DispatchApi::submit(const json& job, const std::string& idempotency_key) {
    http::Request r;
    r.method = "POST";
    r.path_or_url = "/jobs";
    r.body = job.dump();
    r.content_type = "application/json";
    if (!idempotency_key.empty()) {
        r.headers.emplace_back(std::string(protocol::k_idempotency_key_header), idempotency_key);
        r.retry = true;
    }
    auto res = m_http.request(r);
    if (!res) return res.error();
    if (auto e = res->api_error()) return *e;
    return res->json();
}

Result<std::uint64_t> DispatchApi::source_offset(const std::string& job_id) {
    http::Request r;
    r.method = "HEAD";
    r.path_or_url = "/jobs/" + job_id + "/source";
    auto res = m_http.request(r);
    if (!res) return res.error();
    if (auto e = res->api_error()) return *e;
    auto h = res->header(protocol::k_upload_offset_header);
    return h ? static_cast<std::uint64_t>(std::strtoull(h->c_str(), nullptr, 10)) : std::uint64_t{0};
}

Result<http::Response> DispatchApi::put_source(const std::string& job_id, const std::filesystem::path& file,
                                               std::uint64_t offset, std::uint64_t size,
                                               http::ProgressFn progress) {
    http::Upload up;
    up.method = "PUT";
    up.path_or_url = "/jobs/" + job_id + "/source";
    up.retry = false;  // a failed PUT is continued from the server's offset, not resent whole
    if (offset > 0)
        up.headers.emplace_back("Content-Range", "bytes " + std::to_string(offset) + "-" +
                                                     std::to_string(size - 1) + "/" + std::to_string(size));
    up.progress = std::move(progress);
    auto res = m_http.upload_file(up, file, offset);
    if (!res) return res.error();
    if (auto e = res->api_error()) return *e;
    return res;
}

Result<json> DispatchApi::job(const std::string& job_id) {
    return m_http.call_json("GET", "/jobs/" + job_id);
}

Result<json> DispatchApi::status(const std::string& job_id) {
    return m_http.call_json("GET", "/jobs/" + job_id + "/status");
}

Result<json> DispatchApi::list_jobs(int limit, const std::string& state, bool all) {
    std::string path = "/jobs?limit=" + std::to_string(limit);
    if (!state.empty()) path += "&state=" + state;
    if (all) path += "&all=true";
    return m_http.call_json("GET", path);
}

Result<json> DispatchApi::cancel(const std::string& job_id) {
    return m_http.call_json("DELETE", "/jobs/" + job_id);
}

Result<json> DispatchApi::retry(const std::string& job_id) {
    return m_http.call_json("POST", "/jobs/" + job_id + "/retry");
}

std::string DispatchApi::events_url(const std::string& job_id) const {
    return m_http.url_for("/jobs/" + job_id + "/events");
}

Result<http::DownloadResult> DispatchApi::download_result(const std::string& job_id,
                                                          const std::filesystem::path& dest,
                                                          const http::DownloadOptions& options) {
    return m_http.download_to_file("/jobs/" + job_id + "/result", dest, options);
}

Result<json> DispatchApi::engines() {
    return m_http.call_json("GET", "/engines");
}

Result<json> DispatchApi::pools() {
    return m_http.call_json("GET", "/pools");
}

Result<json> DispatchApi::presets() {
    return m_http.call_json("GET", "/presets");
}

Result<json> DispatchApi::create_key(const std::string& name, const std::string& role) {
    return m_http.call_json("POST", "/keys", json{{"name", name}, {"role", role}});
}

Result<json> DispatchApi::list_keys(bool all) {
    return m_http.call_json("GET", all ? "/keys?all=true" : "/keys");
}

Result<json> DispatchApi::revoke_key(const std::string& id_or_name) {
    return m_http.call_json("DELETE", "/keys/" + id_or_name);
}

}  // namespace distconv::client
