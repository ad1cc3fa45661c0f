#pragma once
// The shell examples of the docs as a reader copies them: the command lines of fenced shell blocks
// (continuations joined), and for a curl command its method, URL and the status its comment
// documents. Plain text processing, no shell and no server: docs_examples_test.cpp runs what this finds.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace distconv::docs {

// One command of a fenced shell block (```sh, ```bash, ```shell, ```console or no language).
struct ShellLine {
    std::string file;     // as given, e.g. "docs/protocol.md"
    int line = 0;         // its first physical line, 1-based
    int block = 0;        // which fenced block of the file (0-based)
    std::string raw;      // the physical lines as written, continuation backslashes and newlines kept
    std::string text;     // the command as bash reads it: each backslash-newline removed
    std::string comment;  // the comment lines above it in its paragraph of the block, without the '#'

    std::string where() const { return file + ":" + std::to_string(line); }
};

// Every command line of the shell blocks of `markdown`; comment-only and blank lines are left out.
std::vector<ShellLine> shell_lines(const std::string& file, const std::string& markdown);

// Whether `curl` is a command word of the line (first word, or after |, ;, & or an opening parenthesis).
bool runs_curl(const std::string& text);

// Names the line assigns at the start of its top-level statements ("A=1; B=$(x)" -> A, B).
std::vector<std::string> assigned_names(const std::string& text);

// Names the line reads: $NAME, ${NAME}, and the bare names inside $((...)).
std::set<std::string> referenced_names(const std::string& text);

// The values of `NAME=value` lines whose value needs no command substitution (quotes removed, the
// last assignment wins), e.g. API=http://127.0.0.1:8080/api/v1.
std::map<std::string, std::string> literal_values(const std::vector<ShellLine>& lines);

// `text` with $NAME and ${NAME} replaced for the names in `values`; other references stay.
std::string substitute(const std::string& text, const std::map<std::string, std::string>& values);

// The first curl command of a line: its arguments as shell words (quotes removed, $-references left
// as written), the HTTP method they make curl use and the URL they name.
struct CurlCall {
    std::vector<std::string> args;
    std::string method;  // -X, else HEAD for -I, PUT for -T, POST for -d/-F/--json, else GET
    std::string url;     // the first non-option argument ("" when none)
};
std::optional<CurlCall> first_curl(const std::string& text);

struct Url {
    std::string origin;  // "https://dispatch.example.org:8080"
    std::string path;    // "/api/v1/jobs/$JOB"
    std::string query;   // "state=running,queued&limit=50" (no '?')
};
std::optional<Url> split_url(const std::string& url);

// The status a comment documents: "-> 202 ...", "(206 Partial Content)"; nullopt when it names none.
std::optional<int> documented_status(const std::string& comment);

}  // namespace distconv::docs
