#include "transcoding_engine/cli.hpp"
#include "transcoding_engine/sandbox_port.hpp"

#include <cstring>

int main(int argc, char** argv) {
    // Inside the stream-mode sandbox: open ffmpeg's one port, then become ffmpeg (sandbox_port.hpp).
    if (argc > 1 && std::strcmp(argv[1], "sandbox-listen") == 0)
        return distconv::engine::sandbox_listen_main(argc, argv);
    return distconv::engine::engine_main(argc, argv);
}
