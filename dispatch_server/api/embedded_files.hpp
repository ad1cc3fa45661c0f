#pragma once
// Files compiled into the binary at build time (cmake/embed_files.cmake): the web dashboard's
// assets from dispatch_server/ui/. Nothing is read from disk at run time.

#include <span>
#include <string_view>

namespace distconv::dispatch::ui {

struct EmbeddedFile {
    std::string_view name;          // relative to dispatch_server/ui/, e.g. "app.js"
    std::string_view content_type;  // from the extension
    std::string_view body;
    std::string_view etag;  // quoted SHA-256 of body
};

std::span<const EmbeddedFile> embedded_files();

}  // namespace distconv::dispatch::ui
