#include "tests/integration/docs_examples/doc_examples.hpp"

#include <algorithm>
#include <cctype>
#include <regex>
#include <sstream>

namespace distconv::docs {

namespace {

bool is_name_start(char c) {
    return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}
bool is_name_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

std::string trim(const std::string& s) {
    size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return "";
    size_t e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

bool is_shell_language(std::string lang) {
    std::transform(lang.begin(), lang.end(), lang.begin(), [](unsigned char c) { return std::tolower(c); });
    return lang.empty() || lang == "sh" || lang == "bash" || lang == "shell" || lang == "console" ||
           lang == "zsh";
}

// The index just after the ')' that closes the '(' at s[open], skipping quoted text inside.
size_t skip_balanced(const std::string& s, size_t open) {
    int depth = 0;
    for (size_t i = open; i < s.size(); ++i) {
        char c = s[i];
        if (c == '\\') {
            ++i;
        } else if (c == '\'') {
            size_t close = s.find('\'', i + 1);
            if (close == std::string::npos) return s.size();
            i = close;
        } else if (c == '"') {
            for (++i; i < s.size() && s[i] != '"'; ++i)
                if (s[i] == '\\') ++i;
        } else if (c == '(') {
            ++depth;
        } else if (c == ')') {
            if (--depth == 0) return i + 1;
        }
    }
    return s.size();
}

// The shell words of the simple command starting at s[pos]: quotes removed, $(...) and $VAR kept as
// written. Stops at an unquoted |, ;, &, a ')' that closes nothing, or a comment.
std::vector<std::string> words_from(const std::string& s, size_t pos) {
    std::vector<std::string> words;
    size_t i = pos;
    const size_t n = s.size();
    while (i < n) {
        while (i < n && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
        if (i >= n || s[i] == '|' || s[i] == ';' || s[i] == '&' || s[i] == ')' || s[i] == '#') break;
        std::string word;
        while (i < n) {
            char c = s[i];
            if (std::isspace(static_cast<unsigned char>(c)) || c == '|' || c == ';' || c == '&' || c == ')')
                break;
            if (c == '\'') {
                size_t close = s.find('\'', i + 1);
                if (close == std::string::npos) close = n;
                word += s.substr(i + 1, close - i - 1);
                i = close + 1;
            } else if (c == '"') {
                for (++i; i < n && s[i] != '"';) {
                    if (s[i] == '\\' && i + 1 < n &&
                        std::string("\"\\$`").find(s[i + 1]) != std::string::npos) {
                        word += s[i + 1];
                        i += 2;
                    } else if (s[i] == '$' && i + 1 < n && s[i + 1] == '(') {
                        size_t end = skip_balanced(s, i + 1);
                        word += s.substr(i, end - i);
                        i = end;
                    } else {
                        word += s[i++];
                    }
                }
                ++i;  // the closing quote
            } else if (c == '\\' && i + 1 < n) {
                word += s[i + 1];
                i += 2;
            } else if (c == '$' && i + 1 < n && s[i + 1] == '(') {
                size_t end = skip_balanced(s, i + 1);
                word += s.substr(i, end - i);
                i = end;
            } else {
                word += c;
                ++i;
            }
        }
        words.push_back(word);
    }
    return words;
}

// The top-level statements of a line, split at ';' outside quotes and $(...).
std::vector<std::string> statements(const std::string& s) {
    std::vector<std::string> out;
    std::string current;
    for (size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        size_t end = i + 1;
        if (c == '\\') {
            end = std::min(s.size(), i + 2);
        } else if (c == '\'') {
            size_t close = s.find('\'', i + 1);
            end = close == std::string::npos ? s.size() : close + 1;
        } else if (c == '"') {
            for (end = i + 1; end < s.size() && s[end] != '"'; ++end)
                if (s[end] == '\\') ++end;
            end = std::min(s.size(), end + 1);
        } else if (c == '$' && i + 1 < s.size() && s[i + 1] == '(') {
            end = skip_balanced(s, i + 1);
        } else if (c == ';') {
            out.push_back(trim(current));
            current.clear();
            continue;
        }
        current += s.substr(i, end - i);
        i = end - 1;
    }
    if (!trim(current).empty()) out.push_back(trim(current));
    return out;
}

const std::regex& curl_word() {
    static const std::regex re(R"((^|[|;&(])\s*curl(\s|$))");
    return re;
}

}  // namespace

std::vector<ShellLine> shell_lines(const std::string& file, const std::string& markdown) {
    static const std::regex fence_re(R"(^\s*(`{3,}|~{3,})\s*([^\s`]*).*$)");
    std::vector<ShellLine> out;
    std::istringstream in(markdown);
    std::string physical;
    int number = 0, block = -1;
    std::string fence;  // the open fence's characters; empty outside a block
    bool shell = false;
    std::string comment;
    bool comment_open = false;         // the previous line of the block was a comment
    std::optional<ShellLine> pending;  // a command continued with a backslash
    while (std::getline(in, physical)) {
        ++number;
        if (!physical.empty() && physical.back() == '\r') physical.pop_back();
        std::smatch m;
        if (fence.empty()) {
            if (std::regex_match(physical, m, fence_re)) {
                fence = m[1].str();
                shell = is_shell_language(m[2].str());
                ++block;
                comment.clear();
                comment_open = false;
            }
            continue;
        }
        std::string t = trim(physical);
        if (!pending && t.size() >= fence.size() && t.find_first_not_of(fence[0]) == std::string::npos) {
            fence.clear();
            continue;
        }
        if (!shell) continue;
        if (pending) {
            pending->raw += "\n" + physical;
            pending->text += physical;
        } else if (t.empty()) {
            comment.clear();
            comment_open = false;
            continue;
        } else if (t[0] == '#') {
            size_t text_at = t.find_first_not_of('#');
            std::string c = text_at == std::string::npos ? "" : trim(t.substr(text_at));
            comment = comment_open ? comment + " " + c : c;
            comment_open = true;
            continue;
        } else {
            comment_open = false;
            pending = ShellLine{file, number, block, physical, t, comment};
        }
        if (!pending->text.empty() && pending->text.back() == '\\') {
            pending->text.pop_back();  // bash drops the backslash-newline
            continue;
        }
        pending->text = trim(pending->text);
        out.push_back(std::move(*pending));
        pending.reset();
    }
    if (pending) out.push_back(std::move(*pending));
    return out;
}

bool runs_curl(const std::string& text) {
    return std::regex_search(text, curl_word());
}

std::vector<std::string> assigned_names(const std::string& text) {
    static const std::regex assignment(R"(^([A-Za-z_][A-Za-z0-9_]*)=)");
    std::vector<std::string> names;
    for (const auto& statement : statements(text)) {
        std::smatch m;
        if (std::regex_search(statement, m, assignment)) names.push_back(m[1].str());
    }
    return names;
}

std::set<std::string> referenced_names(const std::string& text) {
    std::set<std::string> names;
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '\\') {
            ++i;
        } else if (c == '\'') {  // nothing expands inside single quotes
            size_t close = text.find('\'', i + 1);
            if (close == std::string::npos) break;
            i = close;
        } else if (c == '$' && text.compare(i, 3, "$((") == 0) {
            size_t end = skip_balanced(text, i + 1);
            for (size_t j = i + 3; j < end; ++j) {
                if (!is_name_start(text[j]) || (j > 0 && is_name_char(text[j - 1]))) continue;
                size_t k = j;
                while (k < end && is_name_char(text[k])) ++k;
                names.insert(text.substr(j, k - j));
                j = k;
            }
            i = end - 1;
        } else if (c == '$' && i + 1 < text.size()) {
            size_t j = i + 1 + (text[i + 1] == '{' ? 1 : 0);
            if (j >= text.size() || !is_name_start(text[j])) continue;
            size_t k = j;
            while (k < text.size() && is_name_char(text[k])) ++k;
            names.insert(text.substr(j, k - j));
        }
    }
    return names;
}

std::map<std::string, std::string> literal_values(const std::vector<ShellLine>& lines) {
    static const std::regex assignment(R"(^([A-Za-z_][A-Za-z0-9_]*)=(.*)$)");
    std::map<std::string, std::string> values;
    for (const auto& line : lines) {
        auto parts = statements(line.text);
        std::smatch m;
        if (parts.size() != 1 || !std::regex_match(parts[0], m, assignment)) continue;
        std::string value = m[2].str();
        if (value.find("$(") != std::string::npos || value.find('`') != std::string::npos) continue;
        auto words = words_from(value, 0);
        values[m[1].str()] = words.empty() ? "" : words[0];
    }
    return values;
}

std::string substitute(const std::string& text, const std::map<std::string, std::string>& values) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '$' && i + 1 < text.size()) {
            bool braced = text[i + 1] == '{';
            size_t j = i + 1 + (braced ? 1 : 0);
            size_t k = j;
            while (k < text.size() && is_name_char(text[k])) ++k;
            auto it = k > j ? values.find(text.substr(j, k - j)) : values.end();
            if (it != values.end() && (!braced || (k < text.size() && text[k] == '}'))) {
                out += it->second;
                i = k - (braced ? 0 : 1);
                continue;
            }
        }
        out += text[i];
    }
    return out;
}

