#include "transcoding_engine/cli.hpp"

int main(int argc, char** argv) { return distconv::engine::engine_main(argc, argv); }
