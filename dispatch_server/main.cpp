#include "dispatch_server/cli.hpp"

int main(int argc, char** argv) {
    return distconv::dispatch::dispatch_main(argc, argv);
}