std::optional<CurlCall> first_curl(const std::string& text) {
    std::smatch m;
    if (!std::regex_search(text, m, curl_word())) return std::nullopt;
    size_t at = static_cast<size_t>(m.position(0)) + m.str(0).find("curl") + 4;
    CurlCall call;
    call.args = words_from(text, at);
    // Short options that take an argument (the rest of the word, or the next word).
    static const std::string k_short_with_arg = "ACDEFHKPQTUXYbcdehmortuwxyz";
    static const std::set<std::string> k_long_with_arg = {
        "cacert",      "capath",      "cert",        "connect-timeout",
        "connect-to",  "continue-at", "cookie",      "data",
        "data-ascii",  "data-binary", "data-raw",    "data-urlencode",
        "dump-header", "form",        "form-string", "header",
        "json",        "key",         "max-time",    "output",
        "proxy",       "range",       "referer",     "request",
        "resolve",     "retry",       "upload-file", "url",
        "user",        "user-agent",  "write-out"};
    std::string method;
    bool head = false, upload = false, body = false;
    auto apply = [&](const std::string& option, const std::string& value) {
        if (option == "X" || option == "request") method = value;
        if (option == "T" || option == "upload-file") upload = true;
        if (option == "d" || option == "F" || option.rfind("data", 0) == 0 || option == "form" ||
            option == "form-string" || option == "json")
            body = true;
        if (option == "url" && call.url.empty()) call.url = value;
    };
    for (size_t i = 0; i < call.args.size(); ++i) {
        const std::string& w = call.args[i];
        std::string next = i + 1 < call.args.size() ? call.args[i + 1] : "";
        if (w.rfind("--", 0) == 0 && w.size() > 2) {
            std::string name = w.substr(2);
            if (name == "head") head = true;
            if (k_long_with_arg.count(name)) {
                apply(name, next);
                ++i;
            }
        } else if (w.size() > 1 && w[0] == '-') {
            for (size_t j = 1; j < w.size(); ++j) {
                if (w[j] == 'I') head = true;
                if (k_short_with_arg.find(w[j]) == std::string::npos) continue;
                if (j + 1 < w.size()) {
                    apply(std::string(1, w[j]), w.substr(j + 1));
                } else {
                    apply(std::string(1, w[j]), next);
                    ++i;
                }
                break;
            }
        } else if (call.url.empty()) {
            call.url = w;
        }
    }
    call.method = !method.empty() ? method : head ? "HEAD" : upload ? "PUT" : body ? "POST" : "GET";
    return call;
}

std::optional<Url> split_url(const std::string& url) {
    static const std::regex re(R"(^(https?://[^/?#]+)([^?#]*)(?:\?([^#]*))?)");
    std::smatch m;
    if (!std::regex_search(url, m, re)) return std::nullopt;
    std::string path = m[2].matched && m[2].length() > 0 ? m[2].str() : std::string(1, '/');
    return Url{m[1].str(), path, m[3].str()};
}

std::optional<int> documented_status(const std::string& comment) {
    static const std::regex re(R"((?:->|→|\()\s*([1-5][0-9][0-9])\b)");
    std::smatch m;
    if (!std::regex_search(comment, m, re)) return std::nullopt;
    return std::stoi(m[1].str());
}

}  // namespace distconv::docs
